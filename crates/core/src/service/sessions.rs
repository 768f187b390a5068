//! Session tokens (docs/api.md): 256-bit random, stored only as a SHA-256 hash, valid on every node.

use super::users::{read_username, username_key, verify_password};
use super::{Caller, OpResult, Service};
use crate::catalog::{f, Group, Kind::*, OpSpec};
use crate::crypto;
use crate::error::{code, ApiError};
use crate::params::Params;
use crate::reply;
use crate::store::SessionTokenRow;

const fn op(
    name: &'static str,
    aliases: &'static [&'static str],
    summary: &'static str,
    fields: &'static [crate::catalog::FieldSpec],
) -> OpSpec {
    OpSpec { name, aliases, reply_type: None, summary, fields, ok_message: "OK", group: Group::Sessions }
}

pub const OPS: &[OpSpec] = &[
    op(
        "create_session_token",
        &[],
        "Create a session token for a user; replies sessionTokenId and expiresAt (RFC 3339 UTC).",
        &[
            f("username", Str, true, "The user."),
            f("pw", Str, false, "Checked when given."),
            f("sessionTokenDurationMinutes", Int, false, "1..43200, default 30."),
            f("sessionTokenType", Int, false, "0 = SSO (default), 1 = Mobile."),
        ],
    ),
    op(
        "is_session_token_valid",
        &[],
        "errorCode 0 while the token is valid, 9107 otherwise.",
        &[f("sessionTokenId", Str, true, "The token."), f("username", Str, false, "If given, the token must be this user's.")],
    ),
    op(
        "expire_session_token",
        &["delete_session_token"],
        "Expire (delete) a session token; it is invalid from then on, on every node.",
        &[f("sessionTokenId", Str, true, "The token."), f("username", Str, false, "If given, the token must be this user's.")],
    ),
];

pub(super) async fn run(svc: &Service, name: &str, caller: &Caller, p: &Params) -> OpResult {
    match name {
        "create_session_token" => create(svc, caller, p).await,
        "is_session_token_valid" => is_valid(svc, caller, p).await,
        "expire_session_token" => expire(svc, caller, p).await,
        other => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{other}]"))),
    }
}

fn invalid_token() -> ApiError {
    ApiError::new(code::SESSION_TOKEN_INVALID, "Session token invalid or expired")
}

/// RFC 3339 UTC of a Unix time.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

async fn create(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let username = read_username(p)?;
    let user = svc.store.user_by_key(caller.account_id(), &username_key(&username)).await?;
    // With a password, an unknown user costs (and answers) the same as a wrong password.
    if let Some(pw) = p.opt_str("pw")? {
        verify_password(svc, caller, user.as_ref(), &username, pw).await?;
    }
    let user = user.ok_or_else(|| ApiError::user_login(&username))?;
    let max = svc.settings.session.max_minutes;
    let minutes = p.opt_i64_in("sessionTokenDurationMinutes", 1, max)?.unwrap_or(svc.settings.session.default_minutes);
    let token_type = p.opt_i64_in("sessionTokenType", 0, 1)?.unwrap_or(0);
    if user.status != 0 {
        return Err(ApiError::new(code::USER_DISABLED, format!("User disabled [{}]", crate::error::display_name(&user.username))));
    }
    let token = crypto::random_token();
    let now = svc.now();
    let expires_at = now + minutes * 60;
    let row = SessionTokenRow {
        account_id: caller.account_id(),
        user_id: user.id,
        token_type,
        created_at: now,
        expires_at,
        owner_key: String::new(),
    };
    svc.store.create_session_token(&crypto::secret_hash(&token), &row).await?;
    Ok(reply! {
        "sessionTokenId" => token,
        "expiresAt" => rfc3339(expires_at),
        "sessionTokenType" => token_type,
    })
}

/// Checks the optional `username` against the token's owner (read with the token).
fn owner_matches(p: &Params, row: &SessionTokenRow) -> Result<bool, ApiError> {
    if p.opt_str("username")?.is_none() {
        return Ok(true);
    }
    Ok(username_key(&read_username(p)?) == row.owner_key)
}

async fn is_valid(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let token = p.str("sessionTokenId")?;
    let row = svc.store.session_token(caller.account_id(), &crypto::secret_hash(&token), svc.now()).await?.ok_or_else(invalid_token)?;
    if !owner_matches(p, &row)? {
        return Err(invalid_token());
    }
    Ok(reply! { "expiresAt" => rfc3339(row.expires_at), "sessionTokenType" => row.token_type })
}

async fn expire(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let token = p.str("sessionTokenId")?;
    let hash = crypto::secret_hash(&token);
    let now = svc.now();
    let row = svc.store.session_token(caller.account_id(), &hash, now).await?.ok_or_else(invalid_token)?;
    if !owner_matches(p, &row)? {
        return Err(invalid_token());
    }
    if !svc.store.delete_session_token(caller.account_id(), &hash, now).await? {
        return Err(invalid_token());
    }
    Ok(reply!())
}
