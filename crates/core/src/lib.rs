//! Tessera's domain: the operation catalogue, the services behind every operation, the storage
//! port, settings and secrets handling.
//!
//! Architecture invariant: this crate knows nothing of HTTP, XML or SQL. Front doors turn their
//! wire format into [`params::Params`] and call [`service::Service::handle`]; storage is reached only
//! through the [`store::Store`] trait.

pub mod catalog;
pub mod config;
pub mod crypto;
pub mod error;
pub mod import;
pub mod params;
pub mod service;
pub mod store;

pub use error::{code, ApiError};
pub use service::{Outcome, RequestCtx, Service};
