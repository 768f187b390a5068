//! Error codes and the one error type every service operation returns.
//!
//! SurePassID's codes 9000–9044 keep their meaning; Tessera's own codes start at 9100.
//! The full table with messages is in `docs/api.md`. Messages are human-readable and never
//! carry a secret (no password, OTP, seed, account key or session token).

use std::fmt;

/// Numeric error codes carried in `errorCode` (JSON) and `ErrorCode` (SOAP).
pub mod code {
    pub const OK: i64 = 0;
    pub const PARTNER_LOGIN_FAILED: i64 = 9000;
    pub const USER_LOGIN_FAILED: i64 = 9001;
    pub const OTP_ALREADY_USED: i64 = 9002;
    pub const OTP_INVALID: i64 = 9003;
    pub const DEVICE_INVALID: i64 = 9004;
    pub const USER_DISABLED: i64 = 9007;
    pub const DEVICE_TYPE_INVALID: i64 = 9008;
    pub const DEVICE_NOT_SPECIFIED: i64 = 9009;
    pub const DATABASE_ERROR: i64 = 9010;
    pub const OTP_TYPE_INVALID: i64 = 9011;
    pub const SMS_SEND_ERROR: i64 = 9012;
    pub const TOO_MANY_FAILURES: i64 = 9015;
    pub const DEVICE_ASSIGNED_TO_DIFFERENT_PARTNER: i64 = 9018;
    pub const DEVICE_IN_USE: i64 = 9019;
    pub const SERIAL_NUMBER_NOT_SPECIFIED: i64 = 9020;
    pub const DEVICE_NOT_FOUND: i64 = 9021;
    pub const DEVICE_DISABLED: i64 = 9028;
    pub const EMAIL_SEND_ERROR: i64 = 9031;
    pub const TIME_DRIFT_INVALID: i64 = 9035;
    pub const NO_DEVICES_DEFINED: i64 = 9036;
    pub const SEND_OTP_EXPIRED: i64 = 9043;
    pub const SEND_OTP_INVALID_DELIVERY_METHOD: i64 = 9044;

    pub const UNKNOWN_TYPE: i64 = 9100;
    pub const MALFORMED_REQUEST: i64 = 9101;
    pub const MISSING_FIELD: i64 = 9102;
    pub const INVALID_FIELD: i64 = 9103;
    pub const REQUEST_TOO_LARGE: i64 = 9104;
    pub const USER_EXISTS: i64 = 9105;
    /// Retired: an unknown user is answered 9001 (`USER_LOGIN_FAILED`) on every type.
    pub const USER_NOT_FOUND: i64 = 9106;
    pub const SESSION_TOKEN_INVALID: i64 = 9107;
    pub const DEVICE_EXISTS: i64 = 9108;
    pub const U2F_SESSION_INVALID: i64 = 9110;
    pub const U2F_REGISTRATION_INVALID: i64 = 9111;
    pub const U2F_SIGNATURE_INVALID: i64 = 9112;
    pub const U2F_COUNTER_REGRESSION: i64 = 9113;
    pub const U2F_KEY_NOT_FOUND: i64 = 9114;
    pub const U2F_CLIENT_DATA_INVALID: i64 = 9115;
    pub const U2F_CHALLENGE_MISMATCH: i64 = 9116;
    pub const U2F_ORIGIN_NOT_ALLOWED: i64 = 9117;
    pub const U2F_USER_NOT_PRESENT: i64 = 9118;
    pub const U2F_KEY_DISABLED: i64 = 9119;
    pub const WEBAUTHN_CREDENTIAL_INVALID: i64 = 9120;
    pub const WEBAUTHN_RP_ID_MISMATCH: i64 = 9121;
    pub const WEBAUTHN_USER_NOT_VERIFIED: i64 = 9122;
    pub const WEBAUTHN_ATTESTATION_INVALID: i64 = 9123;
    pub const WEBAUTHN_ORIGIN_RP_MISMATCH: i64 = 9124;
    pub const WEBAUTHN_USER_HANDLE_MISMATCH: i64 = 9125;
    pub const WEBAUTHN_CREDENTIAL_EXISTS: i64 = 9126;
    pub const WEBAUTHN_ALGORITHM_UNSUPPORTED: i64 = 9127;
    /// The request's headers or body did not arrive in time (HTTP 408).
    pub const REQUEST_TIMEOUT: i64 = 9145;
    pub const INTERNAL_ERROR: i64 = 9199;
}

/// The table of every code with its name and meaning, used by the docs and the OpenAPI description.
pub const CODE_TABLE: &[(i64, &str, &str)] = &[
    (code::OK, "Success", "The operation succeeded."),
    (code::PARTNER_LOGIN_FAILED, "PartnerLoginFailed", "spAccountLoginName / spAccountLoginKey wrong, missing or the account is disabled."),
    (code::USER_LOGIN_FAILED, "PartnerUserLoginFailed", "Wrong password, or no user with that username in this account (on every type)."),
    (code::OTP_ALREADY_USED, "OTPAlreadyUsed", "The passcode was already accepted once (replay)."),
    (code::OTP_INVALID, "OTPInvalid", "The passcode is wrong or outside the window."),
    (code::DEVICE_INVALID, "DeviceInvalid", "The device cannot perform this operation."),
    (code::USER_DISABLED, "PartnerUserLoginDisabled", "The user is disabled."),
    (code::DEVICE_TYPE_INVALID, "DeviceTypeInvalid", "deviceType is not one Tessera knows."),
    (code::DEVICE_NOT_SPECIFIED, "DeviceNotSpecified", "No device given and the user has none."),
    (code::DATABASE_ERROR, "DatabaseError", "The database could not be reached or refused the write; nothing was changed."),
    (code::OTP_TYPE_INVALID, "OTPTypeInvalid", "otpType is not one Tessera knows."),
    (code::SMS_SEND_ERROR, "SMSSendError", "The SMS or voice provider refused the message."),
    (
        code::TOO_MANY_FAILURES,
        "MaximumFailedOTPRequestsExceeded",
        "Too many failed validations (device locked), too many wrong passwords (user locked) or too many passcodes sent.",
    ),
    (code::DEVICE_ASSIGNED_TO_DIFFERENT_PARTNER, "DeviceAssignedToDifferentPartner", "The device belongs to another account."),
    (code::DEVICE_IN_USE, "DeviceInUse", "The device is assigned to another user (use force)."),
    (code::SERIAL_NUMBER_NOT_SPECIFIED, "SerialNumberNotSpecified", "psn is required."),
    (code::DEVICE_NOT_FOUND, "DeviceNotFound", "No device with that psn / deviceId in this account."),
    (code::DEVICE_DISABLED, "DeviceDisabled", "The device is disabled."),
    (code::EMAIL_SEND_ERROR, "EmailSendError", "The email provider refused the message."),
    (code::TIME_DRIFT_INVALID, "TimeDriftInvalid", "Resynchronisation failed: the two passcodes are not consecutive codes of the device."),
    (code::NO_DEVICES_DEFINED, "NoDevicesDefined", "The user has no device for this operation."),
    (code::SEND_OTP_EXPIRED, "SendOTPExpired", "The sent passcode has expired."),
    (code::SEND_OTP_INVALID_DELIVERY_METHOD, "SendOTPInvalidDeliveryMethod", "deliveryMethod is not sms, voice or email."),
    (code::UNKNOWN_TYPE, "UnknownType", "type is missing or not an operation Tessera implements."),
    (code::MALFORMED_REQUEST, "MalformedRequest", "The body is not a JSON object (or not a well-formed SOAP envelope)."),
    (code::MISSING_FIELD, "MissingField", "A required field is missing or empty; the message names it."),
    (code::INVALID_FIELD, "InvalidFieldValue", "A field has the wrong type or an out-of-range value; the message names it."),
    (code::REQUEST_TOO_LARGE, "RequestTooLarge", "The body is larger than 64 KiB (HTTP 413)."),
    (code::USER_EXISTS, "UserAlreadyExists", "A user with that username (case-insensitive) already exists in the account."),
    (code::USER_NOT_FOUND, "UserNotFound", "Retired: no longer sent; an unknown user is 9001 on every type."),
    (code::SESSION_TOKEN_INVALID, "SessionTokenInvalid", "The session token is unknown, expired or was expired."),
    (code::DEVICE_EXISTS, "DeviceAlreadyExists", "A device with that psn already exists in the account."),
    (code::U2F_SESSION_INVALID, "U2FSessionInvalid", "The U2F sessionId is unknown, expired, already used or belongs to another user."),
    (
        code::U2F_REGISTRATION_INVALID,
        "U2FRegistrationInvalid",
        "registrationData is malformed or its attestation signature does not verify.",
    ),
    (code::U2F_SIGNATURE_INVALID, "U2FSignatureInvalid", "signatureData is malformed or its signature does not verify."),
    (code::U2F_COUNTER_REGRESSION, "U2FCounterRegression", "The key's counter did not increase: possible cloned key; the key is flagged."),
    (code::U2F_KEY_NOT_FOUND, "U2FKeyNotFound", "No registered U2F key matches."),
    (code::U2F_CLIENT_DATA_INVALID, "U2FClientDataInvalid", "clientData is not valid JSON of the expected typ."),
    (code::U2F_CHALLENGE_MISMATCH, "U2FChallengeMismatch", "clientData carries another challenge than the session's."),
    (code::U2F_ORIGIN_NOT_ALLOWED, "U2FOriginNotAllowed", "clientData origin is neither the appId's origin nor a trusted facet."),
    (code::U2F_USER_NOT_PRESENT, "U2FUserNotPresent", "The authenticator did not assert user presence."),
    (code::U2F_KEY_DISABLED, "U2FKeyDisabled", "The U2F key is disabled."),
    (
        code::WEBAUTHN_CREDENTIAL_INVALID,
        "WebAuthnCredentialInvalid",
        "credential is not a RegistrationResponseJSON / AuthenticationResponseJSON, or its CBOR / authenticator data is malformed or truncated.",
    ),
    (code::WEBAUTHN_RP_ID_MISMATCH, "WebAuthnRpIdMismatch", "The authenticator data's rpIdHash is not the SHA-256 of the rpId (or of the U2F appId)."),
    (code::WEBAUTHN_USER_NOT_VERIFIED, "WebAuthnUserNotVerified", "userVerification was required and the authenticator did not verify the user."),
    (
        code::WEBAUTHN_ATTESTATION_INVALID,
        "WebAuthnAttestationInvalid",
        "The attestation format is not none, packed or fido-u2f, or its statement does not verify.",
    ),
    (
        code::WEBAUTHN_ORIGIN_RP_MISMATCH,
        "WebAuthnOriginRpMismatch",
        "The page's origin is a trusted facet but its host is neither the rpId nor a subdomain of it (or it is not https).",
    ),
    (
        code::WEBAUTHN_USER_HANDLE_MISMATCH,
        "WebAuthnUserHandleMismatch",
        "The userHandle is missing (usernameless sign-in) or is not the handle of the credential's user.",
    ),
    (code::WEBAUTHN_CREDENTIAL_EXISTS, "WebAuthnCredentialExists", "This credential (or security key) is already registered in the account."),
    (code::WEBAUTHN_ALGORITHM_UNSUPPORTED, "WebAuthnAlgorithmUnsupported", "The credential public key is not ES256 (P-256) or RS256."),
    (code::REQUEST_TIMEOUT, "RequestTimeout", "The request body did not arrive within [server] body_timeout_seconds (HTTP 408)."),
    (code::INTERNAL_ERROR, "InternalError", "An unexpected server error; nothing was changed."),
];

/// An operation's failure: a code and a message safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: i64,
    pub message: String,
}

impl ApiError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }
    pub fn missing(field: &str) -> Self {
        Self::new(code::MISSING_FIELD, format!("missing field: {field}"))
    }
    pub fn invalid(field: &str, why: impl fmt::Display) -> Self {
        Self::new(code::INVALID_FIELD, format!("invalid value for field {field}: {why}"))
    }
    pub fn partner_login() -> Self {
        Self::new(code::PARTNER_LOGIN_FAILED, "Account login failed")
    }
    /// An unknown user: 9001, the same as a failed login, so that no reply tells an unknown user
    /// from a known one (9106 is retired, see docs/api.md).
    pub fn user_not_found(username: &str) -> Self {
        Self::user_login(username)
    }
    pub fn user_login(username: &str) -> Self {
        Self::new(code::USER_LOGIN_FAILED, format!("User login failure [{}]", display_name(username)))
    }
    pub fn device_not_found(psn: &str) -> Self {
        Self::new(code::DEVICE_NOT_FOUND, format!("Device not found [{}]", display_name(psn)))
    }
    pub fn database(e: impl fmt::Display) -> Self {
        tracing::error!(error = %e, "storage error");
        Self::new(code::DATABASE_ERROR, "Database error; nothing was changed")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

/// Shortens a caller-supplied name for messages (very long or control-character names are cut).
pub fn display_name(s: &str) -> String {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

/// Storage failures as seen by services.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write.
    #[error("already exists")]
    Conflict,
    /// Anything else (connection, I/O, constraint): the write did not happen.
    #[error("storage: {0}")]
    Other(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::database(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
