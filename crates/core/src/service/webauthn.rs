//! WebAuthn and passkeys (docs/api.md, "WebAuthn and passkeys"): `webauthn_pre_enroll` →
//! `webauthn_enroll` registers a credential, `webauthn_pre_sign` → `webauthn_sign` signs in, with
//! a username or usernameless (discoverable credentials).
//!
//! One credential store for U2F and WebAuthn: a WebAuthn credential is a device row with
//! deviceType 16 (key_handle = credential id, public_key = COSE_Key, app_id = rpId), beside the U2F
//! keys (deviceType 12, public_key = P-256 point, app_id = appId). Both carry one counter
//! (`u2f_counter`) and one clone flag, so a signature is accepted once whichever path it takes, and
//! a key flagged on one path is refused on both. A U2F key signs in here through the `appid`
//! extension (its rpIdHash is the SHA-256 of the appId).
//!
//! Ceremonies are stored in the database under the SHA-256 of a random sessionId (any node
//! finishes what another began), valid as long as U2F ceremonies, and consumed by one conditional
//! delete by the first call that verifies against them; a call from another account or naming
//! another user leaves them alone. Everything that needs no session (the shape of the credential)
//! is checked before the session is consumed.
//!
//! The message checks are the pure `tessera_u2f::webauthn` module's.

use super::users::load_user;
use super::{Caller, OpResult, Service};
use crate::catalog::{f, FieldSpec, Group, Kind::*, OpSpec};
use crate::crypto;
use crate::error::{code, display_name, ApiError};
use crate::params::Params;
use crate::reply;
use crate::store::{DeviceRow, UserRow, WebAuthnSessionRow};
use rand::rngs::OsRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tessera_u2f as u2f;
use tessera_u2f::webauthn::{self as wa, OriginError, WaError};

/// deviceType of a WebAuthn credential.
pub const DEVICE_TYPE_WEBAUTHN: i64 = 16;
/// otpType of a WebAuthn credential (FIDO, as U2F keys).
pub const OTP_TYPE_FIDO: i64 = 8;
const KIND_REGISTER: &str = "register";
const KIND_SIGN: &str = "sign";
const MAX_RP_ID: usize = 253;
const MAX_RP_NAME: usize = 128;
const MAX_KEY_NAME: usize = 128;

const RP_ID: FieldSpec = f("rpId", Str, true, "The relying party id: the site's registrable domain or a host under it, e.g. example.com.");
const USER_VERIFICATION: FieldSpec =
    f("userVerification", Str, false, "discouraged | preferred (default) | required; required is enforced on the response.");
const SESSION_ID: FieldSpec = f("sessionId", Str, true, "From webauthn_pre_enroll / webauthn_pre_sign.");

const fn op(name: &'static str, summary: &'static str, fields: &'static [FieldSpec]) -> OpSpec {
    OpSpec { name, aliases: &[], reply_type: None, summary, fields, ok_message: "", group: Group::WebAuthn }
}

pub const OPS: &[OpSpec] = &[
    op(
        "webauthn_pre_enroll",
        "Begin registering a WebAuthn credential (security key or passkey): replies sessionId and publicKey = PublicKeyCredentialCreationOptionsJSON.",
        &[
            f("username", Str, true, "The user."),
            RP_ID,
            f("rpName", Str, false, "Relying party name shown by the browser (default: the account name)."),
            f("residentKey", Str, false, "discouraged | preferred (default) | required (a discoverable credential, for usernameless sign-in)."),
            USER_VERIFICATION,
            f("attestation", Str, false, "none (default) | direct."),
            f("authenticatorAttachment", Str, false, "platform | cross-platform."),
        ],
    ),
    op(
        "webauthn_enroll",
        "Finish registering a WebAuthn credential; replies psn, credentialId, fmt, aaguid, userVerified, backupEligible, securityKeyName.",
        &[
            SESSION_ID,
            f("credential", Json, true, "The browser's RegistrationResponseJSON (PublicKeyCredential.toJSON()), as an object or a string."),
            f("username", Str, false, "Checked against the session when given."),
            f("securityKeyName", Str, false, "Friendly name of the credential (default: Security key N)."),
        ],
    ),
    op(
        "webauthn_pre_sign",
        "Begin a WebAuthn sign-in: with username, allowCredentials lists the user's credentials (and U2F keys, through the appid extension); without, a usernameless (discoverable) request.",
        &[
            RP_ID,
            f("username", Str, false, "The user; omit for usernameless sign-in with a passkey."),
            USER_VERIFICATION,
            f("psn", Str, false, "Only this credential of the user."),
        ],
    ),
    op(
        "webauthn_sign",
        "Finish a WebAuthn sign-in; replies username, psn, credentialId, counter, userVerified.",
        &[
            SESSION_ID,
            f("credential", Json, true, "The browser's AuthenticationResponseJSON (PublicKeyCredential.toJSON()), as an object or a string."),
            f("username", Str, false, "When given, the credential must be this user's."),
        ],
    ),
];

pub(super) async fn run(svc: &Service, name: &str, caller: &Caller, p: &Params) -> OpResult {
    match name {
        "webauthn_pre_enroll" => pre_enroll(svc, caller, p).await,
        "webauthn_enroll" => enroll(svc, caller, p).await,
        "webauthn_pre_sign" => pre_sign(svc, caller, p).await,
        "webauthn_sign" => sign(svc, caller, p).await,
        other => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{}]", display_name(other)))),
    }
}

// ---------------------------------------------------------------------------------------------
// ceremony state

/// What a ceremony remembers besides user, rpId and challenge (stored as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    /// The userVerification requested ("required" is enforced).
    uv: String,
    /// Sign: the device ids allowed (empty for a usernameless request).
    #[serde(default)]
    ids: Vec<i64>,
    /// Sign: the appId offered through the appid extension.
    #[serde(default)]
    appid: Option<String>,
}

impl State {
    fn uv_required(&self) -> bool {
        self.uv == "required"
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

fn is_u2f_key(d: &DeviceRow) -> bool {
    d.device_type == super::u2f::DEVICE_TYPE_U2F && d.key_handle.is_some() && d.public_key.is_some()
}

fn is_credential(d: &DeviceRow) -> bool {
    d.device_type == DEVICE_TYPE_WEBAUTHN && d.key_handle.is_some() && d.public_key.is_some()
}

fn session_invalid() -> ApiError {
    ApiError::new(code::U2F_SESSION_INVALID, "WebAuthn sessionId is unknown, expired, already used or belongs to another user")
}

fn key_not_found(what: &str) -> ApiError {
    ApiError::new(code::U2F_KEY_NOT_FOUND, format!("WebAuthn credential not found: {what}"))
}

/// Maps a message-check failure to its error code.
fn wa_error(e: WaError) -> ApiError {
    let c = match &e {
        WaError::Credential(_) | WaError::Base64(_) | WaError::Malformed(_) | WaError::NoAttestedCredential | WaError::BadPublicKey => {
            code::WEBAUTHN_CREDENTIAL_INVALID
        }
        WaError::ClientDataJson | WaError::WrongType { .. } | WaError::CrossOrigin => code::U2F_CLIENT_DATA_INVALID,
        WaError::ChallengeMismatch => code::U2F_CHALLENGE_MISMATCH,
        WaError::RpIdHash => code::WEBAUTHN_RP_ID_MISMATCH,
        WaError::UserNotPresent => code::U2F_USER_NOT_PRESENT,
        WaError::UnsupportedAlgorithm => code::WEBAUTHN_ALGORITHM_UNSUPPORTED,
        WaError::UnsupportedFormat | WaError::Attestation(_) => code::WEBAUTHN_ATTESTATION_INVALID,
        WaError::SignatureInvalid => code::U2F_SIGNATURE_INVALID,
    };
    ApiError::new(c, e.to_string())
}

fn origin_error(e: OriginError) -> ApiError {
    match e {
        OriginError::NotTrusted => ApiError::new(
            code::U2F_ORIGIN_NOT_ALLOWED,
            "clientDataJSON origin is not a trusted facet of the account (tessera account facets add)",
        ),
        OriginError::NotForRpId => ApiError::new(
            code::WEBAUTHN_ORIGIN_RP_MISMATCH,
            "clientDataJSON origin's host is neither the rpId nor a subdomain of it (or the origin is not https)",
        ),
    }
}

/// A `discouraged | preferred | required` field.
fn read_requirement(p: &Params, name: &str) -> Result<String, ApiError> {
    match p.opt_str(name)?.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok("preferred".into()),
        Some(s) if matches!(s.as_str(), "discouraged" | "preferred" | "required") => Ok(s),
        Some(_) => Err(ApiError::invalid(name, "expected discouraged, preferred or required")),
    }
}

/// The rpId: a lower-cased host name (letters, digits, `-`, `.`), no scheme, port or path.
fn read_rp_id(p: &Params) -> Result<String, ApiError> {
    let rp = p.str("rpId")?.trim().to_ascii_lowercase();
    let ok = !rp.is_empty()
        && rp.len() <= MAX_RP_ID
        && rp.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !rp.starts_with('.')
        && !rp.ends_with('.')
        && !rp.contains("..");
    if !ok {
        return Err(ApiError::invalid("rpId", "expected a host name such as example.com (no scheme, port or path)"));
    }
    Ok(rp)
}

fn read_text(p: &Params, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    match p.opt_str(name)?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > max => Err(ApiError::invalid(name, format!("longer than {max} characters"))),
        Some(s) if s.chars().any(char::is_control) => Err(ApiError::invalid(name, "contains control characters")),
        other => Ok(other),
    }
}

/// The `credential` field: a JSON object or a string holding one.
fn read_credential(p: &Params) -> Result<Value, ApiError> {
    match p.opt_json_object("credential") {
        Ok(None) => Err(ApiError::missing("credential")),
        Ok(Some(m)) => Ok(Value::Object(m)),
        Err(_) => Err(ApiError::new(
            code::WEBAUTHN_CREDENTIAL_INVALID,
            "credential is malformed: expected a JSON object (or a string holding one)",
        )),
    }
}

/// The user named by an optional `username` field.
async fn named_user(svc: &Service, caller: &Caller, p: &Params) -> Result<Option<UserRow>, ApiError> {
    match p.opt_str("username")? {
        Some(_) => Ok(Some(load_user(svc, caller, p).await?)),
        None => Ok(None),
    }
}

fn ensure_enabled(user: &UserRow) -> Result<(), ApiError> {
    if user.status != 0 {
        return Err(ApiError::new(code::USER_DISABLED, format!("User disabled [{}]", display_name(&user.username))));
    }
    Ok(())
}

/// The host of an appId (`https://host[:port]/...`), lower-cased.
fn app_id_host(app_id: &str) -> Option<String> {
    let origin = u2f::app_id_origin(app_id)?;
    let authority = origin.split_once("://")?.1;
    Some(authority.split(':').next()?.to_string())
}

/// Whether a U2F key of `app_id` may sign in for `rp_id`: the appId's host is the rpId or a parent
/// domain of it.
fn app_id_serves(app_id: &str, rp_id: &str) -> bool {
    app_id_host(app_id).is_some_and(|h| rp_id == h || rp_id.ends_with(&format!(".{h}")))
}

fn credential_descriptor(d: &DeviceRow) -> Value {
    json!({"type": "public-key", "id": u2f::b64_encode(d.key_handle.as_deref().unwrap_or_default())})
}

async fn begin(
    svc: &Service,
    caller: &Caller,
    user_id: Option<i64>,
    kind: &str,
    rp_id: &str,
    state: &State,
) -> Result<(String, String), ApiError> {
    let mut challenge_bytes = [0u8; 32];
    OsRng.fill(&mut challenge_bytes);
    let challenge = u2f::b64_encode(&challenge_bytes);
    let session_id = crypto::random_token();
    let row = WebAuthnSessionRow {
        account_id: caller.account_id(),
        user_id,
        kind: kind.to_string(),
        rp_id: rp_id.to_string(),
        challenge: challenge.clone(),
        state: serde_json::to_string(state).unwrap_or_default(),
        expires_at: svc.now() + svc.settings.u2f.ceremony_seconds,
    };
    svc.store.create_webauthn_session(&crypto::secret_hash(&session_id), &row).await?;
    Ok((session_id, challenge))
}

async fn consume(
    svc: &Service,
    caller: &Caller,
    kind: &str,
    session_id: &str,
    user: Option<&UserRow>,
) -> Result<(WebAuthnSessionRow, State), ApiError> {
    let row = svc
        .store
        .consume_webauthn_session(caller.account_id(), kind, &crypto::secret_hash(session_id), user.map(|u| u.id), svc.now())
        .await?
        .ok_or_else(session_invalid)?;
    let state: State = serde_json::from_str(&row.state).unwrap_or_default();
    Ok((row, state))
}

fn timeout_ms(svc: &Service) -> i64 {
    svc.settings.u2f.ceremony_seconds.saturating_mul(1000)
}

/// Checks clientDataJSON (type, challenge, not cross-origin) and the origin against the account's
/// facets and the rpId.
async fn check_client(svc: &Service, caller: &Caller, cdj: &[u8], typ: &'static str, session: &WebAuthnSessionRow) -> Result<(), ApiError> {
    let cd = wa::check_client_data(cdj, typ, &session.challenge).map_err(wa_error)?;
    let facets = svc.store.list_facets(caller.account_id()).await?;
    wa::check_origin(&cd.origin, &session.rp_id, &facets).map_err(origin_error)
}

// ---------------------------------------------------------------------------------------------
// registration

async fn pre_enroll(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = load_user(svc, caller, p).await?;
    ensure_enabled(&user)?;
    let rp_id = read_rp_id(p)?;
    let rp_name = read_text(p, "rpName", MAX_RP_NAME)?.unwrap_or_else(|| caller.account.name.clone());
    let resident_key = read_requirement(p, "residentKey")?;
    let uv = read_requirement(p, "userVerification")?;
    let attestation = match p.opt_str("attestation")?.map(|s| s.trim().to_ascii_lowercase()) {
        None => "none".to_string(),
        Some(s) if s == "none" || s == "direct" => s,
        Some(_) => return Err(ApiError::invalid("attestation", "expected none or direct")),
    };
    let attachment = match p.opt_str("authenticatorAttachment")?.map(|s| s.trim().to_ascii_lowercase()) {
        None => None,
        Some(s) if s == "platform" || s == "cross-platform" => Some(s),
        Some(_) => return Err(ApiError::invalid("authenticatorAttachment", "expected platform or cross-platform")),
    };
    let candidate = crypto::random_bytes(32);
    let handle = svc
        .store
        .webauthn_user_handle(caller.account_id(), user.id, &candidate)
        .await?
        .ok_or_else(|| ApiError::user_not_found(&user.username))?;

    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let exclude: Vec<Value> = devices.iter().filter(|d| is_credential(d) || is_u2f_key(d)).map(credential_descriptor).collect();
    let appid_exclude = devices.iter().filter(|d| is_u2f_key(d)).filter_map(|d| d.app_id.clone()).find(|a| app_id_serves(a, &rp_id));

    let state = State { uv: uv.clone(), ..Default::default() };
    let (session_id, challenge) = begin(svc, caller, Some(user.id), KIND_REGISTER, &rp_id, &state).await?;
    let display = format!("{} {}", user.first_name.trim(), user.last_name.trim()).trim().to_string();
    let mut selection = json!({
        "residentKey": resident_key,
        "requireResidentKey": resident_key == "required",
        "userVerification": uv,
    });
    if let (Some(a), Value::Object(m)) = (attachment, &mut selection) {
        m.insert("authenticatorAttachment".into(), Value::String(a));
    }
    let mut extensions = json!({"credProps": true});
    if let (Some(a), Value::Object(m)) = (appid_exclude, &mut extensions) {
        m.insert("appidExclude".into(), Value::String(a));
    }
    let public_key = json!({
        "challenge": challenge,
        "rp": {"id": rp_id, "name": rp_name},
        "user": {
            "id": u2f::b64_encode(&handle),
            "name": user.username.clone(),
            "displayName": if display.is_empty() { user.username.clone() } else { display },
        },
        "pubKeyCredParams": [{"type": "public-key", "alg": wa::ALG_ES256}, {"type": "public-key", "alg": wa::ALG_RS256}],
        "timeout": timeout_ms(svc),
        "excludeCredentials": exclude,
        "authenticatorSelection": selection,
        "attestation": attestation,
        "extensions": extensions,
    });
    Ok(reply! { "sessionId" => session_id, "publicKey" => public_key })
}

async fn enroll(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let session_id = p.str("sessionId")?;
    // A username that names nobody is 9001 before anything else is looked at (docs/api.md).
    let named = named_user(svc, caller, p).await?;
    let cred = wa::parse_registration_response(&read_credential(p)?).map_err(wa_error)?;
    wa::check_registration_structure(&cred.attestation_object).map_err(wa_error)?;
    let key_name = read_text(p, "securityKeyName", MAX_KEY_NAME)?;

    let (session, state) = consume(svc, caller, KIND_REGISTER, &session_id, named.as_ref()).await?;
    let user_id = session.user_id.ok_or_else(session_invalid)?;
    let user = svc.store.user_by_id(caller.account_id(), user_id).await?.ok_or_else(session_invalid)?;
    ensure_enabled(&user)?;
    check_client(svc, caller, &cred.client_data_json, wa::TYPE_CREATE, &session).await?;
    let reg =
        wa::verify_registration(&cred.attestation_object, &cred.client_data_json, &cred.credential_id, &wa::rp_id_hash(&session.rp_id))
            .map_err(wa_error)?;
    let uv = reg.auth_data.user_verified();
    if state.uv_required() && !uv {
        return Err(ApiError::new(
            code::WEBAUTHN_USER_NOT_VERIFIED,
            "userVerification is required and the authenticator did not verify the user",
        ));
    }
    if !svc.store.devices_by_key_handle(caller.account_id(), &reg.credential_id).await?.is_empty() {
        return Err(ApiError::new(code::WEBAUTHN_CREDENTIAL_EXISTS, "this credential is already registered"));
    }
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let key_name = key_name.unwrap_or_else(|| default_key_name(&devices));
    let row = DeviceRow {
        account_id: caller.account_id(),
        user_id: Some(user.id),
        device_type: DEVICE_TYPE_WEBAUTHN,
        otp_type: OTP_TYPE_FIDO,
        status: 0,
        activated: true,
        algorithm: "SHA1".into(),
        digits: 6,
        time_step: 30,
        key_handle: Some(reg.credential_id.clone()),
        public_key: Some(reg.public_key_cose.clone()),
        app_id: Some(session.rp_id.clone()),
        key_name: Some(key_name.clone()),
        u2f_counter: i64::from(reg.auth_data.counter),
        attestation: reg.attestation_cert.clone(),
        created_at: svc.now(),
        ..Default::default()
    };
    let stored = super::u2f::insert_with_psn(svc, row).await?;
    Ok(reply! {
        "psn" => stored.psn,
        "deviceId" => stored.id.to_string(),
        "credentialId" => u2f::b64_encode(&reg.credential_id),
        "fmt" => reg.fmt,
        "aaguid" => wa::aaguid_string(&reg.aaguid),
        "userVerified" => uv,
        "backupEligible" => reg.auth_data.backup_eligible(),
        "backedUp" => reg.auth_data.backup_state(),
        "securityKeyName" => key_name,
    })
}

/// "Security key N" with the smallest N from (number of FIDO keys + 1) that no key of the user has.
fn default_key_name(devices: &[DeviceRow]) -> String {
    let fido: Vec<&DeviceRow> = devices.iter().filter(|d| is_credential(d) || is_u2f_key(d)).collect();
    let mut n = fido.len() + 1;
    loop {
        let name = format!("Security key {n}");
        if !devices.iter().any(|d| d.key_name.as_deref() == Some(name.as_str())) {
            return name;
        }
        n += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// authentication

async fn pre_sign(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = named_user(svc, caller, p).await?;
    let rp_id = read_rp_id(p)?;
    let uv = read_requirement(p, "userVerification")?;
    let psn = p.opt_str("psn")?;
    let mut state = State { uv: uv.clone(), ..Default::default() };
    let mut allow = Vec::new();
    if let Some(user) = &user {
        ensure_enabled(user)?;
        let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
        let mut keys: Vec<DeviceRow> = devices
            .into_iter()
            .filter(|d| {
                (is_credential(d) && d.app_id.as_deref() == Some(rp_id.as_str()))
                    || (is_u2f_key(d) && d.app_id.as_deref().is_some_and(|a| app_id_serves(a, &rp_id)))
            })
            .filter(|d| psn.as_deref().is_none_or(|psn| d.psn == psn))
            .collect();
        // The appid extension carries one appId: U2F keys of the first appId found.
        state.appid = keys.iter().find(|d| is_u2f_key(d)).and_then(|d| d.app_id.clone());
        keys.retain(|d| is_credential(d) || d.app_id == state.appid);
        if keys.is_empty() {
            return Err(key_not_found("the user has no credential for this rpId"));
        }
        keys.retain(|d| d.status == 0);
        if keys.is_empty() {
            return Err(ApiError::new(code::U2F_KEY_DISABLED, "Every credential of the user for this rpId is disabled"));
        }
        state.ids = keys.iter().map(|d| d.id).collect();
        allow = keys.iter().map(credential_descriptor).collect();
    } else if psn.is_some() {
        return Err(ApiError::missing("username"));
    }
    let (session_id, challenge) = begin(svc, caller, user.as_ref().map(|u| u.id), KIND_SIGN, &rp_id, &state).await?;
    let mut public_key = json!({
        "challenge": challenge,
        "timeout": timeout_ms(svc),
        "rpId": rp_id,
        "allowCredentials": allow,
        "userVerification": uv,
    });
    if let (Some(a), Value::Object(m)) = (&state.appid, &mut public_key) {
        m.insert("extensions".into(), json!({"appid": a}));
    }
    Ok(reply! { "sessionId" => session_id, "publicKey" => public_key })
}

async fn sign(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let session_id = p.str("sessionId")?;
    // A username that names nobody is 9001 before anything else is looked at (docs/api.md).
    let named = named_user(svc, caller, p).await?;
    let cred = wa::parse_authentication_response(&read_credential(p)?).map_err(wa_error)?;
    // The authenticator data must at least parse before the session is used up.
    wa::parse_authenticator_data(&cred.authenticator_data).map_err(wa_error)?;

    let (session, state) = consume(svc, caller, KIND_SIGN, &session_id, named.as_ref()).await?;
    check_client(svc, caller, &cred.client_data_json, wa::TYPE_GET, &session).await?;

    let found = svc.store.devices_by_key_handle(caller.account_id(), &cred.credential_id).await?;
    let device = match session.user_id {
        Some(_) => found.into_iter().find(|d| state.ids.contains(&d.id) && d.user_id == session.user_id),
        None => found.into_iter().find(|d| is_credential(d) && d.app_id.as_deref() == Some(session.rp_id.as_str())),
    }
    .ok_or_else(|| key_not_found("no credential of this sign-in request has that id"))?;
    let owner_id = device.user_id.ok_or_else(|| key_not_found("the credential is not assigned to a user"))?;
    if named.as_ref().is_some_and(|u| u.id != owner_id) {
        return Err(key_not_found("the credential is not the named user's"));
    }
    let user = svc.store.user_by_id(caller.account_id(), owner_id).await?.ok_or_else(|| key_not_found("the credential's user is gone"))?;
    // A discoverable credential names its user: the handle must be that user's.
    match &cred.user_handle {
        Some(h) => {
            let stored = svc.store.user_by_webauthn_handle(caller.account_id(), h).await?;
            if stored.map(|u| u.id) != Some(user.id) {
                return Err(ApiError::new(code::WEBAUTHN_USER_HANDLE_MISMATCH, "userHandle is not the handle of the credential's user"));
            }
        }
        None if session.user_id.is_none() => {
            return Err(ApiError::new(code::WEBAUTHN_USER_HANDLE_MISMATCH, "userHandle is missing (required for usernameless sign-in)"));
        }
        None => {}
    }
    ensure_enabled(&user)?;

    let key = wa::PublicKey::from_stored(device.public_key.as_deref().unwrap_or_default()).map_err(wa_error)?;
    let accepted = if is_u2f_key(&device) {
        // A U2F key scoped its credential to the appId it was registered with.
        match device.app_id.as_deref() {
            Some(a) if state.appid.as_deref() == Some(a) => vec![wa::rp_id_hash(a)],
            _ => return Err(key_not_found("the U2F key's appId was not offered in this sign-in request")),
        }
    } else {
        vec![wa::rp_id_hash(&session.rp_id)]
    };
    let ad = wa::verify_assertion(&key, &cred.authenticator_data, &cred.client_data_json, &cred.signature, &accepted).map_err(wa_error)?;
    if device.status != 0 {
        return Err(ApiError::new(code::U2F_KEY_DISABLED, format!("Credential disabled [{}]", display_name(&device.psn))));
    }
    if device.flagged {
        return Err(ApiError::new(
            code::U2F_COUNTER_REGRESSION,
            format!(
                "Credential [{}] is flagged as possibly cloned (its counter went backwards); delete it and register it again",
                display_name(&device.psn)
            ),
        ));
    }
    if !ad.user_present() {
        return Err(ApiError::new(code::U2F_USER_NOT_PRESENT, "user presence was not asserted by the authenticator"));
    }
    if state.uv_required() && !ad.user_verified() {
        return Err(ApiError::new(
            code::WEBAUTHN_USER_NOT_VERIFIED,
            "userVerification is required and the authenticator did not verify the user",
        ));
    }
    if !svc.store.fido_counter_advance(device.id, i64::from(ad.counter)).await? {
        svc.store.u2f_flag(device.id).await?;
        tracing::warn!(
            account = caller.account_id(),
            device = device.id,
            "FIDO counter did not increase: credential flagged as possibly cloned"
        );
        return Err(ApiError::new(
            code::U2F_COUNTER_REGRESSION,
            format!("Credential [{}]: counter did not increase: possible cloned key; the credential is flagged", display_name(&device.psn)),
        ));
    }
    Ok(reply! {
        "username" => user.username,
        "psn" => device.psn,
        "credentialId" => u2f::b64_encode(device.key_handle.as_deref().unwrap_or_default()),
        "counter" => ad.counter,
        "userVerified" => ad.user_verified(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_id_scope() {
        assert!(app_id_serves("https://example.com/appid.json", "example.com"));
        assert!(app_id_serves("https://example.com", "login.example.com"));
        assert!(!app_id_serves("https://login.example.com", "example.com"));
        assert!(!app_id_serves("https://badexample.com", "example.com"));
        assert!(app_id_serves("http://localhost:8080", "localhost"));
    }
}
