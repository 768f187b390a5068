//! The HMAC hash functions allowed by RFC 4226 / RFC 6238 and the
//! `algorithm=` parameter of `otpauth://` URIs.

use std::fmt;

/// HMAC hash function used to compute one-time passwords.
///
/// `Sha1` is the default (RFC 4226, and what nearly every authenticator app
/// assumes when the `algorithm` URI parameter is absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1 (default).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// All supported algorithms, in ascending digest size.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    /// Parses an algorithm name, case-insensitively, with or without the dash:
    /// `"SHA1"`, `"sha-1"`, `"SHA256"`, `"SHA-256"`, `"SHA512"`, `"SHA-512"`.
    ///
    /// Anything else (including surrounding whitespace) yields `None`.
    pub fn parse(s: &str) -> Option<Algorithm> {
        const NAMES: [(&str, Algorithm); 6] = [
            ("SHA1", Algorithm::Sha1),
            ("SHA-1", Algorithm::Sha1),
            ("SHA256", Algorithm::Sha256),
            ("SHA-256", Algorithm::Sha256),
            ("SHA512", Algorithm::Sha512),
            ("SHA-512", Algorithm::Sha512),
        ];
        NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|&(_, alg)| alg)
    }

    /// Canonical name as used in `otpauth://` URIs: `"SHA1"`, `"SHA256"` or
    /// `"SHA512"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Algorithm;

    #[test]
    fn parse_accepts_documented_spellings() {
        for (s, alg) in [
            ("SHA1", Algorithm::Sha1),
            ("sha1", Algorithm::Sha1),
            ("sha-1", Algorithm::Sha1),
            ("Sha-1", Algorithm::Sha1),
            ("SHA256", Algorithm::Sha256),
            ("SHA-256", Algorithm::Sha256),
            ("sha256", Algorithm::Sha256),
            ("SHA512", Algorithm::Sha512),
            ("SHA-512", Algorithm::Sha512),
            ("sha-512", Algorithm::Sha512),
        ] {
            assert_eq!(Algorithm::parse(s), Some(alg), "{s}");
        }
    }

    #[test]
    fn parse_rejects_others() {
        for s in ["", "SHA", "MD5", "SHA384", "SHA-384", " SHA1", "SHA1 ", "SHA--1", "SHA_1"] {
            assert_eq!(Algorithm::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn as_str_round_trips() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!(Algorithm::default(), Algorithm::Sha1);
    }
}
