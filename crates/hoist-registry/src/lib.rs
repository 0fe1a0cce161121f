//! Distribution API client (being written).

pub mod auth;
pub mod config;
pub mod credentials;
mod error;

pub use error::{RegistryError, Result};
