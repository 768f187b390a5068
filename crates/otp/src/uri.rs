//! `otpauth://` key URIs, as defined by Google Authenticator's
//! ["Key Uri Format"](https://github.com/google/google-authenticator/wiki/Key-Uri-Format):
//!
//! ```text
//! otpauth://TYPE/LABEL?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
//! ```
//!
//! where `TYPE` is `totp` or `hotp` (HOTP URIs carry `counter=N` instead of
//! `period`) and `LABEL` is `Issuer:account` or just `account`.
//!
//! [`KeyUri::to_uri`] writes the canonical form: issuer and account are
//! percent-encoded separately (only RFC 3986 *unreserved* characters are kept
//! literally, so a `:` inside either is written `%3A`) and joined by a literal
//! `:`; every parameter is present; the secret is upper-case Base32 without
//! padding. [`KeyUri::parse`] reads that form back exactly and tolerates what
//! other generators produce: any case for the scheme, type, parameter names
//! and Base32 secret, `=` padding and spaces in the secret, a `%3A`-encoded
//! label separator, spaces before the account, `+` for a space in parameter
//! values, unknown parameters (ignored), and missing optional parameters
//! (defaults: `SHA1`, 6 digits, period 30, counter 0).

use std::fmt;

use crate::{base32_decode, base32_encode, Algorithm, MAX_DIGITS, MIN_DIGITS};

/// Default TOTP period in seconds when the URI has no `period` parameter.
pub const DEFAULT_PERIOD: u64 = 30;
/// Default code length when the URI has no `digits` parameter.
pub const DEFAULT_DIGITS: u32 = 6;

/// Kind of one-time password described by a key URI, with its moving factor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OtpKind {
    /// Counter-based (RFC 4226); `counter` is the initial counter value.
    Hotp {
        /// Initial counter value (`counter=` parameter; default 0).
        counter: u64,
    },
    /// Time-based (RFC 6238); `period` is the time step in seconds.
    Totp {
        /// Time step in seconds (`period=` parameter; default 30, never 0
        /// when parsed).
        period: u64,
    },
}

/// A parsed or to-be-rendered `otpauth://` key URI
/// (`otpauth://TYPE/LABEL?PARAMETERS`, Google Authenticator "Key Uri Format").
///
/// [`KeyUri::to_uri`] writes the canonical form: issuer and account are
/// percent-encoded separately (only RFC 3986 *unreserved* characters are kept
/// literally, so a `:` inside either is written `%3A`) and joined by a literal
/// `:`; every parameter is present; the secret is upper-case Base32 without
/// padding. [`KeyUri::parse`] reads that form back exactly and tolerates what
/// other generators produce: any case for the scheme, type, parameter names
/// and Base32 secret, `=` padding and spaces in the secret, a `%3A`-encoded
/// label separator, spaces before the account, `+` for a space in parameter
/// values, unknown parameters (ignored), and missing optional parameters
/// (defaults: `SHA1`, 6 digits, period 30, counter 0).
///
/// The [`Debug`] implementation never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyUri {
    /// HOTP with its counter or TOTP with its period.
    pub kind: OtpKind,
    /// Service name (`issuer=` parameter / label prefix). An empty issuer is
    /// treated as absent.
    pub issuer: Option<String>,
    /// Account name (the label without the issuer prefix). Never empty when
    /// parsed.
    pub account: String,
    /// Raw shared secret (decoded from Base32).
    pub secret: Vec<u8>,
    /// HMAC hash function.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: u32,
}

impl fmt::Debug for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyUri")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("secret", &format_args!("<redacted>"))
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish()
    }
}

/// Why a string is not an acceptable `otpauth://` URI.
///
/// No variant carries the secret or any part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// The URI does not start with `otpauth://`.
    InvalidScheme,
    /// The type (host part) is neither `totp` nor `hotp`; holds what was found.
    UnknownType(String),
    /// There is no `/` after the type, so no label.
    MissingLabel,
    /// The label has no account name (empty, or only an issuer prefix).
    MissingAccount,
    /// A `%` not followed by two hexadecimal digits.
    InvalidPercentEncoding,
    /// A percent-decoded label or value is not valid UTF-8.
    InvalidUtf8,
    /// The label prefix and the `issuer` parameter disagree.
    IssuerMismatch {
        /// Issuer from the label prefix.
        label: String,
        /// Issuer from the `issuer=` parameter.
        parameter: String,
    },
    /// A parameter appears more than once; holds its (lower-cased) name.
    DuplicateParameter(String),
    /// There is no `secret` parameter.
    MissingSecret,
    /// The `secret` parameter is not Base32.
    InvalidSecret,
    /// The `secret` parameter decodes to zero bytes.
    EmptySecret,
    /// The `algorithm` parameter is not SHA1, SHA256 or SHA512; holds it.
    UnsupportedAlgorithm(String),
    /// The `digits` parameter is not an integer in `6..=10`; holds it.
    InvalidDigits(String),
    /// The `period` parameter is not a positive integer; holds it.
    InvalidPeriod(String),
    /// The `counter` parameter is not a non-negative integer; holds it.
    InvalidCounter(String),
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::InvalidScheme => f.write_str("key URI must start with otpauth://"),
            UriError::UnknownType(t) => {
                write!(f, "unknown OTP type {t:?} (expected totp or hotp)")
            }
            UriError::MissingLabel => f.write_str("key URI has no label"),
            UriError::MissingAccount => f.write_str("key URI label has no account name"),
            UriError::InvalidPercentEncoding => f.write_str("invalid percent-encoding in key URI"),
            UriError::InvalidUtf8 => f.write_str("key URI label or parameter is not valid UTF-8"),
            UriError::IssuerMismatch { label, parameter } => {
                write!(f, "label issuer {label:?} differs from issuer parameter {parameter:?}")
            }
            UriError::DuplicateParameter(p) => write!(f, "parameter {p:?} appears more than once"),
            UriError::MissingSecret => f.write_str("key URI has no secret parameter"),
            UriError::InvalidSecret => f.write_str("secret parameter is not valid Base32"),
            UriError::EmptySecret => f.write_str("secret parameter is empty"),
            UriError::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm {a:?} (expected SHA1, SHA256 or SHA512)"),
            UriError::InvalidDigits(d) => write!(f, "invalid digits {d:?} (expected an integer from {MIN_DIGITS} to {MAX_DIGITS})"),
            UriError::InvalidPeriod(p) => {
                write!(f, "invalid period {p:?} (expected a positive integer)")
            }
            UriError::InvalidCounter(c) => {
                write!(f, "invalid counter {c:?} (expected a non-negative integer)")
            }
        }
    }
}

impl std::error::Error for UriError {}

const SCHEME: &str = "otpauth://";

impl KeyUri {
    /// Renders the canonical URI, e.g.
    /// `otpauth://totp/Issuer:account?secret=JBSWY3DPEHPK3PXP&issuer=Issuer&algorithm=SHA1&digits=6&period=30`
    /// (HOTP: `otpauth://hotp/…&digits=6&counter=N`).
    ///
    /// Issuer and account are percent-encoded (RFC 3986 unreserved characters
    /// kept), the secret is upper-case Base32 without padding. Without an
    /// issuer (or with an empty one) the label is just the account and there
    /// is no `issuer` parameter. Fields are written as they are; `digits`
    /// outside `6..=10` or a zero period produce a URI that [`KeyUri::parse`]
    /// rejects.
    pub fn to_uri(&self) -> String {
        let (kind, moving_factor) = match self.kind {
            OtpKind::Hotp { counter } => ("hotp", format!("counter={counter}")),
            OtpKind::Totp { period } => ("totp", format!("period={period}")),
        };
        let mut uri = format!("{SCHEME}{kind}/");
        let issuer = self.issuer.as_deref().filter(|i| !i.is_empty());
        if let Some(issuer) = issuer {
            percent_encode_into(&mut uri, issuer);
            uri.push(':');
        }
        percent_encode_into(&mut uri, &self.account);
        uri.push_str("?secret=");
        uri.push_str(&base32_encode(&self.secret));
        if let Some(issuer) = issuer {
            uri.push_str("&issuer=");
            percent_encode_into(&mut uri, issuer);
        }
        uri.push_str("&algorithm=");
        uri.push_str(self.algorithm.as_str());
        uri.push_str(&format!("&digits={}&", self.digits));
        uri.push_str(&moving_factor);
        uri
    }

    /// Parses an `otpauth://` URI (see [`KeyUri`] for the accepted forms).
    ///
    /// The label is split at its first literal `:` into issuer prefix and
    /// account. If the label has no literal `:` it is percent-decoded and,
    /// when it starts with `<issuer parameter>:`, that prefix is removed;
    /// otherwise the whole decoded label is the account (so an account
    /// containing an encoded `:` and no issuer round-trips). If both a label
    /// prefix and an `issuer` parameter are present they must be equal.
    /// Unknown parameters are ignored, as are `period` for HOTP and
    /// `counter` for TOTP. Any fragment (`#…`) is ignored.
    ///
    /// ```
    /// use tessera_otp::{Algorithm, KeyUri, OtpKind};
    /// let key = KeyUri::parse(
    ///     "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    /// )?;
    /// assert_eq!(key.issuer.as_deref(), Some("Example"));
    /// assert_eq!(key.account, "alice@google.com");
    /// assert_eq!(key.kind, OtpKind::Totp { period: 30 });
    /// assert_eq!((key.algorithm, key.digits), (Algorithm::Sha1, 6));
    /// # Ok::<(), tessera_otp::UriError>(())
    /// ```
    pub fn parse(uri: &str) -> Result<KeyUri, UriError> {
        let uri = uri.split_once('#').map_or(uri, |(before, _)| before);
        let rest = match (uri.get(..SCHEME.len()), uri.get(SCHEME.len()..)) {
            (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case(SCHEME) => rest,
            _ => return Err(UriError::InvalidScheme),
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (kind, raw_label) = path.split_once('/').unwrap_or((path, ""));
        let is_hotp = if kind.eq_ignore_ascii_case("totp") {
            false
        } else if kind.eq_ignore_ascii_case("hotp") {
            true
        } else {
            return Err(UriError::UnknownType(kind.to_owned()));
        };
        if !path.contains('/') {
            return Err(UriError::MissingLabel);
        }

        let params = Params::parse(query)?;

        let issuer_param = params.issuer.filter(|i| !i.is_empty());
        let (label_issuer, account) = split_label(raw_label, issuer_param.as_deref())?;
        let issuer = match (label_issuer, issuer_param) {
            (Some(label), Some(parameter)) if label != parameter => return Err(UriError::IssuerMismatch { label, parameter }),
            (label, parameter) => parameter.or(label),
        };
        if account.is_empty() {
            return Err(UriError::MissingAccount);
        }

        let secret = params.secret.ok_or(UriError::MissingSecret)?;
        let secret = base32_decode(&secret).ok_or(UriError::InvalidSecret)?;
        if secret.is_empty() {
            return Err(UriError::EmptySecret);
        }

        let algorithm = match params.algorithm {
            None => Algorithm::default(),
            Some(a) => Algorithm::parse(&a).ok_or(UriError::UnsupportedAlgorithm(a))?,
        };
        let digits = match params.digits {
            None => DEFAULT_DIGITS,
            Some(d) => parse_number(&d)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (MIN_DIGITS..=MAX_DIGITS).contains(n))
                .ok_or(UriError::InvalidDigits(d))?,
        };
        let kind = if is_hotp {
            let counter = match params.counter {
                None => 0,
                Some(c) => parse_number(&c).ok_or(UriError::InvalidCounter(c))?,
            };
            OtpKind::Hotp { counter }
        } else {
            let period = match params.period {
                None => DEFAULT_PERIOD,
                Some(p) => parse_number(&p).filter(|&p| p > 0).ok_or(UriError::InvalidPeriod(p))?,
            };
            OtpKind::Totp { period }
        };

        Ok(KeyUri { kind, issuer, account, secret, algorithm, digits })
    }
}

/// The query parameters this crate understands, percent-decoded.
#[derive(Default)]
struct Params {
    secret: Option<String>,
    issuer: Option<String>,
    algorithm: Option<String>,
    digits: Option<String>,
    period: Option<String>,
    counter: Option<String>,
}

impl Params {
    fn parse(query: &str) -> Result<Params, UriError> {
        let mut params = Params::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name, true)?.to_ascii_lowercase();
            let slot = match name.as_str() {
                "secret" => &mut params.secret,
                "issuer" => &mut params.issuer,
                "algorithm" => &mut params.algorithm,
                "digits" => &mut params.digits,
                "period" => &mut params.period,
                "counter" => &mut params.counter,
                _ => continue,
            };
            if slot.is_some() {
                return Err(UriError::DuplicateParameter(name));
            }
            *slot = Some(percent_decode(value, true)?);
        }
        Ok(params)
    }
}

/// Splits a raw (still percent-encoded) label into issuer prefix and account,
/// both decoded. See [`KeyUri::parse`] for the rules.
fn split_label(raw: &str, issuer_param: Option<&str>) -> Result<(Option<String>, String), UriError> {
    if let Some((prefix, account)) = raw.split_once(':') {
        let prefix = percent_decode(prefix, false)?;
        let account = percent_decode(account.trim_start_matches(' '), false)?;
        return Ok(((!prefix.is_empty()).then_some(prefix), account));
    }
    let label = percent_decode(raw, false)?;
    if let Some(issuer) = issuer_param {
        let stripped = label.strip_prefix(issuer).and_then(|rest| rest.strip_prefix(':'));
        if let Some(account) = stripped {
            return Ok((Some(issuer.to_owned()), account.trim_start_matches(' ').to_owned()));
        }
    }
    Ok((None, label))
}

/// A decimal integer made only of ASCII digits (no sign, no spaces).
fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `s` percent-encoded: RFC 3986 unreserved characters are kept,
/// every other UTF-8 byte becomes `%XX` (upper-case hex).
fn percent_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` into UTF-8. With `plus_is_space` (query values, as in
/// `application/x-www-form-urlencoded`), a literal `+` means a space; in the
/// label it is kept. [`percent_encode_into`] never emits a literal `+`, so
/// both readings agree on canonical URIs.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, UriError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = bytes.next().and_then(hex_value);
                let lo = bytes.next().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(UriError::InvalidPercentEncoding),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| UriError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        for s in ["", "a b", "a:b", "ü ñ 日本", "100%", "a+b", "~-._", "/?#[]@!$&'()*+,;="] {
            let mut enc = String::new();
            percent_encode_into(&mut enc, s);
            assert!(enc.bytes().all(|b| is_unreserved(b) || b == b'%'), "{enc}");
            assert_eq!(percent_decode(&enc, true).as_deref(), Ok(s));
            assert_eq!(percent_decode(&enc, false).as_deref(), Ok(s));
        }
    }

    #[test]
    fn percent_decode_errors() {
        assert_eq!(percent_decode("%", false), Err(UriError::InvalidPercentEncoding));
        assert_eq!(percent_decode("%4", false), Err(UriError::InvalidPercentEncoding));
        assert_eq!(percent_decode("%G0", false), Err(UriError::InvalidPercentEncoding));
        assert_eq!(percent_decode("%FF", false), Err(UriError::InvalidUtf8));
        assert_eq!(percent_decode("a+b", false).as_deref(), Ok("a+b"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Ok("a b"));
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_number("30"), Some(30));
        assert_eq!(parse_number("007"), Some(7));
        for s in ["", "+5", "-1", " 5", "5 ", "1e3", "18446744073709551616"] {
            assert_eq!(parse_number(s), None, "{s:?}");
        }
    }
}
