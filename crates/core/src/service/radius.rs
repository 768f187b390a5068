//! RADIUS decisions (docs/operations.md, "RADIUS"): what an authenticated Access-Request from a
//! NAS of an account is answered with.
//!
//! The front door (UDP, packet codec, Message-Authenticator, retransmission cache) lives in the
//! server crate; this module holds the rules. It makes every password and passcode check by
//! running the API's own operations through [`Service::handle_as`] — `validate_user` for the
//! password, `validate_oath_otp` for the passcode, `send_oath_otp` for out-of-band users — so
//! password throttling, OTP replay protection, device lockout and the audit trail apply exactly
//! as on the JSON and SOAP front doors. Nothing here compares a password or a passcode itself.
//!
//! Flows (PAP; `User-Password` carries what the user typed):
//! 1. the password alone → Access-Challenge with a `State` (a passcode is sent first when the
//!    user's default device is out-of-band); the next Access-Request carries that `State` and the
//!    passcode → Accept / Reject. The State is stored (hashed) in the database, single use and
//!    short-lived, so any node can finish what another began.
//! 2. the password immediately followed by the passcode (the last 6 or 8 digits: the length of the
//!    user's default device) → Accept / Reject at once.
//! 3. a client marked `--otp-only`: `User-Password` is the passcode alone.
//!
//! When the typed value could be either (a password that itself ends in digits), flow 2 is tried
//! first and, if that password is wrong, the whole value is checked as a password (flow 1); a
//! wrong password then counts twice toward the password lockout, never less.

use super::users::username_key;
use super::{Caller, RequestCtx, Service};
use crate::crypto;
use crate::error::code;
use crate::params::Params;
use crate::store::RadiusChallengeRow;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// What a client's sealed shared secret is bound to (`MasterKey::seal_bound`): its account and address.
pub fn client_secret_context(account_id: i64, address: &str) -> String {
    format!("radius-client|{account_id}|{address}")
}

/// An authenticated Access-Request, as the front door decoded it.
pub struct RadiusRequest<'a> {
    /// The account the NAS belongs to.
    pub account: &'a str,
    /// The NAS sends the passcode alone.
    pub otp_only: bool,
    pub username: &'a str,
    /// The revealed User-Password.
    pub password: &'a str,
    /// The `State` attribute, if any.
    pub state: Option<&'a [u8]>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// With a Reply-Message (never says which factor failed in flow 2).
    Reject(&'static str),
    /// `state` goes into the State attribute, `message` into Reply-Message.
    Challenge {
        state: String,
        message: String,
    },
}

/// One service operation run for a request: (type, errorCode), for metrics.
pub type Call = (&'static str, i64);

pub const MSG_FAILED: &str = "Authentication failed";
pub const MSG_LOCKED: &str = "Too many failed attempts; try again later";
pub const MSG_STALE: &str = "The challenge is unknown or has expired; sign in again";
pub const MSG_SEND_FAILED: &str = "No passcode could be sent; contact your administrator";
pub const MSG_ERROR: &str = "Authentication is unavailable; try again later";
pub const MSG_ENTER_CODE: &str = "Enter the passcode from your authenticator";

/// Decides an Access-Request. `calls` receives every service operation run, with its errorCode.
pub async fn decide(svc: &Service, req: &RadiusRequest<'_>, ctx: &RequestCtx, calls: &mut Vec<Call>) -> Decision {
    let caller = match svc.account_caller(req.account).await {
        Ok(Some(c)) => c,
        Ok(None) => return Decision::Reject(MSG_FAILED),
        Err(_) => return Decision::Reject(MSG_ERROR),
    };
    if let Some(state) = req.state {
        return answer_challenge(svc, &caller, req, state, ctx, calls).await;
    }
    if req.otp_only {
        return check_otp(svc, &caller, req.username, req.password, ctx, calls).await;
    }
    let digits = otp_length(svc, &caller, req.username).await;
    if let Some((pw, otp)) = split_password(req.password, digits) {
        let code = run(svc, &caller, "validate_user", req.username, &[("pw", pw)], ctx, calls).await;
        match code {
            code::OK => return check_otp(svc, &caller, req.username, otp, ctx, calls).await,
            code::USER_LOGIN_FAILED => {} // maybe the whole value is the password: flow 1
            other => return Decision::Reject(reject_message(other)),
        }
    }
    let code = run(svc, &caller, "validate_user", req.username, &[("pw", req.password)], ctx, calls).await;
    if code != code::OK {
        return Decision::Reject(reject_message(code));
    }
    begin_challenge(svc, &caller, req.username, ctx, calls).await
}

/// `password` = password + the last `digits` characters, if those are all digits and something
/// precedes them.
pub fn split_password(password: &str, digits: usize) -> Option<(&str, &str)> {
    let cut = password.len().checked_sub(digits).filter(|c| *c > 0)?;
    if !password.is_char_boundary(cut) {
        return None;
    }
    let (pw, otp) = password.split_at(cut);
    otp.bytes().all(|b| b.is_ascii_digit()).then_some((pw, otp))
}

fn reject_message(code: i64) -> &'static str {
    match code {
        code::TOO_MANY_FAILURES => MSG_LOCKED,
        code::DATABASE_ERROR | code::INTERNAL_ERROR => MSG_ERROR,
        _ => MSG_FAILED,
    }
}

/// Runs one API operation for the user with `fields` and returns its errorCode.
async fn run(
    svc: &Service,
    caller: &Caller,
    op: &'static str,
    username: &str,
    fields: &[(&str, &str)],
    ctx: &RequestCtx,
    calls: &mut Vec<Call>,
) -> i64 {
    let mut map = Map::new();
    map.insert("username".into(), Value::String(username.to_string()));
    for (k, v) in fields {
        map.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    let outcome = svc.handle_as(caller, op, Params::from_json(map), ctx).await;
    let code = outcome.code();
    calls.push((op, code));
    code
}

async fn check_otp(svc: &Service, caller: &Caller, username: &str, otp: &str, ctx: &RequestCtx, calls: &mut Vec<Call>) -> Decision {
    match run(svc, caller, "validate_oath_otp", username, &[("otp", otp)], ctx, calls).await {
        code::OK => Decision::Accept,
        other => Decision::Reject(reject_message(other)),
    }
}

/// The code length of the user's default OATH device (6 when there is none).
async fn otp_length(svc: &Service, caller: &Caller, username: &str) -> usize {
    let Ok(Some(user)) = svc.store.user_by_key(caller.account_id(), &username_key(username)).await else { return 6 };
    match super::oath::default_oath_device(svc, caller, &user).await {
        Ok(d) if d.digits == 8 => 8,
        _ => 6,
    }
}

async fn begin_challenge(svc: &Service, caller: &Caller, username: &str, ctx: &RequestCtx, calls: &mut Vec<Call>) -> Decision {
    let user = match svc.store.user_by_key(caller.account_id(), &username_key(username)).await {
        Ok(Some(u)) => u,
        Ok(None) => return Decision::Reject(MSG_FAILED),
        Err(_) => return Decision::Reject(MSG_ERROR),
    };
    // Out-of-band users (a device without a seed, or no OATH device at all) get a passcode sent.
    let out_of_band = match super::oath::default_oath_device(svc, caller, &user).await {
        Ok(d) => d.seed.is_none(),
        Err(e) if e.code == code::DEVICE_NOT_FOUND => true,
        Err(_) => return Decision::Reject(MSG_ERROR),
    };
    let mut message = MSG_ENTER_CODE.to_string();
    if out_of_band {
        let method = if !user.mobile.trim().is_empty() {
            "sms"
        } else if !user.email.trim().is_empty() {
            "email"
        } else {
            return Decision::Reject(MSG_SEND_FAILED);
        };
        let code = run(svc, caller, "send_oath_otp", username, &[("deliveryMethod", method)], ctx, calls).await;
        if code != code::OK {
            return Decision::Reject(if code == code::TOO_MANY_FAILURES { MSG_LOCKED } else { MSG_SEND_FAILED });
        }
        message = format!("A passcode was sent to you by {}; enter it", if method == "sms" { "SMS" } else { "email" });
    }
    let state = crypto::random_token();
    let row = RadiusChallengeRow {
        account_id: caller.account_id(),
        user_key: username_key(username),
        expires_at: svc.now() + svc.settings.radius.challenge_seconds.max(1),
    };
    match svc.store.create_radius_challenge(&crypto::secret_hash(&state), &row).await {
        Ok(()) => Decision::Challenge { state, message },
        Err(e) => {
            tracing::error!(error = %e, "storing a RADIUS challenge failed");
            Decision::Reject(MSG_ERROR)
        }
    }
}

async fn answer_challenge(
    svc: &Service,
    caller: &Caller,
    req: &RadiusRequest<'_>,
    state: &[u8],
    ctx: &RequestCtx,
    calls: &mut Vec<Call>,
) -> Decision {
    let Ok(state) = std::str::from_utf8(state) else { return Decision::Reject(MSG_STALE) };
    let consumed =
        svc.store.consume_radius_challenge(caller.account_id(), &crypto::secret_hash(state), &username_key(req.username), svc.now()).await;
    match consumed {
        Ok(Some(_)) => {
            let otp = Zeroizing::new(req.password.trim().to_string());
            check_otp(svc, caller, req.username, &otp, ctx, calls).await
        }
        Ok(None) => Decision::Reject(MSG_STALE),
        Err(e) => {
            tracing::error!(error = %e, "reading a RADIUS challenge failed");
            Decision::Reject(MSG_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_and_code_split_at_the_device_length() {
        assert_eq!(split_password("hunter2123456", 6), Some(("hunter2", "123456")));
        assert_eq!(split_password("hunter212345678", 8), Some(("hunter2", "12345678")));
        assert_eq!(split_password("123456", 6), None, "nothing before the code");
        assert_eq!(split_password("12345", 6), None);
        assert_eq!(split_password("hunter2abcdef", 6), None);
        assert_eq!(split_password("pässwörd123456", 6), Some(("pässwörd", "123456")));
        assert_eq!(split_password("x€23456", 6), None, "not a character boundary");
    }
}
