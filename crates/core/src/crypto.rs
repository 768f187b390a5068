//! Secrets: random tokens, hashes of account keys and session tokens, argon2id passwords, and the
//! master key that encrypts OTP seeds at rest (AES-256-GCM, bound to account and device).
//!
//! Nothing here logs, and no type here prints its secret through `Debug`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

/// A 256-bit random secret, URL-safe base64 without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(32))
}

/// SHA-256 of a high-entropy secret (account keys, session tokens, U2F session ids).
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Hashes a password for storage with argon2id (PHC string).
///
/// A `pw` of the form `{sha256}`/`{sha384}`/`{sha512}` + base64 digest is an imported hash: it is
/// stored as `{shaNNN}` + argon2id over the digest bytes, and checked by hashing the candidate first.
pub fn hash_password(pw: &str) -> Result<String, String> {
    let (prefix, material): (&str, Zeroizing<Vec<u8>>) = match imported_digest(pw)? {
        Some((prefix, digest)) => (prefix, Zeroizing::new(digest)),
        None => ("", Zeroizing::new(pw.as_bytes().to_vec())),
    };
    let salt = SaltString::generate(&mut OsRng);
    let phc = Argon2::default().hash_password(&material, &salt).map_err(|e| format!("password hashing failed: {e}"))?.to_string();
    Ok(format!("{prefix}{phc}"))
}

/// Checks a candidate password against a stored hash (from [`hash_password`]).
pub fn verify_password(candidate: &str, stored: &str) -> bool {
    let (material, phc): (Zeroizing<Vec<u8>>, &str) = match split_prefix(stored) {
        Some((alg, rest)) => (Zeroizing::new(digest_with(alg, candidate.as_bytes())), rest),
        None => (Zeroizing::new(candidate.as_bytes().to_vec()), stored),
    };
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(&material, &parsed).is_ok(),
        Err(_) => false,
    }
}

const PREFIXES: [&str; 3] = ["{sha256}", "{sha384}", "{sha512}"];

fn imported_digest(pw: &str) -> Result<Option<(&'static str, Vec<u8>)>, String> {
    for (prefix, len) in PREFIXES.iter().zip([32usize, 48, 64]) {
        if let Some(b64) = strip_prefix_ci(pw, prefix) {
            let digest = STANDARD.decode(b64.trim()).map_err(|_| format!("{prefix} password is not valid base64"))?;
            if digest.len() != len {
                return Err(format!("{prefix} password digest must be {len} bytes"));
            }
            return Ok(Some((prefix, digest)));
        }
    }
    Ok(None)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn split_prefix(stored: &str) -> Option<(&'static str, &str)> {
    PREFIXES.iter().find_map(|p| stored.strip_prefix(p).map(|rest| (*p, rest)))
}

fn digest_with(alg: &str, data: &[u8]) -> Vec<u8> {
    match alg {
        "{sha384}" => Sha384::digest(data).to_vec(),
        "{sha512}" => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// The 32-byte master key that encrypts secrets at rest.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() != 64 {
            return Err("the master key must be exactly 64 hex characters (32 bytes)".into());
        }
        let bytes = hex::decode(s).map_err(|_| "the master key must be 64 hex characters (0-9, a-f)".to_string())?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        Ok(MasterKey(Zeroizing::new(k)))
    }

    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        MasterKey(Zeroizing::new(k))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(*self.0)
    }

    /// A value that identifies this key without revealing it (stored in the database so that a
    /// node started with another key refuses to run instead of failing on every seed).
    pub fn check_value(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("HMAC accepts any key length");
        mac.update(b"tessera master key check v1");
        hex::encode(mac.finalize().into_bytes())
    }

    /// Keyed hash of a sent passcode (SMS / voice / email), bound to account and user.
    ///
    /// A sent code has only 10^6..10^8 values, so a plain hash could be reversed by trying them
    /// all; this is HMAC-SHA256 under a key derived from the master key, so the stored hashes are
    /// useless without it.
    pub fn sent_code_hash(&self, account_id: i64, user_id: i64, code: &str) -> Vec<u8> {
        let mut kdf = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("HMAC accepts any key length");
        kdf.update(b"tessera sent code key v1");
        let derived = Zeroizing::new(kdf.finalize().into_bytes());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&derived).expect("HMAC accepts any key length");
        mac.update(format!("{account_id}|{user_id}|{code}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The key of the audit trail's hash chain (see [`crate::audit_chain`]).
    pub fn audit_chain_key(&self) -> crate::audit_chain::ChainKey {
        let mut kdf = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("HMAC accepts any key length");
        kdf.update(b"tessera audit chain key v1");
        crate::audit_chain::ChainKey::from_bytes(kdf.finalize().into_bytes().into())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&*self.0).expect("key is 32 bytes")
    }

    /// AES-256-GCM under the master key with `aad` authenticated: nonce(12) ‖ ciphertext+tag.
    fn seal(&self, aad: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut nonce_bytes = [0u8; 12];
        OsRng.fill_bytes(&mut nonce_bytes);
        let ct = self
            .cipher()
            .encrypt(&Nonce::from(nonce_bytes), Payload { msg, aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what [`Self::seal`] sealed with the same `aad`; `None` otherwise (or under another key).
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        self.cipher().decrypt(&Nonce::from(nonce), Payload { msg: ct, aad }).ok()
    }

    /// Encrypts a seed bound to `account_id` and the device's `psn`: nonce(12) ‖ ciphertext+tag.
    pub fn seal_seed(&self, account_id: i64, psn: &str, seed: &[u8]) -> Vec<u8> {
        self.seal(&seed_aad(account_id, psn), seed)
    }

    /// Decrypts a sealed seed; `None` if it was not sealed for this account and device or under this key.
    pub fn open_seed(&self, account_id: i64, psn: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.open(&seed_aad(account_id, psn), sealed).map(Zeroizing::new)
    }
}

impl MasterKey {
    /// Encrypts a secret that must be recovered later (e.g. a RADIUS shared secret), bound to
    /// `context` (authenticated, not encrypted): nonce(12) ‖ ciphertext+tag, like [`Self::seal_seed`].
    pub fn seal_bound(&self, context: &str, secret: &[u8]) -> Vec<u8> {
        self.seal(&bound_aad(context), secret)
    }

    /// Decrypts what [`Self::seal_bound`] sealed; `None` for another context or another key.
    pub fn open_bound(&self, context: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.open(&bound_aad(context), sealed).map(Zeroizing::new)
    }
}

fn bound_aad(context: &str) -> Vec<u8> {
    format!("tessera-bound-v1|{context}").into_bytes()
}

/// How a sealed outbox message body starts (a body without it is clear text written before
/// messages were sealed).
pub const SEALED_MESSAGE_PREFIX: &str = "tessera-sealed-v1:";

impl MasterKey {
    /// Encrypts an outbox message body (it may carry a passcode) bound to its account, channel and
    /// recipient: [`SEALED_MESSAGE_PREFIX`] + base64(nonce(12) ‖ ciphertext+tag).
    pub fn seal_message(&self, account_id: i64, channel: &str, recipient: &str, body: &str) -> String {
        let sealed = self.seal(&message_aad(account_id, channel, recipient), body.as_bytes());
        format!("{SEALED_MESSAGE_PREFIX}{}", STANDARD.encode(sealed))
    }

    /// Opens a body sealed by [`MasterKey::seal_message`] (a body without the prefix is returned as
    /// it is); `None` if it was sealed for another message or under another key.
    pub fn open_message(&self, account_id: i64, channel: &str, recipient: &str, stored: &str) -> Option<Zeroizing<String>> {
        let Some(b64) = stored.strip_prefix(SEALED_MESSAGE_PREFIX) else {
            return Some(Zeroizing::new(stored.to_string()));
        };
        let sealed = STANDARD.decode(b64).ok()?;
        let clear = self.open(&message_aad(account_id, channel, recipient), &sealed)?;
        String::from_utf8(clear).ok().map(Zeroizing::new)
    }
}

fn message_aad(account_id: i64, channel: &str, recipient: &str) -> Vec<u8> {
    format!("tessera-outbox-v1|{account_id}|{channel}|{recipient}").into_bytes()
}

fn seed_aad(account_id: i64, psn: &str) -> Vec<u8> {
    format!("tessera-seed-v1|{account_id}|{psn}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip_and_imports_work() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        let digest = STANDARD.encode(Sha256::digest(b"imported pw"));
        let h2 = hash_password(&format!("{{SHA256}}{digest}")).expect("hash");
        assert!(h2.starts_with("{sha256}$argon2id$"));
        assert!(verify_password("imported pw", &h2));
        assert!(!verify_password("other", &h2));
        assert!(hash_password("{sha256}not-base64!!").is_err());
        assert!(hash_password("{sha512}AAAA").is_err());
    }

    #[test]
    fn seeds_are_bound_to_account_and_device() {
        let k = MasterKey::generate();
        let sealed = k.seal_seed(7, "PSN-1", b"12345678901234567890");
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
        assert_eq!(k.open_seed(7, "PSN-1", &sealed).map(|s| s.to_vec()), Some(b"12345678901234567890".to_vec()));
        assert!(k.open_seed(8, "PSN-1", &sealed).is_none());
        assert!(k.open_seed(7, "PSN-2", &sealed).is_none());
        assert!(MasterKey::generate().open_seed(7, "PSN-1", &sealed).is_none());
    }

    #[test]
    fn sent_code_hashes_are_keyed_and_bound() {
        let k = MasterKey::generate();
        let h = k.sent_code_hash(1, 2, "123456");
        assert_eq!(h.len(), 32);
        assert_eq!(h, k.sent_code_hash(1, 2, "123456"));
        assert_ne!(h, k.sent_code_hash(1, 3, "123456"));
        assert_ne!(h, k.sent_code_hash(2, 2, "123456"));
        assert_ne!(h, k.sent_code_hash(1, 2, "123457"));
        assert_ne!(h, MasterKey::generate().sent_code_hash(1, 2, "123456"));
        assert_ne!(h, Sha256::digest(b"1|2|123456").to_vec());
    }

    #[test]
    fn bound_secrets_open_only_in_their_context() {
        let k = MasterKey::generate();
        let sealed = k.seal_bound("radius|7|10.0.0.0/24", b"shared secret");
        assert!(!sealed.windows(13).any(|w| w == b"shared secret"));
        assert_eq!(k.open_bound("radius|7|10.0.0.0/24", &sealed).map(|s| s.to_vec()), Some(b"shared secret".to_vec()));
        assert!(k.open_bound("radius|8|10.0.0.0/24", &sealed).is_none());
        assert!(MasterKey::generate().open_bound("radius|7|10.0.0.0/24", &sealed).is_none());
        assert!(k.open_bound("radius|7|10.0.0.0/24", &sealed[..20]).is_none());
    }

    #[test]
    fn messages_are_sealed_and_bound() {
        let k = MasterKey::generate();
        let sealed = k.seal_message(1, "sms", "+15550100", "Your code is 123456.");
        assert!(sealed.starts_with(SEALED_MESSAGE_PREFIX) && !sealed.contains("123456"));
        assert_eq!(k.open_message(1, "sms", "+15550100", &sealed).as_deref().map(|s| s.as_str()), Some("Your code is 123456."));
        assert!(k.open_message(2, "sms", "+15550100", &sealed).is_none());
        assert!(k.open_message(1, "sms", "+15550199", &sealed).is_none());
        assert!(MasterKey::generate().open_message(1, "sms", "+15550100", &sealed).is_none());
        assert!(k.open_message(1, "sms", "+15550100", "tessera-sealed-v1:%%").is_none());
        assert_eq!(k.open_message(1, "sms", "x", "plain").as_deref().map(|s| s.as_str()), Some("plain"));
    }

    #[test]
    fn master_key_parsing() {
        assert!(MasterKey::from_hex("zz").is_err());
        assert!(MasterKey::from_hex(&"g".repeat(64)).is_err());
        let k = MasterKey::generate();
        let k2 = MasterKey::from_hex(&k.to_hex()).expect("parse");
        assert_eq!(k.check_value(), k2.check_value());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }
}
