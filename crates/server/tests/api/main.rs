//! Black-box API tests: the real server on port 0, called over HTTP, on SQLite and PostgreSQL.

#[macro_use]
pub mod helpers;
mod delivery;
mod envelope;
mod lifecycle;
mod multinode;
mod oath;
mod rules;
mod sessions;
mod soap;
mod u2f;
mod users;
