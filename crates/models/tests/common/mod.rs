//! Shared by the model tests: where the installed models are, and the fixtures.
//!
//! These tests need the two built-in models installed (about 190 MB, once per machine:
//! `scripts/install-models`). They never skip: a missing model fails them with the command to
//! run, because a model test that silently passes without a model proves nothing.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use genai_models::install::{self, MODELS};
use std::path::PathBuf;

/// The cache directory the models are installed in; panics with the install command if they
/// are not (or do not verify).
pub fn installed_dir() -> PathBuf {
    let dir = install::default_dir();
    for model in MODELS {
        if let Err(problem) = install::verify(&dir, &model) {
            panic!(
                "the built-in model {} is not installed in {} ({problem}). Install the models with \
                 `scripts/install-models` (or `genai models install --dir {}`), or point GENAI_MODELS_DIR \
                 at a directory where they are; the model tests never skip.",
                model.model,
                dir.display(),
                dir.display()
            );
        }
    }
    dir
}

/// A fixture file's parsed JSON.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An empty directory of its own under the system's temp dir.
pub fn empty_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genai-models-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
