//! OATH devices and OTP validation (docs/api.md).
//!
//! Device management (`add_oath_device`, `add_oath_account`, `find_device`, `assign_device`,
//! `unassign_device`, `delete_device`, `enable_device`, `disable_device`), activation and
//! resynchronisation with two consecutive codes (`active_oath_device`, `sync_oath_device`),
//! validation (`validate_oath_otp`) and soft-token provisioning (`get_oath_device_qrcode`).
//!
//! Invariants:
//! * Seeds are stored sealed (`MasterKey::seal_seed`, bound to account and psn) and opened only in
//!   memory ([`Zeroizing`]); neither seeds nor codes are ever logged or put in a message.
//! * Whatever must happen once is decided by a conditional write in the store: an accepted code
//!   advances the stored counter with `otp_accept` (`WHERE counter <= matched`), so of two requests
//!   carrying the same code exactly one wins, on any number of server processes; the loser gets 9002.
//!   A resync is conditional the same way (`otp_resync`).
//! * HOTP/TOTP codes are compared in constant time by `tessera-otp`.
//! * A replayed code (9002) does not count toward the lockout; a wrong code (9003) does.

use super::sent::{check_sent_code, SentCheck};
use super::users::{self, read_username, username_key};
use super::{Caller, OpResult, Service};
use crate::catalog::{f, FieldSpec, Group, Kind::*, OpSpec};
use crate::crypto;
use crate::error::{code, display_name, ApiError, StoreError};
use crate::params::Params;
use crate::reply;
use crate::store::{DeviceRow, UserRow};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::Rng;
use serde_json::Value;
use tessera_otp::{find_counter, find_step, totp_step, Algorithm, KeyUri, OtpKind};
use zeroize::{Zeroize, Zeroizing};

/// deviceType of an OATH soft token (authenticator app).
pub const DEVICE_SOFT: i64 = 13;
/// deviceType of an OATH hardware token.
pub const DEVICE_HARDWARE: i64 = 14;
/// deviceType of an out-of-band device (codes only sent by sms / email / voice).
pub const DEVICE_OUT_OF_BAND: i64 = 15;
/// otpType HOTP (event based).
pub const OTP_HOTP: i64 = 1;
/// otpType TOTP (time based).
pub const OTP_TOTP: i64 = 2;
/// otpType OCRA (not supported).
pub const OTP_OCRA: i64 = 3;

/// Seeds shorter than 80 bits or longer than 1024 bits are refused.
const SEED_MIN_BYTES: usize = 10;
const SEED_MAX_BYTES: usize = 128;
/// Longest psn accepted.
const PSN_MAX_CHARS: usize = 64;
/// Bounds of the per-device windows (each validation costs one HMAC per candidate).
const WINDOW_SIZE_MAX: i64 = 100;
const TIME_DRIFT_MAX: i64 = 10;
/// Attempts at a fresh generated psn before giving up.
const PSN_ATTEMPTS: usize = 8;
/// QR rendering: pixels per module and modules of quiet zone around the code.
const QR_SCALE: usize = 4;
const QR_QUIET: usize = 4;

const USERNAME_OPT: FieldSpec = f("username", Str, false, "The user (optional).");
const PSN_REQ: FieldSpec = f("psn", Str, true, "The device's printed serial number (alias: printedSerialNumber).");

const DEVICE_TYPE: FieldSpec = f("deviceType", Int, false, "13 = soft token (default), 14 = hardware token, 15 = out-of-band.");
const OTP_TYPE: FieldSpec = f("otpType", Int, false, "1 = HOTP (default), 2 = TOTP; 3 (OCRA) is not supported. Alias: OtpType.");
const OTP_LENGTH: FieldSpec = f("OtpLength", Int, false, "Code length: 6 (default) or 8.");
const WINDOW_SIZE: FieldSpec = f("windowSize", Int, false, "HOTP look-ahead in counters (1..100; default 10).");
const TIME_DRIFT: FieldSpec = f("timeDrift", Int, false, "TOTP steps accepted either side (1..10; default 1).");
const OTP_PIN: FieldSpec = f("OtpPin", Str, false, "Accepted and ignored.");
const ALGORITHM: FieldSpec = f("algorithm", Str, false, "SHA1 (default), SHA256 or SHA512 (case-insensitive).");
const TIME_STEP: FieldSpec = f("timeStep", Int, false, "TOTP step in seconds: 30 (default) or 60.");
const PSN_OPT: FieldSpec = f("psn", Str, false, "Serial number; generated (PREFIX-8 digits) when omitted.");
const SECRET_HEX: FieldSpec =
    f("secretKeyHex", Str, false, "The seed in hex; a random one is generated when neither secret field is given.");
const SECRET_B64: FieldSpec = f("secretKeyHexBase64", Str, false, "The seed as standard base64 of its raw bytes.");

const DEVICE_FIELDS: &[FieldSpec] = &[
    f("username", Str, false, "If given, the device is assigned to this user."),
    DEVICE_TYPE,
    OTP_TYPE,
    OTP_LENGTH,
    WINDOW_SIZE,
    TIME_DRIFT,
    OTP_PIN,
    ALGORITHM,
    TIME_STEP,
    PSN_OPT,
    SECRET_HEX,
    SECRET_B64,
];

const ACCOUNT_FIELDS: &[FieldSpec] = &[
    users::USERNAME,
    users::FIRST_NAME,
    users::LAST_NAME,
    users::MOBILE,
    users::EMAIL,
    users::PW,
    users::USER_STATUS,
    users::ADD_DEVICE_ONLY,
    users::NOTIFICATION_METHOD,
    DEVICE_TYPE,
    OTP_TYPE,
    OTP_LENGTH,
    WINDOW_SIZE,
    TIME_DRIFT,
    ALGORITHM,
    TIME_STEP,
    PSN_OPT,
    SECRET_HEX,
    SECRET_B64,
];

const RESYNC_FIELDS: &[FieldSpec] = &[
    f("username", Str, false, "The device's user (required when psn is omitted)."),
    f("otp1", Str, true, "A code of the device (numbers are left-padded with zeros to the device's length)."),
    f("otp2", Str, true, "The code right after otp1."),
    f("psn", Str, false, "The device; default the user's first OATH device."),
];

const fn op(name: &'static str, aliases: &'static [&'static str], summary: &'static str, fields: &'static [FieldSpec]) -> OpSpec {
    OpSpec { name, aliases, reply_type: None, summary, fields, ok_message: "OK", group: Group::Oath }
}

pub const OPS: &[OpSpec] = &[
    op("add_oath_device", &[], "Add an OATH device (optionally assigned to a user); replies deviceId and psn.", DEVICE_FIELDS),
    op("add_oath_account", &["add_oath_user"], "Add a user and an OATH device in one call; replies deviceId and psn.", ACCOUNT_FIELDS),
    op("find_device", &[], "A device's type, status and assignment.", &[PSN_REQ]),
    op(
        "assign_device",
        &[],
        "Assign a device to a user (9019 if it is another user's, unless force).",
        &[f("username", Str, true, "The user."), PSN_REQ, f("force", Int, false, "1 = take it from its current user.")],
    ),
    op("unassign_device", &[], "Detach a device from its user (it stays in the account's inventory).", &[PSN_REQ, USERNAME_OPT]),
    op("delete_device", &[], "Delete a device.", &[PSN_REQ, f("username", Str, false, "If given, the device must be this user's.")]),
    op("enable_device", &[], "Enable a device; also clears its failure count and lockout.", &[PSN_REQ, USERNAME_OPT]),
    op("disable_device", &[], "Disable a device (validations answer 9028).", &[PSN_REQ, USERNAME_OPT]),
    op(
        "active_oath_device",
        &["activate", "activate_device"],
        "Activate an OATH device with two consecutive codes (and resynchronise it).",
        RESYNC_FIELDS,
    ),
    op("sync_oath_device", &[], "Resynchronise an OATH device with two consecutive codes (lifts a lockout).", RESYNC_FIELDS),
    op(
        "validate_oath_otp",
        &[],
        "Validate a passcode of the user's OATH device, or a code sent to the user.",
        &[
            f("username", Str, true, "The user."),
            f("otp", Str, true, "The passcode (alias: code)."),
            f("psn", Str, false, "The device; default the user's first enabled OATH device."),
        ],
    ),
    op(
        "get_oath_device_qrcode",
        &[],
        "QR code (PNG data URL) and otpauth:// URI of an OATH device, for authenticator apps.",
        &[
            f("deviceId", Str, false, "The device id returned when it was created (or give psn)."),
            f("psn", Str, false, "The device's serial number (or give deviceId)."),
            f("accountName", Str, false, "Label shown in the app; default the username or psn."),
            USERNAME_OPT,
        ],
    ),
];

pub(super) async fn run(svc: &Service, name: &str, caller: &Caller, p: &Params) -> OpResult {
    match name {
        "add_oath_device" => add_oath_device(svc, caller, p).await,
        "add_oath_account" => add_oath_account(svc, caller, p).await,
        "find_device" => find_device(svc, caller, p).await,
        "assign_device" => assign_device(svc, caller, p).await,
        "unassign_device" => unassign_device(svc, caller, p).await,
        "delete_device" => delete_device(svc, caller, p).await,
        "enable_device" => set_status(svc, caller, p, 0).await,
        "disable_device" => set_status(svc, caller, p, 1).await,
        "active_oath_device" | "sync_oath_device" => resync(svc, caller, p).await,
        "validate_oath_otp" => validate(svc, caller, p).await,
        "get_oath_device_qrcode" => qrcode(svc, caller, p).await,
        other => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{other}]"))),
    }
}

// ---------------------------------------------------------------------------------------------
// pure helpers

/// Whether a device is an OATH token (soft, hardware or out-of-band with HOTP / TOTP).
pub fn is_oath(d: &DeviceRow) -> bool {
    matches!(d.device_type, DEVICE_SOFT | DEVICE_HARDWARE | DEVICE_OUT_OF_BAND) && matches!(d.otp_type, OTP_HOTP | OTP_TOTP)
}

/// A passcode as sent: JSON numbers and digit-only strings shorter than the device's length are
/// left-padded with zeros (`12345` is `"012345"` for a 6-digit device: JSON cannot carry the
/// leading zero). Spaces are removed (`"123 456"`). Anything else is kept as is and simply never
/// matches. `None` for values that are not a passcode at all (objects, fractions, negatives).
pub fn normalize_otp(v: &Value, digits: usize) -> Option<String> {
    let s = match v {
        Value::Number(n) => n.as_u64()?.to_string(),
        Value::String(s) => s.chars().filter(|c| !c.is_ascii_whitespace()).collect(),
        _ => return None,
    };
    if !s.is_empty() && s.len() < digits && s.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!("{s:0>digits$}"))
    } else {
        Some(s)
    }
}

/// A generated psn: `{prefix}-{8 random digits}` (just the digits with an empty prefix).
pub fn generate_psn(prefix: &str) -> String {
    let n: u32 = rand::rngs::OsRng.gen_range(0..100_000_000);
    if prefix.is_empty() {
        format!("{n:08}")
    } else {
        format!("{prefix}-{n:08}")
    }
}

/// Length of a generated seed: the algorithm's output size (RFC 4226 / RFC 6238 practice).
pub fn default_seed_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    }
}

/// Decodes `secretKeyHex` / `secretKeyHexBase64`; errors name the field and never echo the value.
pub fn decode_secret(field: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let text = text.trim();
    let bytes = if field == "secretKeyHexBase64" {
        STANDARD.decode(text).map_err(|_| ApiError::invalid(field, "not valid base64"))?
    } else {
        let hex_text = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
        hex::decode(hex_text).map_err(|_| ApiError::invalid(field, "not valid hex (an even number of 0-9, a-f)"))?
    };
    let bytes = Zeroizing::new(bytes);
    if bytes.len() < SEED_MIN_BYTES || bytes.len() > SEED_MAX_BYTES {
        return Err(ApiError::invalid(field, format!("the seed must be {SEED_MIN_BYTES} to {SEED_MAX_BYTES} bytes long")));
    }
    Ok(bytes)
}

/// The vendor-shaped 9003 message (never carries the code).
fn otp_invalid(kind: &str, psn: &str, window: i64) -> ApiError {
    ApiError::new(code::OTP_INVALID, format!("OTP [{kind}] [{}] FAILED - outside window [size={window}] or invalid.", display_name(psn)))
}

fn otp_used(kind: &str, psn: &str) -> ApiError {
    ApiError::new(code::OTP_ALREADY_USED, format!("OTP [{kind}] [{}] already used.", display_name(psn)))
}

fn kind_label(d: &DeviceRow) -> &'static str {
    if d.otp_type == OTP_TOTP {
        "TIME"
    } else {
        "EVENT"
    }
}

fn device_disabled(psn: &str) -> ApiError {
    ApiError::new(code::DEVICE_DISABLED, format!("Device disabled [{}]", display_name(psn)))
}

fn device_locked(psn: &str) -> ApiError {
    ApiError::new(code::TOO_MANY_FAILURES, format!("Too many failed validations; device locked [{}]", display_name(psn)))
}

fn not_oath(psn: &str) -> ApiError {
    ApiError::new(code::DEVICE_INVALID, format!("Device is not an OATH token with a secret [{}]", display_name(psn)))
}

fn user_disabled(user: &UserRow) -> ApiError {
    ApiError::new(code::USER_DISABLED, format!("User disabled [{}]", display_name(&user.username)))
}

fn algorithm_of(d: &DeviceRow) -> Algorithm {
    Algorithm::parse(&d.algorithm).unwrap_or_default()
}

fn digits_of(d: &DeviceRow) -> u32 {
    u32::try_from(d.digits).unwrap_or(6)
}

/// Renders `data` as a QR code PNG (8-bit grayscale, 4 pixels per module, 4 modules of quiet zone).
pub fn qr_png(data: &[u8]) -> Result<Vec<u8>, String> {
    let qr = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M).map_err(|e| format!("QR encoding failed: {e}"))?;
    let n = qr.width();
    let side = (n + 2 * QR_QUIET) * QR_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in qr.to_colors().iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = ((i % n + QR_QUIET) * QR_SCALE, (i / n + QR_QUIET) * QR_SCALE);
        for row in y..y + QR_SCALE {
            if let Some(line) = pixels.get_mut(row * side + x..row * side + x + QR_SCALE) {
                line.fill(0);
            }
        }
    }
    let side32 = u32::try_from(side).map_err(|_| "QR code too large".to_string())?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side32, side32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| format!("PNG encoding failed: {e}"))?;
        w.write_image_data(&pixels).map_err(|e| format!("PNG encoding failed: {e}"))?;
        w.finish().map_err(|e| format!("PNG encoding failed: {e}"))?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// reading requests

fn read_psn(p: &Params) -> Result<Option<String>, ApiError> {
    match p.opt_str("psn")? {
        None => Ok(None),
        Some(s) => {
            let s = s.trim().to_string();
            if s.is_empty() {
                Ok(None)
            } else if s.chars().count() > PSN_MAX_CHARS {
                Err(ApiError::invalid("psn", format!("longer than {PSN_MAX_CHARS} characters")))
            } else if s.chars().any(char::is_control) {
                Err(ApiError::invalid("psn", "contains control characters"))
            } else {
                Ok(Some(s))
            }
        }
    }
}

fn require_psn(p: &Params) -> Result<String, ApiError> {
    read_psn(p)?.ok_or_else(|| ApiError::missing("psn"))
}

/// The OATH parameters of a device to create.
struct DeviceSpec {
    device_type: i64,
    otp_type: i64,
    digits: i64,
    algorithm: Algorithm,
    time_step: i64,
    window_size: Option<i64>,
    time_drift: Option<i64>,
    psn: Option<String>,
    seed: Option<Zeroizing<Vec<u8>>>,
}

fn read_device_spec(p: &Params) -> Result<DeviceSpec, ApiError> {
    let device_type = p.opt_i64("deviceType")?.unwrap_or(DEVICE_SOFT);
    if !matches!(device_type, DEVICE_SOFT | DEVICE_HARDWARE | DEVICE_OUT_OF_BAND) {
        return Err(ApiError::new(
            code::DEVICE_TYPE_INVALID,
            format!("deviceType {device_type} is not an OATH device type (13 soft, 14 hardware, 15 out-of-band)"),
        ));
    }
    let otp_type = p.opt_i64("otpType")?.unwrap_or(OTP_HOTP);
    match otp_type {
        OTP_HOTP | OTP_TOTP => {}
        OTP_OCRA => return Err(ApiError::new(code::OTP_TYPE_INVALID, "otpType 3 (OCRA) is not supported")),
        other => return Err(ApiError::new(code::OTP_TYPE_INVALID, format!("otpType {other} is not supported (1 HOTP, 2 TOTP)"))),
    }
    let digits = p.opt_i64("OtpLength")?.unwrap_or(6);
    if digits != 6 && digits != 8 {
        return Err(ApiError::invalid("OtpLength", "must be 6 or 8"));
    }
    // The documented ranges, 0 included in what is refused (omit the field for the default).
    let window_size = p.opt_i64_in("windowSize", 1, WINDOW_SIZE_MAX)?;
    let time_drift = p.opt_i64_in("timeDrift", 1, TIME_DRIFT_MAX)?;
    let algorithm = match p.opt_str("algorithm")? {
        None => Algorithm::Sha1,
        Some(a) => Algorithm::parse(a.trim()).ok_or_else(|| ApiError::invalid("algorithm", "must be SHA1, SHA256 or SHA512"))?,
    };
    let time_step = p.opt_i64("timeStep")?.unwrap_or(30);
    if time_step != 30 && time_step != 60 {
        return Err(ApiError::invalid("timeStep", "must be 30 or 60"));
    }
    let hex_seed = p.opt_str("secretKeyHex")?.map(Zeroizing::new);
    let b64_seed = p.opt_str("secretKeyHexBase64")?.map(Zeroizing::new);
    let seed = match (hex_seed, b64_seed) {
        (Some(h), Some(b)) => {
            let from_hex = decode_secret("secretKeyHex", &h)?;
            let from_b64 = decode_secret("secretKeyHexBase64", &b)?;
            if !crypto::ct_eq(&from_hex, &from_b64) {
                return Err(ApiError::invalid("secretKeyHexBase64", "differs from secretKeyHex (give one of them)"));
            }
            Some(from_hex)
        }
        (Some(h), None) => Some(decode_secret("secretKeyHex", &h)?),
        (None, Some(b)) => Some(decode_secret("secretKeyHexBase64", &b)?),
        (None, None) => None,
    };
    Ok(DeviceSpec { device_type, otp_type, digits, algorithm, time_step, window_size, time_drift, psn: read_psn(p)?, seed })
}

// ---------------------------------------------------------------------------------------------
// loading

async fn load_device_by_psn(svc: &Service, caller: &Caller, psn: &str) -> Result<DeviceRow, ApiError> {
    svc.store.device_by_psn(caller.account_id(), psn).await?.ok_or_else(|| ApiError::device_not_found(psn))
}

/// The request's optional `username`, loaded (9001 if given but unknown).
async fn optional_user(svc: &Service, caller: &Caller, p: &Params) -> Result<Option<UserRow>, ApiError> {
    if p.opt_str("username")?.is_none() {
        return Ok(None);
    }
    users::load_user(svc, caller, p).await.map(Some)
}

/// The device named by `psn`, which must belong to `user` when one is given (else 9021: another
/// user's device is not found for this one).
async fn device_for(svc: &Service, caller: &Caller, psn: &str, user: Option<&UserRow>) -> Result<DeviceRow, ApiError> {
    let d = load_device_by_psn(svc, caller, psn).await?;
    match user {
        Some(u) if d.user_id != Some(u.id) => Err(ApiError::device_not_found(psn)),
        _ => Ok(d),
    }
}

/// The user's default OATH device: the first enabled one with a seed, else the first enabled one,
/// else the first one (a disabled device then answers 9028). 9021 if the user has none.
pub(crate) async fn default_oath_device(svc: &Service, caller: &Caller, user: &UserRow) -> Result<DeviceRow, ApiError> {
    let devices: Vec<DeviceRow> = svc.store.devices_of_user(caller.account_id(), user.id).await?.into_iter().filter(is_oath).collect();
    let pick = devices
        .iter()
        .position(|d| d.status == 0 && d.seed.is_some())
        .or_else(|| devices.iter().position(|d| d.status == 0))
        .or(if devices.is_empty() { None } else { Some(0) });
    pick.and_then(|i| devices.into_iter().nth(i)).ok_or_else(|| {
        ApiError::new(code::DEVICE_NOT_FOUND, format!("Device not found: user [{}] has no OATH device", display_name(&user.username)))
    })
}

fn open_seed(svc: &Service, d: &DeviceRow) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let sealed = d.seed.as_deref().ok_or_else(|| not_oath(&d.psn))?;
    svc.master_key.open_seed(d.account_id, &d.psn, sealed).ok_or_else(|| {
        tracing::error!(device_id = d.id, "a device seed cannot be opened with this master key");
        ApiError::new(code::INTERNAL_ERROR, "The device's secret cannot be read on this server")
    })
}

// ---------------------------------------------------------------------------------------------
// device management

/// Creates the device (assigned to `user_id` when given); returns (id, psn).
async fn create_device(svc: &Service, caller: &Caller, spec: DeviceSpec, user_id: Option<i64>) -> Result<(i64, String), ApiError> {
    let seed = match spec.seed {
        Some(s) => Some(s),
        None if spec.device_type == DEVICE_OUT_OF_BAND => None,
        None => Some(Zeroizing::new(crypto::random_bytes(default_seed_len(spec.algorithm)))),
    };
    for _ in 0..PSN_ATTEMPTS {
        let psn = spec.psn.clone().unwrap_or_else(|| generate_psn(&svc.settings.otp.psn_prefix));
        let row = DeviceRow {
            account_id: caller.account_id(),
            user_id,
            psn: psn.clone(),
            device_type: spec.device_type,
            otp_type: spec.otp_type,
            status: 0,
            activated: true,
            seed: seed.as_ref().map(|s| svc.master_key.seal_seed(caller.account_id(), &psn, s)),
            algorithm: spec.algorithm.as_str().to_string(),
            digits: spec.digits,
            time_step: spec.time_step,
            counter: 0,
            drift: 0,
            window_size: spec.window_size,
            time_drift: spec.time_drift,
            u2f_counter: -1,
            created_at: svc.now(),
            ..Default::default()
        };
        match svc.store.create_device(&row).await {
            Ok(id) => return Ok((id, psn)),
            Err(StoreError::Conflict) if spec.psn.is_none() => continue,
            Err(StoreError::Conflict) => {
                return Err(ApiError::new(code::DEVICE_EXISTS, format!("Device already exists [{}]", display_name(&psn))));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(code::INTERNAL_ERROR, "Could not generate a unique psn; try again"))
}

async fn add_oath_device(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = optional_user(svc, caller, p).await?;
    let spec = read_device_spec(p)?;
    let (id, psn) = create_device(svc, caller, spec, user.map(|u| u.id)).await?;
    Ok(reply! { "deviceId" => id.to_string(), "psn" => psn })
}

async fn add_oath_account(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    // Everything about the device is checked before the user is created.
    let spec = read_device_spec(p)?;
    if p.bool_or("addDeviceOnly", false)? {
        let user = users::load_user(svc, caller, p).await?;
        let method = super::delivery::welcome_method(p, Some(&user))?;
        let (id, psn) = create_device(svc, caller, spec, Some(user.id)).await?;
        super::delivery::welcome_after_create(svc, caller, &user, method).await;
        return Ok(reply! { "deviceId" => id.to_string(), "psn" => psn });
    }
    let method = super::delivery::welcome_method(p, None)?;
    let user = users::add_user(svc, caller, p).await?;
    match create_device(svc, caller, spec, Some(user.id)).await {
        Ok((id, psn)) => {
            super::delivery::welcome_after_create(svc, caller, &user, method).await;
            Ok(reply! { "deviceId" => id.to_string(), "psn" => psn })
        }
        Err(e) => {
            // Not one transaction: undo the user so that a retry can succeed.
            if let Err(undo) = svc.store.delete_user(caller.account_id(), user.id, &username_key(&user.username), true).await {
                tracing::error!(error = %undo, "could not remove a user whose device creation failed");
            }
            Err(e)
        }
    }
}

async fn find_device(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let psn = require_psn(p)?;
    let d = load_device_by_psn(svc, caller, &psn).await?;
    let mut r = reply! {
        "deviceId" => d.id.to_string(),
        "psn" => d.psn,
        "deviceType" => d.device_type,
        "otpType" => d.otp_type,
        "deviceStatus" => d.status,
        "assigned" => i64::from(d.user_id.is_some()),
    };
    if let Some(uid) = d.user_id {
        if let Some(u) = svc.store.user_by_id(caller.account_id(), uid).await? {
            r.insert("username".into(), Value::String(u.username));
        }
    }
    Ok(r)
}

async fn assign_device(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = users::load_user(svc, caller, p).await?;
    let psn = require_psn(p)?;
    let force = p.bool_or("force", false)?;
    let d = load_device_by_psn(svc, caller, &psn).await?;
    // The conditional update decides: of two concurrent assigns without force only one can win.
    if svc.store.assign_device(caller.account_id(), d.id, Some(user.id), !force).await? {
        return Ok(reply!());
    }
    match svc.store.device_by_id(caller.account_id(), d.id).await? {
        None => Err(ApiError::device_not_found(&psn)),
        Some(now) if now.user_id == Some(user.id) => Ok(reply!()),
        Some(_) => Err(ApiError::new(code::DEVICE_IN_USE, format!("Device is assigned to another user [{}]", display_name(&psn)))),
    }
}

async fn unassign_device(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let psn = require_psn(p)?;
    let user = optional_user(svc, caller, p).await?;
    let d = device_for(svc, caller, &psn, user.as_ref()).await?;
    if !svc.store.assign_device(caller.account_id(), d.id, None, false).await? {
        return Err(ApiError::device_not_found(&psn));
    }
    Ok(reply!())
}

async fn delete_device(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let psn = require_psn(p)?;
    let user = optional_user(svc, caller, p).await?;
    let d = device_for(svc, caller, &psn, user.as_ref()).await?;
    if !svc.store.delete_device(caller.account_id(), d.id).await? {
        return Err(ApiError::device_not_found(&psn));
    }
    Ok(reply!())
}

async fn set_status(svc: &Service, caller: &Caller, p: &Params, status: i64) -> OpResult {
    let psn = require_psn(p)?;
    let user = optional_user(svc, caller, p).await?;
    let d = device_for(svc, caller, &psn, user.as_ref()).await?;
    if !svc.store.set_device_status(caller.account_id(), d.id, status).await? {
        return Err(ApiError::device_not_found(&psn));
    }
    Ok(reply!())
}

// ---------------------------------------------------------------------------------------------
// activation / resync

fn read_code(p: &Params, name: &str, digits: usize) -> Result<String, ApiError> {
    let raw = p.raw(name).ok_or_else(|| ApiError::missing(name))?;
    normalize_otp(raw, digits).ok_or_else(|| ApiError::invalid(name, "expected the passcode's digits"))
}

/// Searches `from ..= to` (ascending) for a counter whose code is `otp1` and whose successor's is `otp2`.
fn find_pair(seed: &[u8], alg: Algorithm, digits: u32, otp1: &str, otp2: &str, from: u64, to: u64) -> Option<u64> {
    let mut start = from;
    while start <= to {
        let m = find_counter(seed, alg, digits, otp1, start, to - start)?;
        let next = m.checked_add(1)?;
        if find_counter(seed, alg, digits, otp2, next, 0).is_some() {
            return Some(m);
        }
        start = next;
    }
    None
}

async fn resync(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = optional_user(svc, caller, p).await?;
    let d = match (read_psn(p)?, user.as_ref()) {
        (Some(psn), u) => device_for(svc, caller, &psn, u).await?,
        (None, Some(u)) => default_oath_device(svc, caller, u).await?,
        (None, None) => return Err(ApiError::missing("psn")),
    };
    if !is_oath(&d) || d.seed.is_none() {
        return Err(not_oath(&d.psn));
    }
    if d.status != 0 {
        return Err(device_disabled(&d.psn));
    }
    let width = usize::try_from(d.digits).unwrap_or(6);
    let otp1 = read_code(p, "otp1", width)?;
    let otp2 = read_code(p, "otp2", width)?;
    let seed = open_seed(svc, &d)?;
    let (alg, digits) = (algorithm_of(&d), digits_of(&d));
    let counter = u64::try_from(d.counter).unwrap_or(0);
    let failed = || {
        ApiError::new(
            code::TIME_DRIFT_INVALID,
            format!("Synchronization failed [{}]: the passcodes are not two consecutive codes of the device", display_name(&d.psn)),
        )
    };
    // A pair that matches nothing counts toward the device's lockout like a failed validation
    // (a lockout does not stop a resync: a successful one is what lifts it).
    let found = if d.otp_type == OTP_TOTP {
        let step = u64::try_from(d.time_step.max(1)).unwrap_or(30);
        let current = totp_step(u64::try_from(svc.now()).unwrap_or(0), step, 0);
        let reach = u64::try_from(svc.settings.otp.resync_totp_seconds.max(0)).unwrap_or(0) / step;
        // Only unused steps: a pair seen before (behind the stored counter) cannot resync.
        let from = current.saturating_sub(reach).max(counter);
        let to = current.saturating_add(reach);
        find_pair(&seed, alg, digits, &otp1, &otp2, from, to)
            .and_then(|m| Some((i64::try_from(m).ok()?, i64::try_from(current).ok()?)))
            .map(|(m, current)| (m, m + 1 - current))
    } else {
        let reach = u64::try_from(svc.settings.otp.resync_hotp_window.max(0)).unwrap_or(0);
        find_pair(&seed, alg, digits, &otp1, &otp2, counter, counter.saturating_add(reach))
            .and_then(|m| i64::try_from(m).ok())
            .map(|m| (m, d.drift))
    };
    let Some((matched, drift)) = found else {
        svc.store.otp_fail(d.id, svc.settings.otp.max_failures, svc.now() + svc.settings.otp.lockout_seconds).await?;
        return Err(failed());
    };
    // Conditional on the counter not having passed otp1 meanwhile: a pair resyncs once, and never
    // moves the counter back over codes another request accepted since we read it.
    if !svc.store.otp_resync(d.id, matched, matched + 2, drift).await? {
        return Err(failed());
    }
    Ok(reply!())
}

// ---------------------------------------------------------------------------------------------
// validation

async fn validate(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let username = read_username(p)?;
    let user =
        svc.store.user_by_key(caller.account_id(), &username_key(&username)).await?.ok_or_else(|| ApiError::user_login(&username))?;
    if user.status != 0 {
        return Err(user_disabled(&user));
    }
    let psn = read_psn(p)?;
    // The device is resolved first but its errors wait until sent codes had their chance
    // (a user with no device can still validate a code sent to them).
    let device = match &psn {
        Some(psn) => device_for(svc, caller, psn, Some(&user)).await,
        None => default_oath_device(svc, caller, &user).await,
    };
    let device = match device {
        Err(e) if e.code == code::DATABASE_ERROR => return Err(e),
        other => other,
    };
    let now = svc.now();
    // A locked device refuses everything, sent codes included: otherwise the lockout would not
    // bound guessing at a sent code.
    if let Ok(d) = &device {
        if d.locked_until > now {
            return Err(device_locked(&d.psn));
        }
    }
    let width = device.as_ref().ok().and_then(|d| usize::try_from(d.digits).ok()).unwrap_or(6);
    let otp = Zeroizing::new(read_code(p, "otp", width)?);
    let sent = check_sent_code(svc, caller, &user, psn.as_deref(), &otp).await?;
    if sent == SentCheck::Accepted {
        return Ok(reply!());
    }
    let expired = sent == SentCheck::Expired;
    let d = device?;
    if !is_oath(&d) {
        return Err(not_oath(&d.psn));
    }
    if d.status != 0 {
        return Err(device_disabled(&d.psn));
    }
    match check_device_code(svc, &d, &otp, now).await? {
        DeviceCheck::Accepted => Ok(reply!()),
        DeviceCheck::Replayed => Err(otp_used(kind_label(&d), &d.psn)),
        DeviceCheck::Invalid(_) if expired => {
            Err(ApiError::new(code::SEND_OTP_EXPIRED, format!("The sent passcode has expired [{}]", display_name(&user.username))))
        }
        DeviceCheck::Invalid(err) => {
            svc.store.otp_fail(d.id, svc.settings.otp.max_failures, now + svc.settings.otp.lockout_seconds).await?;
            Err(err)
        }
    }
}

enum DeviceCheck {
    Accepted,
    /// Matched a counter / step at or behind the last accepted one, or lost the race for it.
    Replayed,
    /// Wrong or outside the window (counts toward the lockout).
    Invalid(ApiError),
}

async fn check_device_code(svc: &Service, d: &DeviceRow, otp: &str, now: i64) -> Result<DeviceCheck, ApiError> {
    if d.seed.is_none() {
        // Out-of-band device: only sent codes validate, and none matched.
        return Ok(DeviceCheck::Invalid(ApiError::new(
            code::OTP_INVALID,
            format!("OTP [OOB] [{}] FAILED - invalid or expired.", display_name(&d.psn)),
        )));
    }
    let seed = open_seed(svc, d)?;
    let (alg, digits) = (algorithm_of(d), digits_of(d));
    let counter = d.counter.max(0);
    let counter_u = u64::try_from(counter).unwrap_or(0);
    let overflow = || ApiError::new(code::INTERNAL_ERROR, "device counter out of range");
    if d.otp_type == OTP_TOTP {
        let tolerance = d.time_drift.unwrap_or(svc.settings.otp.totp_steps).clamp(0, TIME_DRIFT_MAX);
        let step = u64::try_from(d.time_step.max(1)).unwrap_or(30);
        let current = i64::try_from(totp_step(u64::try_from(now).unwrap_or(0), step, 0)).map_err(|_| overflow())?;
        let center = current.saturating_add(d.drift).max(0);
        let tol = u64::try_from(tolerance).unwrap_or(0);
        // Fresh steps first: a code that also happens to equal an already used step's code (one in
        // a million per step) must still be accepted. Only when no fresh step matches is it looked for
        // behind the last accepted step (as far back as twice the window) to tell a replay apart.
        let lo = counter.max(center - tolerance).max(0);
        let hi = center.saturating_add(tolerance);
        let fresh = if lo > hi {
            None
        } else if lo <= center {
            find_step(&seed, alg, digits, otp, u64::try_from(center).unwrap_or(0), u64::try_from(center - lo).unwrap_or(0), tol)
        } else {
            find_counter(&seed, alg, digits, otp, u64::try_from(lo).unwrap_or(0), u64::try_from(hi - lo).unwrap_or(0))
        };
        let Some(m) = fresh else {
            let back = (center - 2 * tolerance).max(0);
            let replayed = counter > back
                && find_counter(&seed, alg, digits, otp, u64::try_from(back).unwrap_or(0), u64::try_from(counter - 1 - back).unwrap_or(0))
                    .is_some();
            return Ok(if replayed { DeviceCheck::Replayed } else { DeviceCheck::Invalid(otp_invalid("TIME", &d.psn, tolerance)) });
        };
        let m = i64::try_from(m).map_err(|_| overflow())?;
        let accepted = svc.store.otp_accept(d.id, m, m + 1, m - current).await?;
        Ok(if accepted { DeviceCheck::Accepted } else { DeviceCheck::Replayed })
    } else {
        let window = d.window_size.unwrap_or(svc.settings.otp.hotp_window).clamp(0, WINDOW_SIZE_MAX.max(svc.settings.otp.hotp_window));
        let w = u64::try_from(window).unwrap_or(0);
        // The look-ahead first (see the TOTP case: a fresh code that equals a used one must pass), then
        // behind the counter, as far as the window reaches, to tell a replay apart.
        let Some(m) = find_counter(&seed, alg, digits, otp, counter_u, w) else {
            let from = counter_u.saturating_sub(w);
            let replayed = counter_u > from && find_counter(&seed, alg, digits, otp, from, counter_u - 1 - from).is_some();
            return Ok(if replayed { DeviceCheck::Replayed } else { DeviceCheck::Invalid(otp_invalid("EVENT", &d.psn, window)) });
        };
        let m = i64::try_from(m).map_err(|_| overflow())?;
        let accepted = svc.store.otp_accept(d.id, m, m + 1, d.drift).await?;
        Ok(if accepted { DeviceCheck::Accepted } else { DeviceCheck::Replayed })
    }
}

// ---------------------------------------------------------------------------------------------
// provisioning

async fn qrcode(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    let user = optional_user(svc, caller, p).await?;
    let d = match (p.opt_str("deviceId")?, read_psn(p)?) {
        (Some(id), _) => {
            let id_text = id.trim().to_string();
            let found = match id_text.parse::<i64>() {
                Ok(n) => svc.store.device_by_id(caller.account_id(), n).await?,
                Err(_) => None,
            };
            let d = found.ok_or_else(|| ApiError::device_not_found(&id_text))?;
            match &user {
                Some(u) if d.user_id != Some(u.id) => return Err(ApiError::device_not_found(&id_text)),
                _ => d,
            }
        }
        (None, Some(psn)) => device_for(svc, caller, &psn, user.as_ref()).await?,
        (None, None) => return Err(ApiError::missing("deviceId")),
    };
    if !is_oath(&d) || d.seed.is_none() {
        return Err(not_oath(&d.psn));
    }
    if d.device_type == DEVICE_HARDWARE {
        // A hardware token's seed never leaves the server: only soft tokens are provisioned by QR.
        return Err(ApiError::new(
            code::DEVICE_TYPE_INVALID,
            format!("Device [{}] is a hardware token: its seed is not provisioned by QR code", display_name(&d.psn)),
        ));
    }
    let account_name = match p.opt_str("accountName")? {
        Some(a) if a.chars().count() > 128 => return Err(ApiError::invalid("accountName", "longer than 128 characters")),
        Some(a) if a.chars().any(char::is_control) => return Err(ApiError::invalid("accountName", "contains control characters")),
        Some(a) if !a.trim().is_empty() => a.trim().to_string(),
        _ => match d.user_id {
            Some(uid) => svc.store.user_by_id(caller.account_id(), uid).await?.map(|u| u.username).unwrap_or_else(|| d.psn.clone()),
            None => d.psn.clone(),
        },
    };
    let seed = open_seed(svc, &d)?;
    let kind = if d.otp_type == OTP_TOTP {
        OtpKind::Totp { period: u64::try_from(d.time_step.max(1)).unwrap_or(30) }
    } else {
        OtpKind::Hotp { counter: u64::try_from(d.counter.max(0)).unwrap_or(0) }
    };
    let issuer = svc.settings.otp.issuer.trim();
    let mut key = KeyUri {
        kind,
        issuer: (!issuer.is_empty()).then(|| issuer.to_string()),
        account: account_name,
        secret: seed.to_vec(),
        algorithm: algorithm_of(&d),
        digits: digits_of(&d),
    };
    let uri = Zeroizing::new(key.to_uri());
    key.secret.zeroize();
    let png = qr_png(uri.as_bytes()).map_err(|e| ApiError::new(code::INTERNAL_ERROR, e))?;
    Ok(reply! {
        "QRCodeURL" => format!("data:image/png;base64,{}", STANDARD.encode(png)),
        "otpauthUri" => uri.as_str(),
        "deviceId" => d.id.to_string(),
        "psn" => d.psn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_otps_are_left_padded() {
        assert_eq!(normalize_otp(&json!(12345), 6).as_deref(), Some("012345"));
        assert_eq!(normalize_otp(&json!(7), 8).as_deref(), Some("00000007"));
        assert_eq!(normalize_otp(&json!(755224), 6).as_deref(), Some("755224"));
        assert_eq!(normalize_otp(&json!("012345"), 6).as_deref(), Some("012345"));
        assert_eq!(normalize_otp(&json!("12345"), 6).as_deref(), Some("012345"));
        assert_eq!(normalize_otp(&json!("123 456"), 6).as_deref(), Some("123456"));
        // longer values and non-digits are kept (and never match)
        assert_eq!(normalize_otp(&json!(1234567), 6).as_deref(), Some("1234567"));
        assert_eq!(normalize_otp(&json!("12a45"), 6).as_deref(), Some("12a45"));
        assert_eq!(normalize_otp(&json!(-5), 6), None);
        assert_eq!(normalize_otp(&json!(1.5), 6), None);
        assert_eq!(normalize_otp(&json!({"a": 1}), 6), None);
    }

    #[test]
    fn generated_psns_have_the_documented_shape() {
        for _ in 0..50 {
            let psn = generate_psn("TESS");
            let digits = psn.strip_prefix("TESS-").expect("prefix");
            assert_eq!(digits.len(), 8, "{psn}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{psn}");
        }
        let bare = generate_psn("");
        assert_eq!(bare.len(), 8);
        assert!(bare.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn secrets_decode_and_errors_name_the_field() {
        let s = decode_secret("secretKeyHex", "3132333435363738393031323334353637383930").expect("hex");
        assert_eq!(s.as_slice(), b"12345678901234567890");
        let s = decode_secret("secretKeyHexBase64", &STANDARD.encode(b"12345678901234567890")).expect("b64");
        assert_eq!(s.as_slice(), b"12345678901234567890");
        let e = decode_secret("secretKeyHex", "zz").err().map(|e| (e.code, e.message)).unwrap_or_default();
        assert_eq!(e.0, code::INVALID_FIELD);
        assert!(e.1.contains("secretKeyHex"), "{}", e.1);
        let e = decode_secret("secretKeyHex", "313").err().map(|e| e.code);
        assert_eq!(e, Some(code::INVALID_FIELD));
        let e = decode_secret("secretKeyHexBase64", "!!!").err().map(|e| e.message).unwrap_or_default();
        assert!(e.contains("secretKeyHexBase64"), "{e}");
        // too short / too long
        assert!(decode_secret("secretKeyHex", "00112233").is_err());
        assert!(decode_secret("secretKeyHex", &"00".repeat(129)).is_err());
    }

    #[test]
    fn seed_lengths_follow_the_algorithm() {
        assert_eq!(default_seed_len(Algorithm::Sha1), 20);
        assert_eq!(default_seed_len(Algorithm::Sha256), 32);
        assert_eq!(default_seed_len(Algorithm::Sha512), 64);
    }

    #[test]
    fn pair_search_skips_false_first_matches() {
        let seed = b"12345678901234567890";
        // RFC 4226 codes 3 and 4 are consecutive; 3 and 5 are not.
        assert_eq!(find_pair(seed, Algorithm::Sha1, 6, "969429", "338314", 0, 1000), Some(3));
        assert_eq!(find_pair(seed, Algorithm::Sha1, 6, "969429", "254676", 0, 1000), None);
        assert_eq!(find_pair(seed, Algorithm::Sha1, 6, "969429", "338314", 4, 1000), None);
    }

    #[test]
    fn failure_messages_follow_the_vendor_shape() {
        let e = otp_invalid("EVENT", "TESS-00012345", 10);
        assert_eq!(e.code, code::OTP_INVALID);
        assert_eq!(e.message, "OTP [EVENT] [TESS-00012345] FAILED - outside window [size=10] or invalid.");
    }

    #[test]
    fn qr_png_is_a_png_of_the_expected_size() {
        let png = qr_png(b"otpauth://totp/Tessera:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tessera").expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height at bytes 16..24; a multiple of the scale, with the quiet zone.
        let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]) as usize;
        let h = u32::from_be_bytes([png[20], png[21], png[22], png[23]]) as usize;
        assert_eq!(w, h);
        let modules = w / QR_SCALE - 2 * QR_QUIET;
        assert_eq!((modules + 2 * QR_QUIET) * QR_SCALE, w, "not whole modules");
        assert!((21..=177).step_by(4).any(|size| size == modules), "{modules} is not a QR size");
    }
}
