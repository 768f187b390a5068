//! Tessera's domain: the operation catalogue, the services behind every operation, the storage
//! port, settings and secrets handling.
//!
//! Architecture invariant: this crate knows nothing of HTTP or SQL, and no wire format of the API
//! (JSON envelope, SOAP) reaches it: front doors turn theirs into [`params::Params`] and call
//! [`service::Service::handle`]; storage is reached only through the [`store::Store`] trait. The
//! one file format parsed here is the operator's token import ([`import`]: PSKC XML and CSV), a pure
//! function from bytes to tokens.

pub mod audit_chain;
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
