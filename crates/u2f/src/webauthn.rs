//! WebAuthn (Level 3) relying-party checks: the JSON credential forms, `clientDataJSON`, the
//! authenticator data, COSE public keys, the attestation statements `none`, `packed` (self and
//! x5c) and `fido-u2f`, and assertion signatures.
//!
//! Like the rest of this crate it is pure (no I/O, no clock, no randomness) and total over its
//! inputs: malformed data yields a [`WaError`], never a panic. CBOR is decoded with `ciborium`,
//! signatures are checked with RustCrypto (`p256` for ES256, `rsa` for RS256), certificates are
//! read with `x509-cert`.
//!
//! What stays with the caller (it needs state): the challenge and origin policy (which origins
//! are trusted), which rpIdHash values are acceptable (SHA-256 of the rpId, or of a U2F appId
//! under the `appid` extension), the user-verification policy and the signature counter.
//!
//! A registered public key is kept as its COSE_Key bytes; a key registered through raw U2F is a
//! 65-byte uncompressed P-256 point. [`PublicKey::from_stored`] reads both, so one credential can
//! sign in through either path.

use crate::{b64_decode, load_attestation, sha256};
use ciborium::value::Value as Cbor;
use p256::ecdsa::signature::Verifier as _;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use x509_cert::der::{Decode as _, Encode as _};

/// `type` of clientDataJSON for a registration.
pub const TYPE_CREATE: &str = "webauthn.create";
/// `type` of clientDataJSON for an authentication.
pub const TYPE_GET: &str = "webauthn.get";
/// COSE algorithm ECDSA P-256 with SHA-256.
pub const ALG_ES256: i64 = -7;
/// COSE algorithm RSASSA-PKCS1-v1_5 with SHA-256.
pub const ALG_RS256: i64 = -257;

/// Authenticator data flag: user present.
pub const FLAG_UP: u8 = 0x01;
/// Authenticator data flag: user verified.
pub const FLAG_UV: u8 = 0x04;
/// Authenticator data flag: backup eligible.
pub const FLAG_BE: u8 = 0x08;
/// Authenticator data flag: backed up.
pub const FLAG_BS: u8 = 0x10;
/// Authenticator data flag: attested credential data included.
pub const FLAG_AT: u8 = 0x40;
/// Authenticator data flag: extension data included.
pub const FLAG_ED: u8 = 0x80;

/// Longest credential id accepted (bytes), as in WebAuthn Level 3.
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// OID of the FIDO AAGUID certificate extension (id-fido-gen-ce-aaguid).
const OID_FIDO_AAGUID: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4");

/// What was wrong with a WebAuthn message. Messages name the part, never echo its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaError {
    /// The credential JSON is not of the expected shape.
    #[error("credential is malformed: {0}")]
    Credential(&'static str),
    /// A binary member of the credential is not base64url.
    #[error("credential member {0} is not valid base64url")]
    Base64(&'static str),
    /// CBOR or binary structure is malformed or truncated.
    #[error("{0} is malformed or truncated")]
    Malformed(&'static str),
    /// clientDataJSON is not a JSON object with string type, challenge and origin.
    #[error("clientDataJSON is not a JSON object with string fields type, challenge and origin")]
    ClientDataJson,
    /// clientDataJSON `type` is not the expected one.
    #[error("clientDataJSON type does not match; expected {expected}")]
    WrongType {
        /// The type that was required.
        expected: &'static str,
    },
    /// clientDataJSON `challenge` is not the issued challenge.
    #[error("clientDataJSON challenge does not match the issued challenge")]
    ChallengeMismatch,
    /// clientDataJSON says the ceremony ran in a cross-origin iframe.
    #[error("clientDataJSON crossOrigin is true; cross-origin ceremonies are not accepted")]
    CrossOrigin,
    /// The rpIdHash of the authenticator data is not the expected one.
    #[error("authenticator data rpIdHash is not the SHA-256 of the rpId (or appId)")]
    RpIdHash,
    /// The user-present flag is not set.
    #[error("user presence was not asserted by the authenticator")]
    UserNotPresent,
    /// Registration authenticator data carries no attested credential.
    #[error("authenticator data carries no attested credential data")]
    NoAttestedCredential,
    /// The public key uses an algorithm or curve not supported.
    #[error("public key algorithm is not supported (ES256 and RS256 are)")]
    UnsupportedAlgorithm,
    /// The public key is malformed.
    #[error("public key is malformed")]
    BadPublicKey,
    /// The attestation format is not one of none, packed, fido-u2f.
    #[error("attestation format is not supported (none, packed and fido-u2f are)")]
    UnsupportedFormat,
    /// The attestation statement is malformed or its signature does not verify.
    #[error("attestation statement invalid: {0}")]
    Attestation(&'static str),
    /// The assertion signature does not verify.
    #[error("signature verification failed")]
    SignatureInvalid,
}

// ---------------------------------------------------------------------------
// JSON credential forms
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRegistration {
    id: String,
    #[serde(default)]
    raw_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    response: RawAttestationResponse,
    #[serde(default)]
    authenticator_attachment: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAttestationResponse {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    attestation_object: String,
    #[serde(default)]
    transports: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthentication {
    id: String,
    #[serde(default)]
    raw_id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    response: RawAssertionResponse,
    #[serde(default)]
    client_extension_results: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAssertionResponse {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    authenticator_data: String,
    signature: String,
    #[serde(default)]
    user_handle: Option<String>,
}

/// A RegistrationResponseJSON, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResponse {
    /// The credential id (`rawId`).
    pub credential_id: Vec<u8>,
    /// clientDataJSON, exactly as received.
    pub client_data_json: Vec<u8>,
    /// The CBOR attestation object.
    pub attestation_object: Vec<u8>,
    /// Transports the browser reported (informational).
    pub transports: Vec<String>,
    /// `platform` / `cross-platform`, if reported.
    pub authenticator_attachment: Option<String>,
}

/// An AuthenticationResponseJSON, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationResponse {
    /// The credential id (`rawId`).
    pub credential_id: Vec<u8>,
    /// clientDataJSON, exactly as received.
    pub client_data_json: Vec<u8>,
    /// The authenticator data, exactly as signed.
    pub authenticator_data: Vec<u8>,
    /// The assertion signature.
    pub signature: Vec<u8>,
    /// The user handle, for discoverable credentials.
    pub user_handle: Option<Vec<u8>>,
    /// `clientExtensionResults.appid` (the browser used the appId for rpIdHash).
    pub appid_used: bool,
}

fn b64(s: &str, what: &'static str) -> Result<Vec<u8>, WaError> {
    b64_decode(s).map_err(|_| WaError::Base64(what))
}

fn credential_id(id: &str, raw_id: Option<&str>) -> Result<Vec<u8>, WaError> {
    let from_id = b64(id, "id")?;
    if let Some(raw) = raw_id.filter(|r| !r.is_empty()) {
        if b64(raw, "rawId")? != from_id {
            return Err(WaError::Credential("id and rawId differ"));
        }
    }
    if from_id.is_empty() || from_id.len() > MAX_CREDENTIAL_ID {
        return Err(WaError::Credential("the credential id is empty or longer than 1023 bytes"));
    }
    Ok(from_id)
}

/// Decodes a RegistrationResponseJSON (a JSON object).
pub fn parse_registration_response(json: &serde_json::Value) -> Result<RegistrationResponse, WaError> {
    let raw: RawRegistration = serde_json::from_value(json.clone()).map_err(|_| {
        WaError::Credential("not a RegistrationResponseJSON (id, rawId, type, response.clientDataJSON, response.attestationObject)")
    })?;
    if raw.kind != "public-key" {
        return Err(WaError::Credential("type is not public-key"));
    }
    Ok(RegistrationResponse {
        credential_id: credential_id(&raw.id, raw.raw_id.as_deref())?,
        client_data_json: b64(&raw.response.client_data_json, "response.clientDataJSON")?,
        attestation_object: b64(&raw.response.attestation_object, "response.attestationObject")?,
        transports: raw.response.transports.unwrap_or_default(),
        authenticator_attachment: raw.authenticator_attachment,
    })
}

/// Decodes an AuthenticationResponseJSON (a JSON object).
pub fn parse_authentication_response(json: &serde_json::Value) -> Result<AuthenticationResponse, WaError> {
    let raw: RawAuthentication = serde_json::from_value(json.clone()).map_err(|_| {
        WaError::Credential(
            "not an AuthenticationResponseJSON (id, rawId, type, response.clientDataJSON, response.authenticatorData, response.signature)",
        )
    })?;
    if raw.kind != "public-key" {
        return Err(WaError::Credential("type is not public-key"));
    }
    let user_handle = match raw.response.user_handle.as_deref() {
        None | Some("") => None,
        Some(h) => Some(b64(h, "response.userHandle")?),
    };
    let appid_used =
        raw.client_extension_results.as_ref().and_then(|v| v.get("appid")).and_then(serde_json::Value::as_bool).unwrap_or(false);
    Ok(AuthenticationResponse {
        credential_id: credential_id(&raw.id, raw.raw_id.as_deref())?,
        client_data_json: b64(&raw.response.client_data_json, "response.clientDataJSON")?,
        authenticator_data: b64(&raw.response.authenticator_data, "response.authenticatorData")?,
        signature: b64(&raw.response.signature, "response.signature")?,
        user_handle,
        appid_used,
    })
}

// ---------------------------------------------------------------------------
// clientDataJSON
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(default)]
    cross_origin: Option<bool>,
}

/// The checked members of clientDataJSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData {
    /// `webauthn.create` or `webauthn.get`.
    pub kind: String,
    /// The origin the browser reported (the caller checks it, see [`check_origin`]).
    pub origin: String,
}

/// Parses clientDataJSON and checks its type, challenge (constant-time, as base64url text) and
/// that the ceremony did not run cross-origin. The origin is returned for the caller to check.
pub fn check_client_data(bytes: &[u8], expected_type: &'static str, expected_challenge: &str) -> Result<ClientData, WaError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(WaError::ClientDataJson);
    }
    let raw: RawClientData = serde_json::from_slice(bytes).map_err(|_| WaError::ClientDataJson)?;
    if raw.kind != expected_type {
        return Err(WaError::WrongType { expected: expected_type });
    }
    let got = raw.challenge.trim_end_matches('=');
    let want = expected_challenge.trim_end_matches('=');
    if !bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
        return Err(WaError::ChallengeMismatch);
    }
    if raw.cross_origin == Some(true) {
        return Err(WaError::CrossOrigin);
    }
    Ok(ClientData { kind: raw.kind, origin: raw.origin })
}

/// Why an origin is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginError {
    /// Not one of the trusted origins (the account's facets).
    NotTrusted,
    /// Trusted, but its host is neither the rpId nor a subdomain of it (or it is not https,
    /// except `http://localhost[:port]` for rpId `localhost`).
    NotForRpId,
}

/// Host of an origin `scheme://host[:port]`, lower-cased, with its scheme.
fn origin_parts(origin: &str) -> Option<(String, String)> {
    let o = crate::app_id_origin(origin)?;
    let (scheme, authority) = o.split_once("://")?;
    let host = if authority.starts_with('[') {
        authority.get(..=authority.find(']')?)?.to_string()
    } else {
        authority.split(':').next()?.to_string()
    };
    Some((scheme.to_string(), host))
}

/// Checks the page's origin: it must be one of `trusted` (compared as serialized origins) and its
/// host must equal `rp_id` or end with `.` + `rp_id`; it must be https, except
/// `http://localhost[:port]` when the rpId is `localhost`.
pub fn check_origin(origin: &str, rp_id: &str, trusted: &[String]) -> Result<(), OriginError> {
    let norm = |s: &str| crate::app_id_origin(s).unwrap_or_else(|| s.trim_end_matches('/').to_ascii_lowercase());
    let origin_n = norm(origin);
    if !trusted.iter().any(|t| norm(t) == origin_n) {
        return Err(OriginError::NotTrusted);
    }
    let (scheme, host) = origin_parts(origin).ok_or(OriginError::NotForRpId)?;
    let rp_id = rp_id.to_ascii_lowercase();
    let host_ok = host == rp_id || host.ends_with(&format!(".{rp_id}"));
    let scheme_ok = scheme == "https" || (scheme == "http" && rp_id == "localhost" && host == "localhost");
    if host_ok && scheme_ok {
        Ok(())
    } else {
        Err(OriginError::NotForRpId)
    }
}

// ---------------------------------------------------------------------------
// authenticator data
// ---------------------------------------------------------------------------

/// Attested credential data (registration only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    /// The authenticator model's AAGUID (all zero for U2F authenticators).
    pub aaguid: [u8; 16],
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The credential public key, COSE_Key CBOR bytes exactly as received.
    pub public_key_cose: Vec<u8>,
}

/// Parsed authenticator data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorData {
    /// SHA-256 of the rpId (or appId) the authenticator scoped the credential to.
    pub rp_id_hash: [u8; 32],
    /// Flags byte (see the `FLAG_` constants).
    pub flags: u8,
    /// Signature counter.
    pub counter: u32,
    /// Present when the AT flag is set.
    pub attested: Option<AttestedCredential>,
}

impl AuthenticatorData {
    /// User present (UP).
    pub fn user_present(&self) -> bool {
        self.flags & FLAG_UP != 0
    }
    /// User verified (UV).
    pub fn user_verified(&self) -> bool {
        self.flags & FLAG_UV != 0
    }
    /// Backup eligible (BE).
    pub fn backup_eligible(&self) -> bool {
        self.flags & FLAG_BE != 0
    }
    /// Backed up (BS).
    pub fn backup_state(&self) -> bool {
        self.flags & FLAG_BS != 0
    }
}

/// Reads one CBOR data item from the front of `data`; returns it and the bytes it took.
fn cbor_item(data: &[u8], what: &'static str) -> Result<(Cbor, usize), WaError> {
    let mut rest = data;
    let v: Cbor = ciborium::de::from_reader(&mut rest).map_err(|_| WaError::Malformed(what))?;
    Ok((v, data.len() - rest.len()))
}

/// Parses authenticator data: rpIdHash, flags, counter, attested credential data (AT) and
/// extensions (ED); nothing may follow.
pub fn parse_authenticator_data(data: &[u8]) -> Result<AuthenticatorData, WaError> {
    const WHAT: &str = "authenticator data";
    let head = data.get(..37).ok_or(WaError::Malformed(WHAT))?;
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(head.get(..32).ok_or(WaError::Malformed(WHAT))?);
    let flags = *head.get(32).ok_or(WaError::Malformed(WHAT))?;
    let counter_bytes: [u8; 4] = head.get(33..37).and_then(|s| s.try_into().ok()).ok_or(WaError::Malformed(WHAT))?;
    let counter = u32::from_be_bytes(counter_bytes);
    let mut rest = data.get(37..).unwrap_or_default();
    let attested = if flags & FLAG_AT != 0 {
        let aaguid: [u8; 16] = rest.get(..16).and_then(|s| s.try_into().ok()).ok_or(WaError::Malformed("attested credential data"))?;
        let len_bytes: [u8; 2] = rest.get(16..18).and_then(|s| s.try_into().ok()).ok_or(WaError::Malformed("attested credential data"))?;
        let id_len = usize::from(u16::from_be_bytes(len_bytes));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID {
            return Err(WaError::Malformed("attested credential id"));
        }
        let credential_id = rest.get(18..18 + id_len).ok_or(WaError::Malformed("attested credential id"))?.to_vec();
        let key_start = rest.get(18 + id_len..).unwrap_or_default();
        let (_, used) = cbor_item(key_start, "credential public key")?;
        let public_key_cose = key_start.get(..used).ok_or(WaError::Malformed("credential public key"))?.to_vec();
        rest = key_start.get(used..).unwrap_or_default();
        Some(AttestedCredential { aaguid, credential_id, public_key_cose })
    } else {
        None
    };
    if flags & FLAG_ED != 0 {
        let (ext, used) = cbor_item(rest, "authenticator extensions")?;
        if !matches!(ext, Cbor::Map(_)) {
            return Err(WaError::Malformed("authenticator extensions"));
        }
        rest = rest.get(used..).unwrap_or_default();
    }
    if !rest.is_empty() {
        return Err(WaError::Malformed(WHAT));
    }
    Ok(AuthenticatorData { rp_id_hash, flags, counter, attested })
}

// ---------------------------------------------------------------------------
// public keys
// ---------------------------------------------------------------------------

/// A credential public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256 / SHA-256 (COSE -7).
    Es256(p256::ecdsa::VerifyingKey),
    /// RSASSA-PKCS1-v1_5 / SHA-256 (COSE -257).
    Rs256(rsa::RsaPublicKey),
}

fn map_get(m: &[(Cbor, Cbor)], key: i64) -> Option<&Cbor> {
    m.iter().find(|(k, _)| k.as_integer().and_then(|i| i64::try_from(i).ok()) == Some(key)).map(|(_, v)| v)
}

fn cbor_int(v: Option<&Cbor>) -> Option<i64> {
    v?.as_integer().and_then(|i| i64::try_from(i).ok())
}

fn cbor_bytes(v: Option<&Cbor>) -> Option<&[u8]> {
    v?.as_bytes().map(Vec::as_slice)
}

impl PublicKey {
    /// Reads a COSE_Key (EC2 P-256 with alg -7, or RSA with alg -257).
    pub fn from_cose(bytes: &[u8]) -> Result<Self, WaError> {
        let (v, used) = cbor_item(bytes, "COSE key")?;
        if used != bytes.len() {
            return Err(WaError::BadPublicKey);
        }
        let m = v.as_map().ok_or(WaError::BadPublicKey)?;
        let kty = cbor_int(map_get(m, 1)).ok_or(WaError::BadPublicKey)?;
        let alg = cbor_int(map_get(m, 3)).ok_or(WaError::BadPublicKey)?;
        match (kty, alg) {
            (2, ALG_ES256) => {
                if cbor_int(map_get(m, -1)) != Some(1) {
                    return Err(WaError::UnsupportedAlgorithm);
                }
                let x = cbor_bytes(map_get(m, -2)).ok_or(WaError::BadPublicKey)?;
                let y = cbor_bytes(map_get(m, -3)).ok_or(WaError::BadPublicKey)?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(WaError::BadPublicKey);
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Self::from_point(&point)
            }
            (3, ALG_RS256) => {
                let n = cbor_bytes(map_get(m, -1)).ok_or(WaError::BadPublicKey)?;
                let e = cbor_bytes(map_get(m, -2)).ok_or(WaError::BadPublicKey)?;
                if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return Err(WaError::BadPublicKey);
                }
                let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
                    .map_err(|_| WaError::BadPublicKey)?;
                Ok(PublicKey::Rs256(key))
            }
            _ => Err(WaError::UnsupportedAlgorithm),
        }
    }

    /// Reads an uncompressed P-256 point (a key registered through raw U2F).
    pub fn from_point(point: &[u8]) -> Result<Self, WaError> {
        if point.len() != crate::PUBLIC_KEY_LEN || point.first() != Some(&0x04) {
            return Err(WaError::BadPublicKey);
        }
        p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map(PublicKey::Es256).map_err(|_| WaError::BadPublicKey)
    }

    /// Reads a stored key: a 65-byte point (raw U2F) or COSE_Key bytes (WebAuthn).
    pub fn from_stored(bytes: &[u8]) -> Result<Self, WaError> {
        if bytes.len() == crate::PUBLIC_KEY_LEN && bytes.first() == Some(&0x04) {
            Self::from_point(bytes)
        } else {
            Self::from_cose(bytes)
        }
    }

    /// The COSE algorithm.
    pub fn alg(&self) -> i64 {
        match self {
            PublicKey::Es256(_) => ALG_ES256,
            PublicKey::Rs256(_) => ALG_RS256,
        }
    }

    /// Verifies `sig` over `msg` (ES256: DER-encoded ECDSA; RS256: PKCS#1 v1.5).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), WaError> {
        match self {
            PublicKey::Es256(k) => {
                let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| WaError::SignatureInvalid)?;
                k.verify(msg, &s).map_err(|_| WaError::SignatureInvalid)
            }
            PublicKey::Rs256(k) => {
                let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone());
                let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| WaError::SignatureInvalid)?;
                vk.verify(msg, &s).map_err(|_| WaError::SignatureInvalid)
            }
        }
    }
}

/// The public key of an attestation certificate (P-256 or RSA), for the algorithm `alg`.
fn certificate_public_key(cert: &x509_cert::Certificate, alg: i64) -> Result<PublicKey, WaError> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|_| WaError::Attestation("certificate key unreadable"))?;
    match alg {
        ALG_ES256 => {
            use p256::pkcs8::DecodePublicKey as _;
            let pk = p256::PublicKey::from_public_key_der(&spki).map_err(|_| WaError::Attestation("certificate key is not P-256"))?;
            Ok(PublicKey::Es256(p256::ecdsa::VerifyingKey::from(pk)))
        }
        ALG_RS256 => {
            use rsa::pkcs8::DecodePublicKey as _;
            let pk = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| WaError::Attestation("certificate key is not RSA"))?;
            Ok(PublicKey::Rs256(pk))
        }
        _ => Err(WaError::UnsupportedAlgorithm),
    }
}

// ---------------------------------------------------------------------------
// registration
// ---------------------------------------------------------------------------

/// A verified registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRegistration {
    /// Attestation format: `none`, `packed` or `fido-u2f`.
    pub fmt: String,
    /// The authenticator data.
    pub auth_data: AuthenticatorData,
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// COSE_Key bytes of the credential public key.
    pub public_key_cose: Vec<u8>,
    /// The authenticator model's AAGUID.
    pub aaguid: [u8; 16],
    /// The attestation certificate (x5c[0]) when there is one.
    pub attestation_cert: Option<Vec<u8>>,
    /// Whether the attestation is self attestation (packed without x5c) or none.
    pub self_or_none: bool,
}

/// Formats an AAGUID as a UUID string (8-4-4-4-12, lower-case hex).
pub fn aaguid_string(a: &[u8; 16]) -> String {
    let h: String = a.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The parts of an attestation object.
struct AttestationObject {
    fmt: String,
    att_stmt: Vec<(Cbor, Cbor)>,
    auth_data: Vec<u8>,
}

fn parse_attestation_object(bytes: &[u8]) -> Result<AttestationObject, WaError> {
    const WHAT: &str = "attestationObject";
    let (v, used) = cbor_item(bytes, WHAT)?;
    if used != bytes.len() {
        return Err(WaError::Malformed(WHAT));
    }
    let m = v.into_map().map_err(|_| WaError::Malformed(WHAT))?;
    let mut fmt = None;
    let mut att_stmt = None;
    let mut auth_data = None;
    for (k, v) in m {
        match k.as_text() {
            Some("fmt") => fmt = v.into_text().ok(),
            Some("attStmt") => att_stmt = v.into_map().ok(),
            Some("authData") => auth_data = v.into_bytes().ok(),
            _ => {}
        }
    }
    match (fmt, att_stmt, auth_data) {
        (Some(fmt), Some(att_stmt), Some(auth_data)) => Ok(AttestationObject { fmt, att_stmt, auth_data }),
        _ => Err(WaError::Malformed(WHAT)),
    }
}

fn stmt_get<'a>(m: &'a [(Cbor, Cbor)], key: &str) -> Option<&'a Cbor> {
    m.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v)
}

fn x5c_chain(m: &[(Cbor, Cbor)]) -> Result<Option<Vec<Vec<u8>>>, WaError> {
    match stmt_get(m, "x5c") {
        None => Ok(None),
        Some(Cbor::Array(items)) => {
            let certs: Option<Vec<Vec<u8>>> = items.iter().map(|c| c.as_bytes().cloned()).collect();
            match certs {
                Some(c) if !c.is_empty() => Ok(Some(c)),
                _ => Err(WaError::Attestation("x5c is not a non-empty array of certificates")),
            }
        }
        Some(_) => Err(WaError::Attestation("x5c is not an array")),
    }
}

/// Checks what a registration's attestation object holds without any ceremony state: it parses,
/// its authenticator data parses and carries an attested credential with a supported key.
pub fn check_registration_structure(attestation_object: &[u8]) -> Result<(), WaError> {
    let obj = parse_attestation_object(attestation_object)?;
    let auth_data = parse_authenticator_data(&obj.auth_data)?;
    let attested = auth_data.attested.ok_or(WaError::NoAttestedCredential)?;
    PublicKey::from_cose(&attested.public_key_cose).map(|_| ())
}

/// Verifies a registration's attestation object against the exact clientDataJSON bytes.
///
/// Checks, in order: the attestation object and authenticator data parse; the rpIdHash is
/// `expected_rp_id_hash`; user presence; attested credential data is present and its id equals
/// `credential_id` (the JSON `rawId`); the credential key is a supported COSE key; the
/// attestation statement (`none`, `packed` self or x5c, `fido-u2f`) verifies. User verification is
/// the caller's policy (see [`AuthenticatorData::user_verified`]). No trust anchors are consulted:
/// an x5c certificate is accepted once the statement's signature verifies with it.
pub fn verify_registration(
    attestation_object: &[u8],
    client_data_json: &[u8],
    credential_id: &[u8],
    expected_rp_id_hash: &[u8; 32],
) -> Result<VerifiedRegistration, WaError> {
    let obj = parse_attestation_object(attestation_object)?;
    let auth_data = parse_authenticator_data(&obj.auth_data)?;
    if !bool::from(auth_data.rp_id_hash.ct_eq(expected_rp_id_hash)) {
        return Err(WaError::RpIdHash);
    }
    if !auth_data.user_present() {
        return Err(WaError::UserNotPresent);
    }
    let attested = auth_data.attested.clone().ok_or(WaError::NoAttestedCredential)?;
    if attested.credential_id != credential_id {
        return Err(WaError::Credential("rawId is not the credential id in the authenticator data"));
    }
    let key = PublicKey::from_cose(&attested.public_key_cose)?;
    let client_data_hash = sha256(client_data_json);
    let mut signed = obj.auth_data.clone();
    signed.extend_from_slice(&client_data_hash);

    let (attestation_cert, self_or_none) = match obj.fmt.as_str() {
        "none" => {
            if !obj.att_stmt.is_empty() {
                return Err(WaError::Attestation("attStmt of format none must be empty"));
            }
            (None, true)
        }
        "packed" => {
            let alg = cbor_int(stmt_get(&obj.att_stmt, "alg")).ok_or(WaError::Attestation("alg missing"))?;
            let sig = stmt_get(&obj.att_stmt, "sig").and_then(Cbor::as_bytes).ok_or(WaError::Attestation("sig missing"))?;
            match x5c_chain(&obj.att_stmt)? {
                Some(chain) => {
                    let leaf = chain.first().ok_or(WaError::Attestation("x5c empty"))?;
                    let cert = x509_cert::Certificate::from_der(leaf).map_err(|_| WaError::Attestation("certificate malformed"))?;
                    check_packed_certificate(&cert, &attested.aaguid)?;
                    let cert_key = certificate_public_key(&cert, alg)?;
                    cert_key.verify(&signed, sig).map_err(|_| WaError::Attestation("signature does not verify with x5c[0]"))?;
                    (Some(leaf.clone()), false)
                }
                None => {
                    if alg != key.alg() {
                        return Err(WaError::Attestation("self attestation alg differs from the credential key's"));
                    }
                    key.verify(&signed, sig).map_err(|_| WaError::Attestation("self attestation signature does not verify"))?;
                    (None, true)
                }
            }
        }
        "fido-u2f" => {
            let sig = stmt_get(&obj.att_stmt, "sig").and_then(Cbor::as_bytes).ok_or(WaError::Attestation("sig missing"))?;
            let chain = x5c_chain(&obj.att_stmt)?.ok_or(WaError::Attestation("x5c missing"))?;
            if chain.len() != 1 {
                return Err(WaError::Attestation("fido-u2f x5c must hold exactly one certificate"));
            }
            let leaf = chain.first().ok_or(WaError::Attestation("x5c empty"))?;
            let PublicKey::Es256(cred_key) = &key else {
                return Err(WaError::Attestation("fido-u2f credential key must be EC2 P-256"));
            };
            let point = cred_key.to_encoded_point(false);
            let attestation = load_attestation(leaf).map_err(|_| WaError::Attestation("certificate malformed or not P-256"))?;
            let mut msg = Vec::with_capacity(1 + 32 + 32 + attested.credential_id.len() + 65);
            msg.push(0x00);
            msg.extend_from_slice(&auth_data.rp_id_hash);
            msg.extend_from_slice(&client_data_hash);
            msg.extend_from_slice(&attested.credential_id);
            msg.extend_from_slice(point.as_bytes());
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| WaError::Attestation("signature is not DER ECDSA"))?;
            attestation.key.verify(&msg, &s).map_err(|_| WaError::Attestation("signature does not verify with x5c[0]"))?;
            (Some(leaf.clone()), false)
        }
        _ => return Err(WaError::UnsupportedFormat),
    };
    Ok(VerifiedRegistration {
        fmt: obj.fmt,
        credential_id: attested.credential_id.clone(),
        public_key_cose: attested.public_key_cose.clone(),
        aaguid: attested.aaguid,
        auth_data,
        attestation_cert,
        self_or_none,
    })
}

/// Packed attestation certificate requirements that can be checked without trust anchors: an
/// end-entity certificate (not a CA) whose AAGUID extension, when present, names the
/// authenticator's AAGUID.
fn check_packed_certificate(cert: &x509_cert::Certificate, aaguid: &[u8; 16]) -> Result<(), WaError> {
    const BASIC_CONSTRAINTS: x509_cert::der::asn1::ObjectIdentifier = x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19");
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == OID_FIDO_AAGUID {
            // extnValue is an OCTET STRING holding a DER OCTET STRING of 16 bytes.
            let inner = x509_cert::der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
                .map_err(|_| WaError::Attestation("certificate AAGUID extension malformed"))?;
            if inner.as_bytes() != aaguid {
                return Err(WaError::Attestation("certificate AAGUID differs from the authenticator data's"));
            }
        }
        if ext.extn_id == BASIC_CONSTRAINTS {
            // SEQUENCE { cA BOOLEAN DEFAULT FALSE, ... }: cA TRUE is encoded as 01 01 FF.
            let v = ext.extn_value.as_bytes();
            if v.len() >= 5 && v.get(2..5) == Some(&[0x01, 0x01, 0xff][..]) {
                return Err(WaError::Attestation("attestation certificate is a CA certificate"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// assertion
// ---------------------------------------------------------------------------

/// Verifies an assertion: the authenticator data parses, carries no attested credential, its
/// rpIdHash is one of `accepted_rp_id_hashes`, and `signature` verifies over
/// `authenticatorData || SHA-256(clientDataJSON)` with `key`. Presence, verification and the
/// counter are the caller's policy (all covered by the signature).
pub fn verify_assertion(
    key: &PublicKey,
    authenticator_data: &[u8],
    client_data_json: &[u8],
    signature: &[u8],
    accepted_rp_id_hashes: &[[u8; 32]],
) -> Result<AuthenticatorData, WaError> {
    let ad = parse_authenticator_data(authenticator_data)?;
    if !accepted_rp_id_hashes.iter().any(|h| bool::from(h.ct_eq(&ad.rp_id_hash))) {
        return Err(WaError::RpIdHash);
    }
    let mut msg = authenticator_data.to_vec();
    msg.extend_from_slice(&sha256(client_data_json));
    key.verify(&msg, signature)?;
    Ok(ad)
}

/// SHA-256 of a string (rpId or appId): the rpIdHash an authenticator computes.
pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    sha256(rp_id.as_bytes())
}
