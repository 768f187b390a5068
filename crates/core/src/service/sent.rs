//! Codes sent by SMS / voice / email, as seen by `validate_oath_otp` (docs/api.md).
//!
//! A sent code is stored only as a keyed hash ([`crate::crypto::MasterKey::sent_code_hash`]); the
//! candidate is hashed the same way and compared in constant time with the user's recent codes.
//! Consuming is a conditional write (`used = 0` → `1`) decided by the database, so a code is
//! accepted exactly once, also when two requests race on two nodes.

use super::{Caller, Service};
use crate::crypto;
use crate::error::{code, display_name, ApiError};
use crate::store::UserRow;

/// How long after its expiry a matching code is still reported as expired (9043) rather than
/// simply not matching.
pub const EXPIRED_REPORT_SECONDS: i64 = 3600;

/// What checking a passcode against the user's sent codes found.
///
/// A code that matches a sent code that was already used is not a variant: `check_sent_code`
/// returns `Err` with 9002 (OTP already used) for it, which the caller passes on as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentCheck {
    /// The code matched an unused, unexpired sent code, which is now consumed.
    Accepted,
    /// The code matched a sent code that has expired (9043 if nothing else accepts it).
    Expired,
    /// No sent code matched (validate against the device instead).
    NoMatch,
}

/// Checks `otp` against the user's sent codes (same psn, or any when `psn` is None or empty).
///
/// Returns `Err` 9002 when the code matches a sent code that was already used (also when another
/// request consumed it a moment ago).
pub async fn check_sent_code(svc: &Service, caller: &Caller, user: &UserRow, psn: Option<&str>, otp: &str) -> Result<SentCheck, ApiError> {
    let otp = otp.trim();
    if otp.is_empty() || otp.len() > 16 || !otp.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SentCheck::NoMatch);
    }
    let now = svc.now();
    let lifetime = svc.settings.otp.sent_code_lifetime_seconds.max(1);
    let since = now - lifetime - EXPIRED_REPORT_SECONDS;
    if user.last_code_at < since {
        // Nothing was sent to this user recently: no lookup needed (the common case).
        return Ok(SentCheck::NoMatch);
    }
    let rows = svc.store.sent_codes(caller.account_id(), user.id, since).await?;
    if rows.is_empty() {
        return Ok(SentCheck::NoMatch);
    }
    let psn = psn.map(str::trim).filter(|p| !p.is_empty());
    let device_filter = match psn {
        None => None,
        Some(p) => match svc.store.device_by_psn(caller.account_id(), p).await? {
            Some(d) if d.user_id == Some(user.id) => Some(d.id),
            _ => return Ok(SentCheck::NoMatch),
        },
    };
    let candidate = svc.master_key.sent_code_hash(caller.account_id(), user.id, otp);
    let mut expired = false;
    let mut used_on: Option<Option<i64>> = None;
    for row in &rows {
        if let (Some(want), Some(dev)) = (device_filter, row.device_id) {
            if want != dev {
                continue;
            }
        }
        if !crypto::ct_eq(&candidate, &row.code_hash) {
            continue;
        }
        if row.used {
            used_on = Some(row.device_id);
            continue;
        }
        if row.expires_at <= now {
            expired = true;
            continue;
        }
        if svc.store.consume_sent_code(row.id).await? {
            return Ok(SentCheck::Accepted);
        }
        // Another request consumed it between our read and our write.
        used_on = Some(row.device_id);
    }
    if let Some(device_id) = used_on {
        let shown = match (psn, device_id) {
            (Some(p), _) => p.to_string(),
            (None, Some(id)) => svc.store.device_by_id(caller.account_id(), id).await?.map(|d| d.psn).unwrap_or_default(),
            (None, None) => String::new(),
        };
        return Err(ApiError::new(code::OTP_ALREADY_USED, format!("OTP [SENT] [{}] FAILED - already used.", display_name(&shown))));
    }
    if expired {
        return Ok(SentCheck::Expired);
    }
    Ok(SentCheck::NoMatch)
}
