//! The one error type of hoistd's library.

use std::path::PathBuf;

/// What went wrong starting or running the daemon; each variant names its object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot read config {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {}: {key}: {message}", path.display())]
    ConfigInvalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error(transparent)]
    Registry(#[from] hoist_registry::RegistryError),
    #[error(transparent)]
    Engine(#[from] hoist_engine::Error),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("TLS setup for {address}: {message}")]
    Tls { address: String, message: String },
    #[error("serving {address}: {source}")]
    Serve {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("binfmt_misc: {0}")]
    Binfmt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
