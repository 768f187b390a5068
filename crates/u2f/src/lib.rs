//! FIDO U2F raw messages: parsing and verification of registration and
//! authentication (sign) responses, and of the browser's `clientData`.
//!
//! This crate is pure: it performs no I/O, reads no clock and uses no random
//! number generator. Every function is total over its inputs: malformed data
//! yields a [`U2fError`], never a panic.
//!
//! Wire formats (after base64 decoding):
//!
//! * `registrationData` = `0x05` | user public key (65 bytes, `0x04||X||Y`) |
//!   key handle length `L` (1 byte) | key handle (`L` bytes) | attestation
//!   certificate (X.509 DER) | ECDSA-SHA256 signature (DER). The signature
//!   covers `0x00 || SHA256(appId) || SHA256(clientData) || keyHandle ||
//!   userPublicKey` and is made with the attestation certificate's key.
//! * `signatureData` = user presence (1 byte) | counter (4 bytes, big-endian)
//!   | ECDSA-SHA256 signature (DER) over `SHA256(appId) || userPresence ||
//!   counter || SHA256(clientData)`, made with the registered user key.
//!
//! `clientData` is always hashed exactly as received; it is never
//! re-serialized.
//!
//! A typical authentication check (the caller stores the challenge, the
//! registered public key and the last counter):
//!
//! ```no_run
//! # fn demo(client_data_b64: &str, signature_data_b64: &str, public_key: &[u8],
//! #         challenge: &str, last_counter: u32) -> Result<(), tessera_u2f::U2fError> {
//! use tessera_u2f::*;
//! let app_id = "https://example.com/app-id.json";
//! let allowed = vec![app_id_origin(app_id).unwrap_or_default()];
//! let client_data = b64_decode(client_data_b64)?;
//! check_client_data(&client_data, TYP_SIGN, challenge, &allowed)?;
//! let resp = parse_sign_response(&b64_decode(signature_data_b64)?)?;
//! verify_signature(public_key, app_id, &client_data, &resp)?;
//! check_user_presence(&resp)?;
//! if resp.counter <= last_counter {
//!     // Caller policy: a non-increasing counter hints at a cloned authenticator.
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod webauthn;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::Certificate;

/// Errors produced while parsing or verifying U2F messages.
///
/// Messages describe what was wrong with the input; they never contain key
/// material, challenges or other data taken from the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum U2fError {
    /// Input was not valid base64 in any accepted alphabet.
    #[error("input is not valid base64 (standard or URL-safe alphabet)")]
    Base64,
    /// The message ended before the named part was complete.
    #[error("message truncated: {0} missing or incomplete")]
    Truncated(&'static str),
    /// The first byte of a registration response was not `0x05`.
    #[error("registration response reserved byte is not 0x05")]
    BadReservedByte,
    /// A public key was not an uncompressed P-256 point on the curve.
    #[error("public key is not an uncompressed P-256 point on the curve")]
    BadPublicKey,
    /// The attestation certificate could not be parsed or has no P-256 key.
    #[error("attestation certificate is malformed or does not hold a P-256 public key")]
    BadCertificate,
    /// A signature was not a DER-encoded ECDSA P-256 signature.
    #[error("signature is not a DER-encoded ECDSA P-256 signature")]
    BadSignatureEncoding,
    /// Signature verification failed.
    #[error("signature verification failed")]
    SignatureInvalid,
    /// clientData was not a JSON object with string `typ`, `challenge` and `origin`.
    #[error("clientData is not a JSON object with string fields typ, challenge and origin")]
    ClientDataJson,
    /// clientData `typ` did not match the expected operation.
    #[error("clientData typ does not match; expected {expected}")]
    WrongType {
        /// The `typ` value that was required.
        expected: &'static str,
    },
    /// clientData challenge did not match the issued challenge.
    #[error("clientData challenge does not match the issued challenge")]
    ChallengeMismatch,
    /// clientData origin is not among the allowed origins.
    #[error("clientData origin is not allowed")]
    OriginNotAllowed,
    /// The authenticator did not assert user presence.
    #[error("user presence was not asserted by the authenticator")]
    UserNotPresent,
}

/// `typ` of clientData for a registration (enrollment).
pub const TYP_REGISTER: &str = "navigator.id.finishEnrollment";
/// `typ` of clientData for an authentication (assertion).
pub const TYP_SIGN: &str = "navigator.id.getAssertion";

/// Length of an uncompressed P-256 point (`0x04 || X || Y`).
pub const PUBLIC_KEY_LEN: usize = 65;

/// Reserved first byte of a registration response.
const REGISTRATION_RESERVED: u8 = 0x05;

/// Bit 0 of the user presence byte.
const USER_PRESENT_FLAG: u8 = 0x01;

// ---------------------------------------------------------------------------
// base64
// ---------------------------------------------------------------------------

const PADDED: GeneralPurposeConfig = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical);
const UNPADDED: GeneralPurposeConfig = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireNone);
const URL_SAFE_PADDED: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDED);
const URL_SAFE_UNPADDED: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, UNPADDED);
const STANDARD_PADDED: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDED);
const STANDARD_UNPADDED: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, UNPADDED);

/// Decodes base64 in the standard or URL-safe alphabet, with canonical
/// padding or without any. Surrounding whitespace is trimmed; inner
/// whitespace, partial padding and non-zero trailing bits are rejected.
pub fn b64_decode(s: &str) -> Result<Vec<u8>, U2fError> {
    let s = s.trim();
    let (url, std) = if s.ends_with('=') { (&URL_SAFE_PADDED, &STANDARD_PADDED) } else { (&URL_SAFE_UNPADDED, &STANDARD_UNPADDED) };
    url.decode(s).or_else(|_| std.decode(s)).map_err(|_| U2fError::Base64)
}

/// Encodes bytes as URL-safe base64 without padding ("websafe base64").
pub fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Turns 32 caller-supplied random bytes into a websafe challenge string.
pub fn challenge_from_bytes(bytes: &[u8; 32]) -> String {
    b64_encode(bytes)
}

// ---------------------------------------------------------------------------
// small helpers
// ---------------------------------------------------------------------------

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Validates a 65-byte uncompressed P-256 point and returns a verifying key.
fn user_key(public_key: &[u8]) -> Result<VerifyingKey, U2fError> {
    if public_key.len() != PUBLIC_KEY_LEN || public_key.first() != Some(&0x04) {
        return Err(U2fError::BadPublicKey);
    }
    VerifyingKey::from_sec1_bytes(public_key).map_err(|_| U2fError::BadPublicKey)
}

fn der_signature(sig: &[u8]) -> Result<Signature, U2fError> {
    Signature::from_der(sig).map_err(|_| U2fError::BadSignatureEncoding)
}

/// Splits `n` bytes off the front of `data`, or reports `what` as truncated.
fn take<'a>(data: &'a [u8], n: usize, what: &'static str) -> Result<(&'a [u8], &'a [u8]), U2fError> {
    if data.len() < n {
        return Err(U2fError::Truncated(what));
    }
    Ok(data.split_at(n))
}

/// Reads a DER TLV header at the start of `data`.
///
/// Returns `(tag, header_len, content_len)`. Only definite lengths of up to
/// four length octets are accepted. The content is not required to be
/// present in `data`.
fn der_header(data: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    if first < 0x80 {
        return Some((tag, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let octets = data.get(2..2 + n)?;
    let len = octets.iter().try_fold(0usize, |acc, &b| acc.checked_mul(256)?.checked_add(usize::from(b)))?;
    Some((tag, 2 + n, len))
}

/// Total encoded length (header + content) of the TLV at the start of `data`,
/// if it fits in `data`.
fn der_tlv_len(data: &[u8]) -> Option<usize> {
    let (_, h, l) = der_header(data)?;
    let total = h.checked_add(l)?;
    (total <= data.len()).then_some(total)
}

// ---------------------------------------------------------------------------
// attestation certificates
// ---------------------------------------------------------------------------

/// Subject CNs of early Yubico attestation certificates whose outer
/// signature BIT STRING carries a non-zero "unused bits" byte.
pub const YUBICO_QUIRK_CNS: [&str; 7] = [
    "Yubico U2F EE Serial 776137165",
    "Yubico U2F EE Serial 1086591525",
    "Yubico U2F EE Serial 1973679733",
    "Yubico U2F EE Serial 13503277888",
    "Yubico U2F EE Serial 13831167861",
    "Yubico U2F EE Serial 14803321578",
    "Yubico U2F EE Serial 364846018",
];

/// Offset of the "unused bits" octet of the certificate's outer
/// `signatureValue` BIT STRING, found by walking the DER structure
/// `SEQUENCE { tbsCertificate, signatureAlgorithm, BIT STRING }`.
fn signature_unused_bits_offset(der: &[u8]) -> Option<usize> {
    let (tag, h, l) = der_header(der)?;
    if tag != 0x30 || h.checked_add(l)? != der.len() {
        return None;
    }
    let body = der.get(h..)?;
    let tbs = der_tlv_len(body)?;
    let alg = der_tlv_len(body.get(tbs..)?)?;
    let off = tbs.checked_add(alg)?;
    let rest = body.get(off..)?;
    let (btag, bh, bl) = der_header(rest)?;
    if btag != 0x03 || bl == 0 || bh.checked_add(bl)? != rest.len() {
        return None;
    }
    h.checked_add(off)?.checked_add(bh)
}

/// Returns a copy of `der` with the outer signature BIT STRING's unused-bits
/// octet set to zero, or `None` if it already is zero (or cannot be found).
///
/// This is the equivalent of Yubico's `der[len - 257] = 0` fix, located
/// structurally so it works for any signature algorithm.
fn zero_signature_unused_bits(der: &[u8]) -> Option<Vec<u8>> {
    let idx = signature_unused_bits_offset(der)?;
    if *der.get(idx)? == 0 {
        return None;
    }
    let mut fixed = der.to_vec();
    *fixed.get_mut(idx)? = 0;
    Some(fixed)
}

fn subject_common_name(cert: &Certificate) -> Option<String> {
    const CN: x509_cert::der::asn1::ObjectIdentifier = x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == CN)
        .and_then(|atv| std::str::from_utf8(atv.value.value()).ok().map(str::to_owned))
}

fn certificate_key(cert: &Certificate) -> Result<VerifyingKey, U2fError> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|_| U2fError::BadCertificate)?;
    let pk = p256::PublicKey::from_public_key_der(&spki).map_err(|_| U2fError::BadCertificate)?;
    Ok(VerifyingKey::from(pk))
}

/// A parsed attestation certificate.
struct Attestation {
    key: VerifyingKey,
    /// DER after the Yubico quirk fix (identical to the input when not needed).
    der: Vec<u8>,
}

fn load_attestation(der: &[u8]) -> Result<Attestation, U2fError> {
    let fixed = zero_signature_unused_bits(der);
    match Certificate::from_der(der) {
        Ok(cert) => {
            let key = certificate_key(&cert)?;
            let known_quirk = subject_common_name(&cert).is_some_and(|cn| YUBICO_QUIRK_CNS.contains(&cn.as_str()));
            let der = match fixed {
                Some(fixed) if known_quirk => fixed,
                _ => der.to_vec(),
            };
            Ok(Attestation { key, der })
        }
        Err(_) => {
            // Retry with the unused-bits octet zeroed (Yubico quirk).
            let fixed = fixed.ok_or(U2fError::BadCertificate)?;
            let cert = Certificate::from_der(&fixed).map_err(|_| U2fError::BadCertificate)?;
            let key = certificate_key(&cert)?;
            Ok(Attestation { key, der: fixed })
        }
    }
}

// ---------------------------------------------------------------------------
// registration
// ---------------------------------------------------------------------------

/// A parsed registration response (`registrationData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// User public key, uncompressed P-256 point `0x04 || X || Y`.
    pub public_key: [u8; 65],
    /// Opaque key handle (0..=255 bytes).
    pub key_handle: Vec<u8>,
    /// Attestation certificate exactly as received (X.509 DER).
    pub attestation_cert: Vec<u8>,
    /// Attestation signature (ECDSA-SHA256, DER).
    pub signature: Vec<u8>,
}

impl Registration {
    /// The attestation certificate with the early-Yubico signature
    /// BIT STRING quirk repaired, suitable for strict X.509 parsers (e.g. for
    /// attestation chain validation). Equal to `attestation_cert` for
    /// certificates that do not need the fix.
    pub fn attestation_cert_fixed(&self) -> Result<Vec<u8>, U2fError> {
        load_attestation(&self.attestation_cert).map(|a| a.der)
    }
}

/// Parses a decoded `registrationData` message.
///
/// Checks the structure, that the user key is a valid P-256 point, that the
/// attestation certificate parses and holds a P-256 key, and that the
/// signature is DER-encoded. It does not verify the signature; see
/// [`verify_registration`].
pub fn parse_registration(data: &[u8]) -> Result<Registration, U2fError> {
    let (reserved, rest) = take(data, 1, "reserved byte")?;
    if reserved != [REGISTRATION_RESERVED] {
        return Err(U2fError::BadReservedByte);
    }
    let (pk, rest) = take(rest, PUBLIC_KEY_LEN, "user public key")?;
    user_key(pk)?;
    let public_key: [u8; 65] = pk.try_into().map_err(|_| U2fError::BadPublicKey)?;

    let (&kh_len, rest) = rest.split_first().ok_or(U2fError::Truncated("key handle length"))?;
    let (key_handle, rest) = take(rest, usize::from(kh_len), "key handle")?;

    if rest.is_empty() {
        return Err(U2fError::Truncated("attestation certificate"));
    }
    if rest.first() != Some(&0x30) {
        return Err(U2fError::BadCertificate);
    }
    let Some((_, h, l)) = der_header(rest) else {
        // Either the header itself is cut short or its length is not a
        // definite DER length of at most four octets.
        let long_form = rest.get(1).map(|b| (0x81..=0x84).contains(b));
        return Err(if long_form == Some(false) { U2fError::BadCertificate } else { U2fError::Truncated("attestation certificate") });
    };
    let cert_len = h.checked_add(l).ok_or(U2fError::BadCertificate)?;
    let (cert, signature) = take(rest, cert_len, "attestation certificate")?;
    load_attestation(cert)?;

    if signature.is_empty() {
        return Err(U2fError::Truncated("signature"));
    }
    der_signature(signature)?;

    Ok(Registration { public_key, key_handle: key_handle.to_vec(), attestation_cert: cert.to_vec(), signature: signature.to_vec() })
}

/// Verifies the attestation signature of a registration over
/// `0x00 || SHA256(app_id) || SHA256(client_data) || key_handle || public_key`
/// with the attestation certificate's public key.
///
/// `client_data` must be the exact bytes received from the client.
pub fn verify_registration(reg: &Registration, app_id: &str, client_data: &[u8]) -> Result<(), U2fError> {
    user_key(&reg.public_key)?;
    let attestation = load_attestation(&reg.attestation_cert)?;
    let sig = der_signature(&reg.signature)?;

    let mut msg = Vec::with_capacity(1 + 32 + 32 + reg.key_handle.len() + PUBLIC_KEY_LEN);
    msg.push(0x00);
    msg.extend_from_slice(&sha256(app_id.as_bytes()));
    msg.extend_from_slice(&sha256(client_data));
    msg.extend_from_slice(&reg.key_handle);
    msg.extend_from_slice(&reg.public_key);

    attestation.key.verify(&msg, &sig).map_err(|_| U2fError::SignatureInvalid)
}

// ---------------------------------------------------------------------------
// authentication
// ---------------------------------------------------------------------------

/// A parsed authentication response (`signatureData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignResponse {
    /// User presence byte; bit 0 set means the user was present.
    pub user_presence: u8,
    /// Signature counter (big-endian on the wire).
    pub counter: u32,
    /// ECDSA-SHA256 signature (DER).
    pub signature: Vec<u8>,
}

impl SignResponse {
    /// Whether bit 0 (user present) of the presence byte is set.
    pub fn user_present(&self) -> bool {
        self.user_presence & USER_PRESENT_FLAG != 0
    }
}

/// Fails with [`U2fError::UserNotPresent`] unless the response asserts user
/// presence.
pub fn check_user_presence(resp: &SignResponse) -> Result<(), U2fError> {
    if resp.user_present() {
        Ok(())
    } else {
        Err(U2fError::UserNotPresent)
    }
}

/// Parses a decoded `signatureData` message. Checks that the signature is
/// DER-encoded but does not verify it; see [`verify_signature`].
pub fn parse_sign_response(data: &[u8]) -> Result<SignResponse, U2fError> {
    let (&user_presence, rest) = data.split_first().ok_or(U2fError::Truncated("user presence"))?;
    let (counter, signature) = take(rest, 4, "counter")?;
    let counter: [u8; 4] = counter.try_into().map_err(|_| U2fError::Truncated("counter"))?;
    if signature.is_empty() {
        return Err(U2fError::Truncated("signature"));
    }
    der_signature(signature)?;
    Ok(SignResponse { user_presence, counter: u32::from_be_bytes(counter), signature: signature.to_vec() })
}

/// Verifies an authentication signature over
/// `SHA256(app_id) || user_presence || counter || SHA256(client_data)` with
/// the registered user public key (65-byte uncompressed point).
///
/// Neither user presence nor counter monotonicity is checked here; they are
/// caller policy (see [`check_user_presence`]). Both are covered by the
/// signature, so they cannot have been altered if this returns `Ok`.
pub fn verify_signature(public_key: &[u8], app_id: &str, client_data: &[u8], resp: &SignResponse) -> Result<(), U2fError> {
    let key = user_key(public_key)?;
    let sig = der_signature(&resp.signature)?;

    let mut msg = Vec::with_capacity(32 + 1 + 4 + 32);
    msg.extend_from_slice(&sha256(app_id.as_bytes()));
    msg.push(resp.user_presence);
    msg.extend_from_slice(&resp.counter.to_be_bytes());
    msg.extend_from_slice(&sha256(client_data));

    key.verify(&msg, &sig).map_err(|_| U2fError::SignatureInvalid)
}

// ---------------------------------------------------------------------------
// clientData
// ---------------------------------------------------------------------------

/// The checked fields of a clientData JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData {
    /// `typ` (one of [`TYP_REGISTER`], [`TYP_SIGN`]).
    pub typ: String,
    /// The websafe-base64 challenge.
    pub challenge: String,
    /// The origin the browser reported.
    pub origin: String,
}

/// Serde view of clientData. Unknown fields (e.g. `cid_pubkey`) are ignored;
/// duplicate fields are rejected by serde's derive.
#[derive(Deserialize)]
struct RawClientData {
    typ: String,
    challenge: String,
    origin: String,
}

fn strip_one_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

/// Parses the exact clientData bytes and checks them.
///
/// * the bytes must be a UTF-8 JSON object with string `typ`, `challenge`
///   and `origin` (each at most once), else [`U2fError::ClientDataJson`];
/// * `typ` must equal `expected_typ`, else [`U2fError::WrongType`];
/// * `challenge` must equal `expected_challenge` (constant-time comparison),
///   else [`U2fError::ChallengeMismatch`];
/// * `origin` must equal one of `allowed_origins` after removing at most one
///   trailing `/` from each side, else [`U2fError::OriginNotAllowed`].
pub fn check_client_data(
    bytes: &[u8],
    expected_typ: &'static str,
    expected_challenge: &str,
    allowed_origins: &[String],
) -> Result<ClientData, U2fError> {
    // serde's derived struct deserializer would also accept a JSON array.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(U2fError::ClientDataJson);
    }
    let raw: RawClientData = serde_json::from_slice(bytes).map_err(|_| U2fError::ClientDataJson)?;

    if raw.typ != expected_typ {
        return Err(U2fError::WrongType { expected: expected_typ });
    }
    if !bool::from(raw.challenge.as_bytes().ct_eq(expected_challenge.as_bytes())) {
        return Err(U2fError::ChallengeMismatch);
    }
    let origin = strip_one_slash(&raw.origin);
    if !allowed_origins.iter().any(|allowed| strip_one_slash(allowed) == origin) {
        return Err(U2fError::OriginNotAllowed);
    }
    Ok(ClientData { typ: raw.typ, challenge: raw.challenge, origin: raw.origin })
}

// ---------------------------------------------------------------------------
// appId
// ---------------------------------------------------------------------------

/// Origin (`scheme://host[:port]`) of an appId URL.
///
/// Scheme and host are lower-cased and a default port (`:443` for https,
/// `:80` for http) is dropped, matching how browsers serialize origins.
/// Returns `None` if `app_id` is not an absolute `scheme://authority` URL or
/// carries user info.
///
/// `"https://example.com/app-id.json"` gives `"https://example.com"`.
pub fn app_id_origin(app_id: &str) -> Option<String> {
    let app_id = app_id.trim();
    let (scheme, rest) = app_id.split_once("://")?;
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    if authority.is_empty() || authority.contains('@') || authority.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    // Split a port off the end (IPv6 literals are bracketed, so the last ':'
    // after any ']' is the port separator).
    let host_end = if authority.starts_with('[') {
        // IPv6 literal: "[...]" optionally followed by ":port".
        let close = authority.find(']')?;
        let after = authority.get(close + 1..)?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        close + 1
    } else {
        if authority.contains(['[', ']']) {
            return None;
        }
        0
    };
    if let Some(colon) = authority.get(host_end..).and_then(|s| s.rfind(':')) {
        let colon = host_end + colon;
        let port = authority.get(colon + 1..)?;
        if !port.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if colon == 0 {
            return None;
        }
        let default = matches!((scheme.as_str(), port), ("https", "443") | ("http", "80"));
        if default || port.is_empty() {
            authority.truncate(colon);
        }
    }
    Some(format!("{scheme}://{authority}"))
}
