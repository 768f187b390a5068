//! FIDO U2F (docs/api.md): device records, registration (`pre_enroll` → `enroll`),
//! authentication (`pre_sign` → `sign`) and key removal.
//!
//! A key lives in a device row (deviceType 12, otpType 8) holding its key handle, public key,
//! appId, friendly name, last counter and attestation certificate. `add_u2f_device` /
//! `add_u2f_account` create such a row without a key; `enroll` binds a key to it (or creates a new
//! row).
//!
//! Ceremonies are kept server-side, so any node can finish what another began: `pre_enroll` /
//! `pre_sign` store user, appId, challenge and (for sign) the allowed keys under the SHA-256 of a
//! random, opaque `sessionId`; `enroll` / `sign` consume that row in one conditional delete (a
//! request from another account or for another user leaves it alone), so each sessionId is used
//! at most once. The sign counter is advanced by a compare-and-set in the database: a counter that
//! did not go up flags the key as possibly cloned (9113) and it is refused from then on.
//!
//! base64 input is accepted in both alphabets, padded or not; output is URL-safe without padding.
//! The message parsing and signature checks are the pure `tessera_u2f` crate's.

use super::users::{self, load_user};
use super::{Caller, OpResult, Service};
use crate::catalog::{f, FieldSpec, Group, Kind::*, OpSpec};
use crate::crypto;
use crate::error::{code, display_name, ApiError, StoreError};
use crate::params::Params;
use crate::reply;
use crate::store::{DeviceRow, U2fSessionRow, UserRow};
use rand::rngs::OsRng;
use rand::Rng;
use serde_json::{json, Value};
use tessera_u2f::{self as u2f, U2fError};

/// deviceType of a FIDO U2F key (docs/api.md).
pub const DEVICE_TYPE_U2F: i64 = 12;
/// otpType of a FIDO U2F key.
pub const OTP_TYPE_U2F: i64 = 8;
/// The only protocol version spoken.
const VERSION: &str = "U2F_V2";
const KIND_REGISTER: &str = "register";
const KIND_SIGN: &str = "sign";
/// Longest appId accepted (characters).
const MAX_APP_ID: usize = 2048;
/// Longest friendly key name accepted (characters).
const MAX_KEY_NAME: usize = 128;
/// Tries at finding a free generated psn before giving up.
const PSN_ATTEMPTS: usize = 16;

const USERNAME: FieldSpec = f("username", Str, true, "The user.");
const APP_ID: FieldSpec = f("appId", Str, true, "FIDO appId (alias appId:), e.g. https://rp.example.com.");
const USER_FIELDS: &[FieldSpec] = &[
    users::USERNAME,
    users::FIRST_NAME,
    users::LAST_NAME,
    users::MOBILE,
    users::EMAIL,
    users::PW,
    users::USER_STATUS,
    users::ADD_DEVICE_ONLY,
    users::NOTIFICATION_METHOD,
];
const fn op(
    name: &'static str,
    aliases: &'static [&'static str],
    reply_type: Option<&'static str>,
    summary: &'static str,
    fields: &'static [FieldSpec],
) -> OpSpec {
    OpSpec { name, aliases, reply_type, summary, fields, ok_message: "", group: Group::U2f }
}

pub const OPS: &[OpSpec] = &[
    op(
        "add_u2f_device",
        &[],
        None,
        "Create a U2F device record for a user (no key yet: pre_enroll/enroll binds one); replies deviceId and psn.",
        &[
            USERNAME,
            f("deviceType", Int, false, "12 (FIDO U2F); other values are ignored."),
            f("otpType", Int, false, "8 (U2F; alias OtpType); other values are ignored."),
            f("notificationMethod", Int, false, "0 none, 1 email, 2 sms."),
        ],
    ),
    op(
        "add_u2f_account",
        &["add_u2f_user"],
        None,
        "Create a user and a U2F device record in one call (addDeviceOnly: the device only); replies deviceId and psn.",
        USER_FIELDS,
    ),
    op(
        "pre_enroll",
        &[],
        Some("u2f_register_request"),
        "Begin registering a U2F key: RegisterRequest (challenge, sessionId) and SignRequest (the keys already registered for this appId).",
        &[USERNAME, APP_ID, f("psn", Str, false, "Bind the key to this U2F device record of the user.")],
    ),
    op(
        "enroll",
        &[],
        None,
        "Finish registering a U2F key; replies keyHandle, psn and securityKeyName.",
        &[
            USERNAME,
            f("registrationData", Str, true, "The authenticator's registration response (base64)."),
            f("clientData", Str, true, "The browser's clientData (base64), exactly as received."),
            f("sessionId", Str, true, "From pre_enroll."),
            f("securityKeyName", Str, false, "Friendly name of the key (default: Security key N)."),
            f("psn", Str, false, "Bind the key to this U2F device record of the user (overrides pre_enroll's)."),
            f("version", Str, false, "U2F_V2."),
        ],
    ),
    op(
        "pre_sign",
        &[],
        Some("u2f_sign_request"),
        "Begin a U2F authentication: one SignRequest per enabled key for this appId, sharing one challenge and sessionId.",
        &[USERNAME, APP_ID, f("psn", Str, false, "Only this key.")],
    ),
    op(
        "sign",
        &[],
        None,
        "Finish a U2F authentication; replies keyHandle, counter and psn.",
        &[
            USERNAME,
            f("signatureData", Str, true, "The authenticator's sign response (base64)."),
            f("clientData", Str, true, "The browser's clientData (base64), exactly as received."),
            f("sessionId", Str, true, "From pre_sign."),
            f("keyHandle", Str, false, "The SignResponse's keyHandle (base64); without it every key of the session is tried."),
            f("psn", Str, false, "Only this key."),
            f("version", Str, false, "U2F_V2."),
        ],
    ),
    op(
        "delete_key",
        &[],
        None,
        "Delete a user's U2F key by keyHandle (securityKeyType 0) or friendly name (1); replies deleted.",
        &[
            USERNAME,
            f("securityKeyName", Str, true, "The keyHandle (base64) or the friendly name."),
            f("securityKeyType", Int, false, "0 = securityKeyName is a keyHandle (default), 1 = a friendly name."),
            f("appId", Str, false, "Only keys of this appId."),
        ],
    ),
    op(
        "delete_all_keys",
        &[],
        None,
        "Delete every U2F key (device record) of a user, or only those of appId; replies deleted.",
        &[USERNAME, f("appId", Str, false, "Only keys of this appId.")],
    ),
];

pub(super) async fn run(svc: &Service, name: &str, caller: &Caller, p: &Params) -> OpResult {
    match name {
        "add_u2f_device" => add_u2f_device(svc, caller, p).await,
        "add_u2f_account" => add_u2f_account(svc, caller, p).await,
        "pre_enroll" => pre_enroll(svc, caller, p).await,
        "enroll" => enroll(svc, caller, p).await,
        "pre_sign" => pre_sign(svc, caller, p).await,
        "sign" => sign(svc, caller, p).await,
        "delete_key" => delete_key(svc, caller, p).await,
        "delete_all_keys" => delete_all_keys(svc, caller, p).await,
        other => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{}]", display_name(other)))),
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

fn is_u2f(d: &DeviceRow) -> bool {
    d.device_type == DEVICE_TYPE_U2F
}

/// A WebAuthn credential (deviceType 16): removed by delete_key / delete_all_keys like U2F keys
/// (its appId is its rpId).
fn is_webauthn(d: &DeviceRow) -> bool {
    d.device_type == super::webauthn::DEVICE_TYPE_WEBAUTHN && d.key_handle.is_some()
}

/// A U2F device record that holds a key.
fn is_bound(d: &DeviceRow) -> bool {
    is_u2f(d) && d.key_handle.is_some() && d.public_key.is_some()
}

fn app_id_is(d: &DeviceRow, app_id: &str) -> bool {
    d.app_id.as_deref() == Some(app_id)
}

fn user_disabled(user: &UserRow) -> ApiError {
    ApiError::new(code::USER_DISABLED, format!("User disabled [{}]", display_name(&user.username)))
}

fn ensure_enabled(user: &UserRow) -> Result<(), ApiError> {
    if user.status != 0 {
        return Err(user_disabled(user));
    }
    Ok(())
}

fn key_not_found(what: &str) -> ApiError {
    ApiError::new(code::U2F_KEY_NOT_FOUND, format!("U2F key not found: {what}"))
}

fn key_disabled(d: &DeviceRow) -> ApiError {
    ApiError::new(code::U2F_KEY_DISABLED, format!("U2F key disabled [{}]", display_name(&d.psn)))
}

fn session_invalid() -> ApiError {
    ApiError::new(code::U2F_SESSION_INVALID, "U2F sessionId is unknown, expired or already used")
}

fn registration_error(e: U2fError) -> ApiError {
    ApiError::new(code::U2F_REGISTRATION_INVALID, format!("registrationData invalid: {e}"))
}

fn signature_error(e: U2fError) -> ApiError {
    ApiError::new(code::U2F_SIGNATURE_INVALID, format!("signatureData invalid: {e}"))
}

fn client_data_error(e: U2fError) -> ApiError {
    match e {
        U2fError::ChallengeMismatch => {
            ApiError::new(code::U2F_CHALLENGE_MISMATCH, "clientData challenge is not the challenge of this sessionId")
        }
        U2fError::OriginNotAllowed => ApiError::new(
            code::U2F_ORIGIN_NOT_ALLOWED,
            "clientData origin is neither the appId's origin nor a trusted facet of the account",
        ),
        other => ApiError::new(code::U2F_CLIENT_DATA_INVALID, format!("clientData invalid: {other}")),
    }
}

/// A required base64 field, decoded; bad base64 is `err_code`.
fn b64_field(p: &Params, name: &str, err_code: i64) -> Result<Vec<u8>, ApiError> {
    let s = p.str(name)?;
    u2f::b64_decode(&s).map_err(|_| ApiError::new(err_code, format!("{name} is not valid base64")))
}

fn read_app_id(p: &Params, required: bool) -> Result<Option<String>, ApiError> {
    let app_id = if required { Some(p.str("appId")?) } else { p.opt_str("appId")? };
    match app_id {
        Some(a) if a.chars().count() > MAX_APP_ID => Err(ApiError::invalid("appId", format!("longer than {MAX_APP_ID} characters"))),
        Some(a) if a.chars().any(char::is_control) => Err(ApiError::invalid("appId", "contains control characters")),
        other => Ok(other),
    }
}

fn read_key_name(p: &Params) -> Result<Option<String>, ApiError> {
    match p.opt_str("securityKeyName")?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > MAX_KEY_NAME => {
            Err(ApiError::invalid("securityKeyName", format!("longer than {MAX_KEY_NAME} characters")))
        }
        Some(s) if s.chars().any(char::is_control) => Err(ApiError::invalid("securityKeyName", "contains control characters")),
        other => Ok(other),
    }
}

fn check_version(p: &Params) -> Result<(), ApiError> {
    match p.opt_str("version")? {
        Some(v) if v.trim() != VERSION => Err(ApiError::invalid("version", "only U2F_V2 is supported")),
        _ => Ok(()),
    }
}

/// `{prefix}-{8 random digits}` (one generator for every kind of device).
fn generate_psn(svc: &Service) -> String {
    super::oath::generate_psn(&svc.settings.otp.psn_prefix)
}

/// A U2F device row of `user_id` without a key.
fn new_device(svc: &Service, caller: &Caller, user_id: i64) -> DeviceRow {
    DeviceRow {
        account_id: caller.account_id(),
        user_id: Some(user_id),
        device_type: DEVICE_TYPE_U2F,
        otp_type: OTP_TYPE_U2F,
        status: 0,
        algorithm: "SHA1".into(),
        digits: 6,
        time_step: 30,
        u2f_counter: -1,
        created_at: svc.now(),
        ..Default::default()
    }
}

/// Inserts `d` under a freshly generated psn, retrying on a psn conflict.
pub(super) async fn insert_with_psn(svc: &Service, mut d: DeviceRow) -> Result<DeviceRow, ApiError> {
    for _ in 0..PSN_ATTEMPTS {
        d.psn = generate_psn(svc);
        match svc.store.create_device(&d).await {
            Ok(id) => {
                d.id = id;
                return Ok(d);
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(code::DEVICE_EXISTS, "Could not find a free psn for the new device; try again"))
}

fn read_notification(p: &Params) -> Result<(), ApiError> {
    // Accepted and checked; welcome messages are sent by the delivery module (not here).
    p.opt_i64_in("notificationMethod", 0, 2).map(|_| ())
}

fn device_reply(d: &DeviceRow) -> crate::service::Reply {
    reply! { "deviceId" => d.id.to_string(), "psn" => d.psn }
}

/// The origins a clientData may come from: the appId's origin and the account's trusted facets.
async fn allowed_origins(svc: &Service, caller: &Caller, app_id: &str) -> Result<Vec<String>, ApiError> {
    let mut origins = svc.store.list_facets(caller.account_id()).await?;
    if let Some(o) = u2f::app_id_origin(app_id) {
        origins.push(o);
    }
    Ok(origins)
}

/// Consumes the ceremony `session_id` of this account and user (9110 if there is none).
async fn consume(svc: &Service, caller: &Caller, user: &UserRow, kind: &str, session_id: &str) -> Result<U2fSessionRow, ApiError> {
    svc.store
        .consume_u2f_session(caller.account_id(), user.id, kind, &crypto::secret_hash(session_id), svc.now())
        .await?
        .ok_or_else(session_invalid)
}

/// Stores a new ceremony; returns (sessionId, challenge).
async fn begin(
    svc: &Service,
    caller: &Caller,
    user: &UserRow,
    kind: &str,
    app_id: &str,
    device_ids: Vec<i64>,
    target_device: Option<i64>,
) -> Result<(String, String), ApiError> {
    let mut challenge_bytes = [0u8; 32];
    OsRng.fill(&mut challenge_bytes);
    let challenge = u2f::challenge_from_bytes(&challenge_bytes);
    let session_id = crypto::random_token();
    let row = U2fSessionRow {
        account_id: caller.account_id(),
        user_id: user.id,
        kind: kind.to_string(),
        app_id: app_id.to_string(),
        challenge: challenge.clone(),
        device_ids,
        target_device,
        expires_at: svc.now() + svc.settings.u2f.ceremony_seconds,
    };
    svc.store.create_u2f_session(&crypto::secret_hash(&session_id), &row).await?;
    Ok((session_id, challenge))
}

/// The U2F device record named by `psn` that a key may be bound to: a U2F device of this user (or
/// unassigned) without a key yet.
async fn bind_target(svc: &Service, caller: &Caller, user: &UserRow, psn: &str) -> Result<DeviceRow, ApiError> {
    let d = svc.store.device_by_psn(caller.account_id(), psn).await?.ok_or_else(|| ApiError::device_not_found(psn))?;
    if !is_u2f(&d) {
        return Err(ApiError::new(code::DEVICE_TYPE_INVALID, format!("Device [{}] is not a U2F device", display_name(psn))));
    }
    match d.user_id {
        Some(owner) if owner != user.id => {
            return Err(ApiError::new(code::DEVICE_IN_USE, format!("Device [{}] belongs to another user", display_name(psn))));
        }
        _ => {}
    }
    if d.key_handle.is_some() {
        return Err(ApiError::new(
            code::DEVICE_IN_USE,
            format!("Device [{}] already holds a U2F key; delete the key first", display_name(psn)),
        ));
    }
    Ok(d)
}

/// "Security key N" with the smallest N from (number of keys + 1) that no key of the user has.
fn default_key_name(devices: &[DeviceRow]) -> String {
    let names: Vec<&str> = devices.iter().filter(|d| is_u2f(d)).filter_map(|d| d.key_name.as_deref()).collect();
    let mut n = devices.iter().filter(|d| is_bound(d)).count() + 1;
    loop {
        let name = format!("Security key {n}");
        if !names.contains(&name.as_str()) {
            return name;
        }
        n += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// device records

async fn add_u2f_device(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    read_notification(p)?;
    let d = insert_with_psn(svc, new_device(svc, caller, user.id)).await?;
    Ok(device_reply(&d))
}

async fn add_u2f_account(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let (user, method) = if p.bool_or("addDeviceOnly", false)? {
        let user = load_user(svc, caller, p).await?;
        let method = super::delivery::welcome_method(p, Some(&user))?;
        (user, method)
    } else {
        let method = super::delivery::welcome_method(p, None)?;
        (users::add_user(svc, caller, p).await?, method)
    };
    let d = insert_with_psn(svc, new_device(svc, caller, user.id)).await?;
    super::delivery::welcome_after_create(svc, caller, &user, method).await;
    Ok(device_reply(&d))
}

// ---------------------------------------------------------------------------------------------
// registration

async fn pre_enroll(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    ensure_enabled(&user)?;
    let app_id = read_app_id(p, true)?.unwrap_or_default();
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let target = match p.opt_str("psn")? {
        Some(psn) => Some(bind_target(svc, caller, &user, &psn).await?.id),
        None => devices.iter().find(|d| is_u2f(d) && d.key_handle.is_none()).map(|d| d.id),
    };
    let (session_id, challenge) = begin(svc, caller, &user, KIND_REGISTER, &app_id, Vec::new(), target).await?;
    let registered: Vec<Value> = devices
        .iter()
        .filter(|d| is_bound(d) && app_id_is(d, &app_id))
        .filter_map(|d| d.key_handle.as_deref())
        .map(|kh| {
            json!({
                "challenge": challenge,
                "appId": app_id,
                "sessionId": session_id,
                "keyHandle": u2f::b64_encode(kh),
                "version": VERSION,
            })
        })
        .collect();
    Ok(reply! {
        "SignRequest" => registered,
        "RegisterRequest" => [json!({"challenge": challenge, "appId": app_id, "sessionId": session_id, "version": VERSION})],
    })
}

async fn enroll(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    ensure_enabled(&user)?;
    check_version(p)?;
    let session_id = p.str("sessionId")?;
    // Everything that needs no session is checked first, so a malformed request does not use it up.
    let reg_bytes = b64_field(p, "registrationData", code::U2F_REGISTRATION_INVALID)?;
    let client_data = b64_field(p, "clientData", code::U2F_CLIENT_DATA_INVALID)?;
    let reg = u2f::parse_registration(&reg_bytes).map_err(registration_error)?;
    if reg.key_handle.is_empty() {
        return Err(ApiError::new(code::U2F_REGISTRATION_INVALID, "registrationData invalid: the key handle is empty"));
    }
    let key_name = read_key_name(p)?;
    let psn_target = match p.opt_str("psn")? {
        Some(psn) => Some(bind_target(svc, caller, &user, &psn).await?.id),
        None => None,
    };

    let session = consume(svc, caller, &user, KIND_REGISTER, &session_id).await?;
    let origins = allowed_origins(svc, caller, &session.app_id).await?;
    u2f::check_client_data(&client_data, u2f::TYP_REGISTER, &session.challenge, &origins).map_err(client_data_error)?;
    u2f::verify_registration(&reg, &session.app_id, &client_data).map_err(registration_error)?;

    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let duplicate =
        devices.iter().any(|d| is_bound(d) && app_id_is(d, &session.app_id) && d.key_handle.as_deref() == Some(reg.key_handle.as_slice()));
    if duplicate {
        return Err(ApiError::new(
            code::U2F_REGISTRATION_INVALID,
            "registrationData invalid: this security key is already registered for the user and appId",
        ));
    }
    let key_name = key_name.unwrap_or_else(|| default_key_name(&devices));
    let mut key = new_device(svc, caller, user.id);
    key.key_handle = Some(reg.key_handle.clone());
    key.public_key = Some(reg.public_key.to_vec());
    key.app_id = Some(session.app_id.clone());
    key.key_name = Some(key_name.clone());
    key.attestation = Some(reg.attestation_cert.clone());
    key.activated = true;
    // -1: the first signature may carry counter 0.
    key.u2f_counter = -1;

    let bound = bind_or_insert(svc, caller, &user, psn_target.or(session.target_device), key).await?;
    Ok(reply! {
        "keyHandle" => u2f::b64_encode(&reg.key_handle),
        "psn" => bound.psn,
        "securityKeyName" => key_name,
        "deviceId" => bound.id.to_string(),
    })
}

/// Binds `key` to the device record `target` if it is still a keyless U2F record of this user (or
/// unassigned); otherwise stores it as a new device record.
async fn bind_or_insert(
    svc: &Service,
    caller: &Caller,
    user: &UserRow,
    target: Option<i64>,
    mut key: DeviceRow,
) -> Result<DeviceRow, ApiError> {
    if let Some(id) = target {
        if let Some(d) = svc.store.device_by_id(caller.account_id(), id).await? {
            let usable = is_u2f(&d) && d.key_handle.is_none() && d.user_id.is_none_or(|u| u == user.id);
            if usable {
                key.id = d.id;
                key.psn = d.psn.clone();
                key.status = d.status;
                key.created_at = d.created_at;
                // Conditional in the store: a record that got a key meanwhile is left alone.
                if svc.store.u2f_bind(&key).await? {
                    return Ok(key);
                }
            }
        }
    }
    key.id = 0;
    key.status = 0;
    insert_with_psn(svc, key).await
}

// ---------------------------------------------------------------------------------------------
// authentication

async fn pre_sign(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    ensure_enabled(&user)?;
    let app_id = read_app_id(p, true)?.unwrap_or_default();
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let keys: Vec<DeviceRow> = match p.opt_str("psn")? {
        Some(psn) => {
            let d = devices
                .into_iter()
                .find(|d| d.psn == psn && is_bound(d) && app_id_is(d, &app_id))
                .ok_or_else(|| key_not_found(&format!("the user has no key [{}] for this appId", display_name(&psn))))?;
            if d.status != 0 {
                return Err(key_disabled(&d));
            }
            vec![d]
        }
        None => {
            let all: Vec<DeviceRow> = devices.into_iter().filter(|d| is_bound(d) && app_id_is(d, &app_id)).collect();
            if all.is_empty() {
                return Err(key_not_found("the user has no key registered for this appId"));
            }
            let enabled: Vec<DeviceRow> = all.into_iter().filter(|d| d.status == 0).collect();
            if enabled.is_empty() {
                return Err(ApiError::new(code::U2F_KEY_DISABLED, "Every U2F key of the user for this appId is disabled"));
            }
            enabled
        }
    };
    let ids = keys.iter().map(|d| d.id).collect();
    let (session_id, challenge) = begin(svc, caller, &user, KIND_SIGN, &app_id, ids, None).await?;
    let requests: Vec<Value> = keys
        .iter()
        .filter_map(|d| d.key_handle.as_deref())
        .map(|kh| {
            json!({
                "challenge": challenge,
                "appId": app_id,
                "sessionId": session_id,
                "keyHandle": u2f::b64_encode(kh),
                "version": VERSION,
            })
        })
        .collect();
    Ok(reply! { "SignRequest" => requests, "RegisterRequest" => Vec::<Value>::new() })
}

async fn sign(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    ensure_enabled(&user)?;
    check_version(p)?;
    let session_id = p.str("sessionId")?;
    // Everything that needs no session is checked first, so a malformed request does not use it up.
    let sig_bytes = b64_field(p, "signatureData", code::U2F_SIGNATURE_INVALID)?;
    let client_data = b64_field(p, "clientData", code::U2F_CLIENT_DATA_INVALID)?;
    let resp = u2f::parse_sign_response(&sig_bytes).map_err(signature_error)?;
    let key_handle = match p.opt_str("keyHandle")? {
        Some(s) => Some(u2f::b64_decode(&s).map_err(|_| ApiError::invalid("keyHandle", "not valid base64"))?),
        None => None,
    };
    let psn = p.opt_str("psn")?;

    let session = consume(svc, caller, &user, KIND_SIGN, &session_id).await?;
    let origins = allowed_origins(svc, caller, &session.app_id).await?;
    u2f::check_client_data(&client_data, u2f::TYP_SIGN, &session.challenge, &origins).map_err(client_data_error)?;

    // The keys this ceremony was begun for, as far as they are still this user's keys.
    let mut candidates = Vec::new();
    for id in &session.device_ids {
        if let Some(d) = svc.store.device_by_id(caller.account_id(), *id).await? {
            if d.user_id == Some(user.id) && is_bound(&d) && app_id_is(&d, &session.app_id) {
                candidates.push(d);
            }
        }
    }
    if let Some(kh) = &key_handle {
        candidates.retain(|d| d.key_handle.as_deref() == Some(kh.as_slice()));
    }
    if let Some(psn) = &psn {
        candidates.retain(|d| &d.psn == psn);
    }
    if candidates.is_empty() {
        return Err(key_not_found("no key of this sign request matches"));
    }
    let mut verified = None;
    let mut failure = U2fError::SignatureInvalid;
    for d in candidates {
        match u2f::verify_signature(d.public_key.as_deref().unwrap_or_default(), &session.app_id, &client_data, &resp) {
            Ok(()) => {
                verified = Some(d);
                break;
            }
            Err(e) => failure = e,
        }
    }
    let device = verified.ok_or_else(|| signature_error(failure))?;
    if device.status != 0 {
        return Err(key_disabled(&device));
    }
    if device.flagged {
        return Err(ApiError::new(
            code::U2F_COUNTER_REGRESSION,
            format!(
                "U2F key [{}] is flagged as possibly cloned (its counter went backwards); register it again",
                display_name(&device.psn)
            ),
        ));
    }
    u2f::check_user_presence(&resp).map_err(|e| ApiError::new(code::U2F_USER_NOT_PRESENT, e.to_string()))?;
    if !svc.store.u2f_counter_advance(device.id, i64::from(resp.counter)).await? {
        svc.store.u2f_flag(device.id).await?;
        tracing::warn!(account = caller.account_id(), device = device.id, "U2F counter did not increase: key flagged as possibly cloned");
        return Err(ApiError::new(
            code::U2F_COUNTER_REGRESSION,
            format!("U2F key [{}]: counter did not increase: possible cloned key; the key is flagged", display_name(&device.psn)),
        ));
    }
    Ok(reply! {
        "keyHandle" => u2f::b64_encode(device.key_handle.as_deref().unwrap_or_default()),
        "counter" => resp.counter,
        "psn" => device.psn,
    })
}

// ---------------------------------------------------------------------------------------------
// removal

async fn delete_key(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    let ident = p.str("securityKeyName")?;
    let by_name = p.opt_i64_in("securityKeyType", 0, 1)?.unwrap_or(0) == 1;
    let app_id = read_app_id(p, false)?;
    let key_handle = if by_name {
        None
    } else {
        Some(u2f::b64_decode(&ident).map_err(|_| {
            ApiError::invalid("securityKeyName", "not a base64 keyHandle (securityKeyType 0); use securityKeyType 1 for a friendly name")
        })?)
    };
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let doomed: Vec<&DeviceRow> = devices
        .iter()
        .filter(|d| is_bound(d) || is_webauthn(d))
        .filter(|d| app_id.as_deref().is_none_or(|a| app_id_is(d, a)))
        .filter(|d| match &key_handle {
            Some(kh) => d.key_handle.as_deref() == Some(kh.as_slice()),
            None => d.key_name.as_deref() == Some(ident.trim()),
        })
        .collect();
    if doomed.is_empty() {
        return Err(key_not_found(if by_name { "no key of the user has that name" } else { "no key of the user has that keyHandle" }));
    }
    let mut deleted = 0;
    for d in doomed {
        if svc.store.delete_device(caller.account_id(), d.id).await? {
            deleted += 1;
        }
    }
    if deleted == 0 {
        return Err(key_not_found("the key was deleted meanwhile"));
    }
    Ok(reply! { "deleted" => deleted })
}

async fn delete_all_keys(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    let app_id = read_app_id(p, false)?;
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let mut deleted = 0;
    for d in devices.iter().filter(|d| (is_u2f(d) || is_webauthn(d)) && app_id.as_deref().is_none_or(|a| app_id_is(d, a))) {
        if svc.store.delete_device(caller.account_id(), d.id).await? {
            deleted += 1;
        }
    }
    Ok(reply! { "deleted" => deleted })
}
