//! Shared building blocks of the Zenovay services.

pub mod access;
pub mod bus;
pub mod cache;
pub mod db;
pub mod error;
pub mod grpc;
pub mod oauth;
pub mod redis_link;
pub mod regexp;
pub mod secret;
pub mod shutdown;
pub mod text;
pub mod time;
pub mod transport;

pub use error::{Error, ErrorCode, Result};
