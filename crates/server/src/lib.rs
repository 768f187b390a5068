//! Tessera's HTTP side: the SurePassID JSON endpoint, the ops routes, start-up (data dir, master
//! key, database, first account) and graceful shutdown.
//!
//! Architecture invariant: no business rule lives here. A front door turns its wire format into
//! `Params`, calls `Service::handle`, and renders the `Outcome` in one place.

pub mod app;
pub mod body;
pub mod json_api;
pub mod lenient;
pub mod listener;
pub mod metrics;
pub mod ops;
pub mod radius;
pub mod settings;
pub mod soap;
pub mod tls;

pub use app::{AppState, Application};
