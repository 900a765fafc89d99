//! One error type for the core. Load errors always name the file and what was expected, so a
//! user with a broken model directory knows which file to fix.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model directory or file that cannot be loaded: missing, corrupt, wrong shape.
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    /// A valid file describing something the core does not implement.
    #[error("{path}: {message}")]
    Unsupported { path: String, message: String },
    /// A device that does not exist or was not compiled in.
    #[error("{0}")]
    Device(String),
    /// A bad argument from the caller (unknown head, bad option value).
    #[error("{0}")]
    Argument(String),
    /// A failure during tokenization or the forward pass.
    #[error("inference failed: {0}")]
    Inference(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn load(path: &Path, message: impl Into<String>) -> Self {
        Error::Load { path: path.display().to_string(), message: message.into() }
    }

    pub fn unsupported(path: &Path, message: impl Into<String>) -> Self {
        Error::Unsupported { path: path.display().to_string(), message: message.into() }
    }
}

impl From<candle_core::Error> for Error {
    fn from(error: candle_core::Error) -> Self {
        Error::Inference(error.to_string())
    }
}
