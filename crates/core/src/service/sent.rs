//! Codes sent by SMS / voice / email, as seen by `validate_oath_otp` (decisions §6).

use super::{Caller, Service};
use crate::error::ApiError;
use crate::store::UserRow;

/// What checking a passcode against the user's sent codes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentCheck {
    /// The code matched an unused, unexpired sent code, which is now consumed.
    Accepted,
    /// The code matched a sent code that has expired (9043 if nothing else accepts it).
    Expired,
    /// No sent code matched (validate against the device instead).
    NoMatch,
}

/// Checks `otp` against the user's sent codes (same psn, or any when `psn` is None).
pub async fn check_sent_code(
    _svc: &Service,
    _caller: &Caller,
    _user: &UserRow,
    _psn: Option<&str>,
    _otp: &str,
) -> Result<SentCheck, ApiError> {
    Ok(SentCheck::NoMatch)
}
