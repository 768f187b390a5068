//! RFC 4648 Base32 helpers for OATH shared secrets.
//!
//! Encoding produces the canonical form used in `otpauth://` URIs:
//! upper-case, no `=` padding. Decoding is tolerant of the ways people and
//! other systems write secrets: any letter case, optional trailing `=`
//! padding, ASCII whitespace anywhere (secrets are often shown in groups of
//! four), and non-zero unused trailing bits (which some generators emit and
//! authenticator apps ignore). Lengths that no encoder can produce (1, 3 or 6
//! symbols in the last group) and any other character are rejected.

use std::sync::OnceLock;

use data_encoding::{Encoding, BASE32_NOPAD};

/// Upper-case RFC 4648 Base32 without padding.
///
/// ```
/// assert_eq!(tessera_otp::base32_encode(b"Hello!\xde\xad\xbe\xef"), "JBSWY3DPEHPK3PXP");
/// ```
pub fn base32_encode(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes)
}

/// The decoder: standard alphabet, case-insensitive, trailing bits not
/// checked. `None` only if `data-encoding` rejected the specification, which
/// cannot happen for this fixed one; decoding then fails closed.
fn decoder() -> Option<&'static Encoding> {
    static DECODER: OnceLock<Option<Encoding>> = OnceLock::new();
    DECODER
        .get_or_init(|| {
            let mut spec = BASE32_NOPAD.specification();
            spec.check_trailing_bits = false;
            spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
            spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
            spec.encoding().ok()
        })
        .as_ref()
}

/// Tolerant RFC 4648 Base32 decoding: case-insensitive, ASCII whitespace
/// ignored, optional trailing `=` padding (at most 6 characters, as RFC 4648
/// never needs more). Returns `None` for anything that is not Base32.
///
/// The empty string decodes to an empty vector.
///
/// ```
/// use tessera_otp::base32_decode;
/// assert_eq!(base32_decode("jbsw y3dp ehpk 3pxp"), Some(b"Hello!\xde\xad\xbe\xef".to_vec()));
/// assert_eq!(base32_decode("MZXW6==="), Some(b"foo".to_vec()));
/// assert_eq!(base32_decode("not base32!"), None);
/// ```
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let unpadded_len = compact.iter().rposition(|&b| b != b'=').map_or(0, |last| last + 1);
    if compact.len() - unpadded_len > 6 {
        return None;
    }
    let unpadded = compact.get(..unpadded_len)?;
    decoder()?.decode(unpadded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10 test vectors.
    const VECTORS: [(&str, &str, &str); 7] = [
        ("", "", ""),
        ("f", "MY", "MY======"),
        ("fo", "MZXQ", "MZXQ===="),
        ("foo", "MZXW6", "MZXW6==="),
        ("foob", "MZXW6YQ", "MZXW6YQ="),
        ("fooba", "MZXW6YTB", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI", "MZXW6YTBOI======"),
    ];

    #[test]
    fn rfc4648_vectors() {
        for (plain, nopad, padded) in VECTORS {
            assert_eq!(base32_encode(plain.as_bytes()), nopad);
            assert_eq!(base32_decode(nopad).as_deref(), Some(plain.as_bytes()));
            assert_eq!(base32_decode(padded).as_deref(), Some(plain.as_bytes()));
            let lower = padded.to_ascii_lowercase();
            assert_eq!(base32_decode(&lower).as_deref(), Some(plain.as_bytes()));
        }
    }

    #[test]
    fn tolerant_forms() {
        let want = b"Hello!\xde\xad\xbe\xef".to_vec();
        for s in ["JBSWY3DPEHPK3PXP", "jbswy3dpehpk3pxp", "JbSwY3dPeHpK3pXp", "JBSW Y3DP EHPK 3PXP", " jbsw\ty3dp\nehpk 3pxp "] {
            assert_eq!(base32_decode(s), Some(want.clone()), "{s:?}");
        }
        // Non-zero unused trailing bits are ignored ("MY" is canonical for "f").
        for s in ["MY", "MZ", "M2", "M3", "mz"] {
            assert_eq!(base32_decode(s), Some(b"f".to_vec()), "{s}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "M",         // 5 bits: no encoder produces this
            "MZX",       // 15 bits
            "MZXW6Y",    // 30 bits
            "MZXW6YTB1", // '1' not in the alphabet
            "MZXW0YTB",  // '0' not in the alphabet
            "MZ=XW6YTB", // padding in the middle
            "MY=======", // more padding than RFC 4648 ever uses
            "é",
            "MZXW6YTB-",
        ] {
            assert_eq!(base32_decode(s), None, "{s:?}");
        }
        assert_eq!(base32_decode("   "), Some(Vec::new()));
        assert_eq!(base32_decode("======"), Some(Vec::new()));
    }

    #[test]
    fn round_trip_all_lengths() {
        for len in 0..=70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let encoded = base32_encode(&bytes);
            assert!(!encoded.contains('='));
            assert_eq!(encoded, encoded.to_ascii_uppercase());
            assert_eq!(base32_decode(&encoded), Some(bytes));
        }
    }
}
