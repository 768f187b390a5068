//! Placeholder: the u2f operations (filled in by their own change).

use super::{Caller, OpResult, Service};
use crate::catalog::OpSpec;
use crate::error::{code, ApiError};
use crate::params::Params;

pub const OPS: &[OpSpec] = &[];

pub(super) async fn run(_svc: &Service, name: &str, _caller: &Caller, _p: &Params) -> OpResult {
    Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{name}]")))
}
