//! Users: add, update, delete, find, search and first-factor validation (docs/api.md).

use super::{Caller, OpResult, Service};
use crate::catalog::{f, FieldSpec, Group, Kind::*, OpSpec};
use crate::crypto;
use crate::error::{code, ApiError, StoreError};
use crate::params::Params;
use crate::reply;
use crate::store::{DeviceRow, UserPatch, UserRow};
use serde_json::{json, Value};
use unicode_normalization::UnicodeNormalization;

pub const USERNAME: FieldSpec = f("username", Str, true, "The user's login name (unique per account, case-insensitive).");
pub const FIRST_NAME: FieldSpec = f("firstName", Str, false, "First name.");
pub const LAST_NAME: FieldSpec = f("lastName", Str, false, "Last name.");
pub const MOBILE: FieldSpec = f("mobile", Str, false, "Mobile number, e.g. +1(800)200-8411; used for sms and voice.");
pub const EMAIL: FieldSpec = f("email", Str, false, "Email address; used for email passcodes and notifications.");
pub const PW: FieldSpec = f("pw", Str, false, "Password (alias: password); plain, or {sha256}/{sha384}/{sha512} + base64 digest.");
pub const USER_STATUS: FieldSpec = f("userStatus", Int, false, "0 = enabled, 1 = disabled.");
/// Fields of add_oath_account / add_u2f_account beyond the user's.
pub const ADD_DEVICE_ONLY: FieldSpec = f("addDeviceOnly", Bool, false, "true = only add the device to an existing user.");
pub const NOTIFICATION_METHOD: FieldSpec = f("notificationMethod", Int, false, "Welcome message: 0 none, 1 email, 2 sms.");
const USER_FIELDS: &[FieldSpec] = &[USERNAME, FIRST_NAME, LAST_NAME, MOBILE, EMAIL, PW, USER_STATUS];

const fn op(name: &'static str, aliases: &'static [&'static str], summary: &'static str, fields: &'static [FieldSpec]) -> OpSpec {
    OpSpec { name, aliases, reply_type: None, summary, fields, ok_message: "OK", group: Group::Users }
}

pub const OPS: &[OpSpec] = &[
    op("add_user", &[], "Add a user.", USER_FIELDS),
    op("update_user", &[], "Update a user; omitted or empty fields keep their value.", USER_FIELDS),
    op(
        "delete_user",
        &[],
        "Delete a user with their devices, keys and session tokens (hardware tokens return to the inventory).",
        &[USERNAME, f("removeRelated", Bool, false, "Also delete the user's audit trail.")],
    ),
    op("find_user", &[], "A user's details and devices.", &[USERNAME]),
    op(
        "find_users",
        &[],
        "Search users by username or email with SQL wildcards (% and _); at most 1000 results.",
        &[
            f("queryFilter", Str, false, "Pattern, e.g. ma%; default %."),
            f("queryFilterType", Str, false, "username (default) or email; alias queryType."),
        ],
    ),
    op(
        "validate_user",
        &["validate_u2f_user"],
        "Check a user's password (first factor), or with noAuth=1 only report status and devices.",
        &[USERNAME, f("pw", Str, false, "Password to check."), f("noAuth", Int, false, "1 = do not check the password.")],
    ),
];

pub(super) async fn run(svc: &Service, name: &str, caller: &Caller, p: &Params) -> OpResult {
    match name {
        "add_user" => add_user(svc, caller, p).await.map(|_| reply!()),
        "update_user" => update_user(svc, caller, p).await,
        "delete_user" => delete_user(svc, caller, p).await,
        "find_user" => find_user(svc, caller, p).await,
        "find_users" => find_users(svc, caller, p).await,
        "validate_user" => validate_user(svc, caller, p).await,
        other => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{other}]"))),
    }
}

/// The form under which usernames are unique and looked up: NFKC, lower-cased, NFKC again (RFC 8265's
/// UsernameCaseMapped profile in spirit: `jos\u{e9}` and `jose\u{301}` are one user, and so are
/// fullwidth `\u{ff43}\u{ff41}\u{ff52}\u{ff4f}\u{ff4c}` and `carol`). See docs/api.md, "Users".
pub fn username_key(username: &str) -> String {
    let folded: String = username.trim().nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

/// Whether `c` is a Unicode Default_Ignorable_Code_Point (zero-width characters, soft hyphen, bidi
/// and other format controls, variation selectors, tags...): invisible, so refused in usernames.
pub fn is_default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Emoji and pictographic symbols (the blocks emoji sequences are built from).
fn is_pictographic(c: char) -> bool {
    matches!(u32::from(c), 0x1F000..=0x1FAFF | 0x2300..=0x23FF | 0x2600..=0x27BF | 0x2B00..=0x2BFF)
}

/// Checks a username as given (before [`username_key`]): 1..=256 characters, no control,
/// zero-width or other default-ignorable characters, no line or paragraph separators.
pub fn check_username(u: &str) -> Result<(), ApiError> {
    if u.is_empty() {
        return Err(ApiError::missing("username"));
    }
    if u.chars().count() > 256 {
        return Err(ApiError::invalid("username", "longer than 256 characters"));
    }
    if u.chars().any(char::is_control) {
        return Err(ApiError::invalid("username", "contains control characters"));
    }
    let chars: Vec<char> = u.chars().collect();
    let invisible = chars.iter().enumerate().any(|(i, &c)| {
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        // Emoji sequences keep their joiner and presentation selector (`👩‍💻`, `❤️`).
        let emoji_joiner =
            c == '\u{200D}' && prev.is_some_and(|p| is_pictographic(p) || p == '\u{FE0F}') && next.is_some_and(is_pictographic);
        let emoji_selector = c == '\u{FE0F}' && prev.is_some_and(is_pictographic);
        (is_default_ignorable(c) && !emoji_joiner && !emoji_selector) || matches!(c, '\u{2028}' | '\u{2029}')
    });
    if invisible {
        return Err(ApiError::invalid("username", "contains invisible (zero-width, format or other default-ignorable) characters"));
    }
    Ok(())
}

/// Reads and checks `username` (see [`check_username`]).
pub fn read_username(p: &Params) -> Result<String, ApiError> {
    let u = p.str("username")?;
    let u = u.trim().to_string();
    check_username(&u)?;
    Ok(u)
}

/// Loads the request's user: 9001 if there is none in this account (on every type, so that no
/// other code tells an unknown user from a known one).
pub async fn load_user(svc: &Service, caller: &Caller, p: &Params) -> Result<UserRow, ApiError> {
    let username = read_username(p)?;
    svc.store.user_by_key(caller.account_id(), &username_key(&username)).await?.ok_or_else(|| ApiError::user_login(&username))
}

fn read_status(p: &Params) -> Result<Option<i64>, ApiError> {
    p.opt_i64_in("userStatus", 0, 1)
}

fn read_text(p: &Params, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    match p.opt_str(name)? {
        Some(s) if s.chars().count() > max => Err(ApiError::invalid(name, format!("longer than {max} characters"))),
        Some(s) if s.chars().any(char::is_control) => Err(ApiError::invalid(name, "contains control characters")),
        other => Ok(other),
    }
}

/// Whether `s` is an email address: `local@domain`, the local part 1..=64 characters without
/// spaces, the domain dot-separated labels of letters, digits and `-` (not at either end of a label).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | '(' | ')' | ',' | ';' | ':' | '"'));
    let domain_ok = !domain.is_empty()
        && domain.len() <= 255
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.chars().count() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

/// Reads `email`: absent, or an address ([`is_email`]), else 9103 naming the field.
fn read_email(p: &Params) -> Result<Option<String>, ApiError> {
    match read_text(p, "email", 320)? {
        Some(e) if e.trim().is_empty() => Ok(None),
        Some(e) if is_email(e.trim()) => Ok(Some(e.trim().to_string())),
        Some(_) => Err(ApiError::invalid("email", "not an email address (expected name@domain)")),
        None => Ok(None),
    }
}

/// Reads `mobile`: absent, or a phone number that normalises to E.164 (kept as given), else 9103.
fn read_mobile(p: &Params) -> Result<Option<String>, ApiError> {
    match read_text(p, "mobile", 64)? {
        Some(m) if m.trim().is_empty() => Ok(None),
        Some(m) => match super::delivery::normalize_e164(&m) {
            Ok(_) => Ok(Some(m.trim().to_string())),
            Err(why) => Err(ApiError::invalid("mobile", format!("not a phone number in international form: {why}"))),
        },
        None => Ok(None),
    }
}

/// argon2id needs 19 MiB and tens of milliseconds per call: at most this many run at once (per
/// process), so a burst of logins queues instead of exhausting memory and threads.
fn argon2_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cores.clamp(2, 16))
    })
}

/// Runs an argon2 job on the blocking pool once a slot is free.
async fn with_argon2_slot<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _permit = argon2_slots().acquire().await.ok()?;
    tokio::task::spawn_blocking(job).await.ok()
}

async fn hash_pw(pw: String) -> Result<String, ApiError> {
    with_argon2_slot(move || crypto::hash_password(&pw))
        .await
        .ok_or_else(|| ApiError::new(code::INTERNAL_ERROR, "password hashing was interrupted"))?
        .map_err(|e| ApiError::invalid("pw", e))
}

/// Verifies a password off the async threads (argon2 takes tens of milliseconds).
pub async fn check_password(candidate: String, stored: String) -> bool {
    with_argon2_slot(move || crypto::verify_password(&candidate, &stored)).await.unwrap_or(false)
}

/// Adds a user from the request's fields; shared with add_oath_account / add_u2f_account.
pub async fn add_user(svc: &Service, caller: &Caller, p: &Params) -> Result<UserRow, ApiError> {
    let username = read_username(p)?;
    let mut user = UserRow {
        account_id: caller.account_id(),
        username: username.clone(),
        first_name: read_text(p, "firstName", 256)?.unwrap_or_default(),
        last_name: read_text(p, "lastName", 256)?.unwrap_or_default(),
        mobile: read_mobile(p)?.unwrap_or_default(),
        email: read_email(p)?.unwrap_or_default(),
        password_hash: None,
        status: read_status(p)?.unwrap_or(0),
        created_at: svc.now(),
        ..Default::default()
    };
    if let Some(pw) = p.opt_str("pw")? {
        user.password_hash = Some(hash_pw(pw).await?);
    }
    match svc.store.create_user(&user, &username_key(&username)).await {
        Ok(id) => {
            user.id = id;
            Ok(user)
        }
        Err(StoreError::Conflict) => {
            Err(ApiError::new(code::USER_EXISTS, format!("User already exists [{}]", crate::error::display_name(&username))))
        }
        Err(e) => Err(e.into()),
    }
}

async fn update_user(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    let mut patch = UserPatch {
        first_name: read_text(p, "firstName", 256)?,
        last_name: read_text(p, "lastName", 256)?,
        mobile: read_mobile(p)?,
        email: read_email(p)?,
        password_hash: None,
        status: read_status(p)?,
    };
    if let Some(pw) = p.opt_str("pw")? {
        patch.password_hash = Some(hash_pw(pw).await?);
    }
    if !svc.store.update_user(caller.account_id(), user.id, &patch).await? {
        return Err(ApiError::user_login(&user.username));
    }
    Ok(reply!())
}

async fn delete_user(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    let remove_related = p.bool_or("removeRelated", false)?;
    if !svc.store.delete_user(caller.account_id(), user.id, &username_key(&user.username), remove_related).await? {
        return Err(ApiError::user_login(&user.username));
    }
    Ok(reply!())
}

/// The `Devices` array of find_user / validate_user.
pub fn devices_json(devices: &[DeviceRow]) -> Value {
    Value::Array(
        devices
            .iter()
            .map(|d| {
                json!({
                    "psn": d.psn,
                    "tokenID": d.id.to_string(),
                    "deviceId": d.id.to_string(),
                    "deviceType": d.device_type,
                    "otpType": d.otp_type,
                    "deviceStatus": d.status,
                    "keyName": d.key_name,
                    "appId": d.app_id,
                })
            })
            .collect(),
    )
}

/// The user part of find_user / validate_user(noAuth).
pub async fn user_info(svc: &Service, caller: &Caller, user: &UserRow) -> OpResult {
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    Ok(reply! {
        "Devices" => devices_json(&devices),
        "username" => user.username,
        "userStatus" => user.status,
        "firstName" => user.first_name,
        "lastName" => user.last_name,
        "mobile" => user.mobile,
        "email" => user.email,
    })
}

async fn find_user(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    user_info(svc, caller, &user).await
}

async fn find_users(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let pattern = p.opt_str("queryFilter")?.unwrap_or_else(|| "%".into());
    if pattern.chars().count() > 256 {
        return Err(ApiError::invalid("queryFilter", "longer than 256 characters"));
    }
    let kind = match p.opt_str("queryFilterType")? {
        Some(k) => Some(k),
        None => p.opt_str("queryType")?,
    };
    let by_email = match kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("username") | Some("loginname") | Some("0") => false,
        Some("email") | Some("1") => true,
        Some(_) => return Err(ApiError::invalid("queryFilterType", "must be username or email")),
    };
    let users = svc.store.find_users(caller.account_id(), &pattern.to_lowercase(), by_email, 1000).await?;
    let list: Vec<Value> = users.iter().map(|u| json!({"username": u.username, "email": u.email})).collect();
    Ok(reply! { "Users" => list })
}

/// Checks a user's password with throttling: the one check behind `validate_user`,
/// `create_session_token` (and any other front door that takes a password).
///
/// Each check is first reserved in the database by one conditional update that counts it as a
/// failure unless the user is locked (`[otp] max_failures` consecutive failures lock the user for
/// `lockout_seconds`); a right password then resets the count. So a burst of concurrent guesses,
/// on any number of nodes, gets at most `max_failures` checks before the lockout, and a right
/// password during the lockout is refused too (9015). Password failures are counted apart from
/// any device's OTP failures.
///
/// An unknown user (`user` None) or a user without a password costs the same as a wrong password
/// (the same reservation statement, matching no row, and one argon2 verification of a dummy hash),
/// and is answered the same: 9001.
pub async fn verify_password(
    svc: &Service,
    caller: &Caller,
    user: Option<&UserRow>,
    username: &str,
    candidate: String,
) -> Result<(), ApiError> {
    let now = svc.now();
    let otp = &svc.settings.otp;
    let user_id = user.map(|u| u.id).unwrap_or(-1);
    let reserved =
        svc.store.password_attempt(caller.account_id(), user_id, now, otp.max_failures, now + otp.lockout_seconds.max(0)).await?;
    if user.is_some() && !reserved {
        return Err(ApiError::new(
            code::TOO_MANY_FAILURES,
            format!("Too many failed password attempts; user locked, try again later [{}]", crate::error::display_name(username)),
        ));
    }
    let stored = user.and_then(|u| u.password_hash.clone());
    let ok = check_password(candidate, stored.clone().unwrap_or_else(|| svc.dummy_password_hash.clone())).await && stored.is_some();
    match user {
        Some(u) if ok => {
            svc.store.password_reset(caller.account_id(), u.id).await?;
            Ok(())
        }
        _ => Err(ApiError::user_login(username)),
    }
}

async fn validate_user(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let username = read_username(p)?;
    let no_auth = p.opt_i64("noAuth")?.unwrap_or(0) != 0;
    let user = svc.store.user_by_key(caller.account_id(), &username_key(&username)).await?;
    if no_auth {
        let user = user.ok_or_else(|| ApiError::user_login(&username))?;
        return user_info(svc, caller, &user).await;
    }
    let candidate = p.opt_str("pw")?.unwrap_or_default();
    verify_password(svc, caller, user.as_ref(), &username, candidate).await?;
    let u = user.ok_or_else(|| ApiError::user_login(&username))?;
    if u.status != 0 {
        return Err(ApiError::new(code::USER_DISABLED, format!("User disabled [{}]", crate::error::display_name(&u.username))));
    }
    user_info(svc, caller, &u).await
}
