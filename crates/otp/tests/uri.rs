//! `otpauth://` key URIs: canonical rendering, round trips for both kinds,
//! tolerant parsing of third-party forms and rejection of malformed URIs.

use tessera_otp::{base32_decode, totp_code, Algorithm, KeyUri, OtpKind, UriError};

const GOOGLE_EXAMPLE: &str = "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example";

fn google_secret() -> Vec<u8> {
    base32_decode("JBSWY3DPEHPK3PXP").expect("valid base32")
}

fn key(kind: OtpKind, issuer: Option<&str>, account: &str) -> KeyUri {
    KeyUri {
        kind,
        issuer: issuer.map(str::to_owned),
        account: account.to_owned(),
        secret: b"12345678901234567890".to_vec(),
        algorithm: Algorithm::Sha1,
        digits: 6,
    }
}

fn parse_ok(uri: &str) -> KeyUri {
    KeyUri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
}

#[test]
fn parses_google_example() {
    let k = parse_ok(GOOGLE_EXAMPLE);
    assert_eq!(k.kind, OtpKind::Totp { period: 30 });
    assert_eq!(k.issuer.as_deref(), Some("Example"));
    assert_eq!(k.account, "alice@google.com");
    assert_eq!(k.secret, google_secret());
    assert_eq!(k.secret, b"Hello!\xde\xad\xbe\xef");
    assert_eq!(k.algorithm, Algorithm::Sha1);
    assert_eq!(k.digits, 6);
    // It is usable directly.
    assert_eq!(totp_code(&k.secret, 59, 30, k.digits, k.algorithm).len(), 6);
    // And re-renders canonically (all parameters, encoded '@').
    assert_eq!(
        k.to_uri(),
        "otpauth://totp/Example:alice%40google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example\
         &algorithm=SHA1&digits=6&period=30"
    );
    assert_eq!(parse_ok(&k.to_uri()), k);
}

#[test]
fn canonical_rendering() {
    let mut k = key(OtpKind::Hotp { counter: 42 }, Some("ACME Co"), "john.doe@email.com");
    k.algorithm = Algorithm::Sha256;
    k.digits = 8;
    assert_eq!(
        k.to_uri(),
        "otpauth://hotp/ACME%20Co:john.doe%40email.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
         &issuer=ACME%20Co&algorithm=SHA256&digits=8&counter=42"
    );
    let k = key(OtpKind::Totp { period: 60 }, None, "bob");
    assert_eq!(k.to_uri(), "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=60");
    // Secret is upper-case and unpadded.
    let mut k = key(OtpKind::Totp { period: 30 }, None, "x");
    k.secret = b"f".to_vec();
    assert!(k.to_uri().contains("secret=MY&"));
}

#[test]
fn round_trips_both_kinds_and_awkward_labels() {
    let labels: &[(Option<&str>, &str)] = &[
        (Some("Example"), "alice@google.com"),
        (Some("ACME Co"), "john doe"),
        (Some("a:b"), "c:d"),
        (Some("Issuer: with colon "), " leading and trailing spaces "),
        (Some("Zürich Bank"), "José Ñúñez"),
        (Some("例子"), "用户@例子.中国"),
        (Some("emoji 🔐"), "👩‍💻"),
        (Some("100% & more?"), "a+b=c&d#e/f?g"),
        (None, "plain"),
        (None, "with space"),
        (None, "Example:alice"),
        (None, "ünïcödé:ok"),
        (Some(""), "empty issuer means none"),
    ];
    let kinds = [
        OtpKind::Totp { period: 30 },
        OtpKind::Totp { period: 60 },
        OtpKind::Totp { period: u64::MAX },
        OtpKind::Hotp { counter: 0 },
        OtpKind::Hotp { counter: 17 },
        OtpKind::Hotp { counter: u64::MAX },
    ];
    let secrets: [&[u8]; 4] = [b"1", b"12345678901234567890", &[0u8; 32], &[0xFFu8; 64]];
    for &(issuer, account) in labels {
        for kind in &kinds {
            for alg in Algorithm::ALL {
                for digits in [6, 8] {
                    for secret in secrets {
                        let mut k = key(kind.clone(), issuer, account);
                        k.algorithm = alg;
                        k.digits = digits;
                        k.secret = secret.to_vec();
                        let uri = k.to_uri();
                        assert!(uri.is_ascii(), "{uri}");
                        let back = parse_ok(&uri);
                        let mut want = k.clone();
                        if want.issuer.as_deref() == Some("") {
                            want.issuer = None;
                        }
                        assert_eq!(back, want, "{uri}");
                        assert_eq!(back.to_uri(), uri);
                    }
                }
            }
        }
    }
}

#[test]
fn tolerant_parsing() {
    let s = google_secret();
    let cases: &[(&str, Option<&str>, &str)] = &[
        // lower-case and padded base32, spaces in the secret
        ("otpauth://totp/Example:alice?secret=jbswy3dpehpk3pxp", Some("Example"), "alice"),
        ("otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP%3D%3D%3D%3D", Some("Example"), "alice"),
        ("otpauth://totp/Example:alice?secret=jbsw%20y3dp%20ehpk%203pxp", Some("Example"), "alice"),
        ("otpauth://totp/Example:alice?secret=jbsw+y3dp+ehpk+3pxp", Some("Example"), "alice"),
        // scheme, type and parameter names in any case
        ("OTPAUTH://TOTP/Example:alice?SECRET=JBSWY3DPEHPK3PXP&Issuer=Example", Some("Example"), "alice"),
        // encoded separator, with and without spaces before the account
        ("otpauth://totp/Example%3Aalice?secret=JBSWY3DPEHPK3PXP&issuer=Example", Some("Example"), "alice"),
        ("otpauth://totp/Example%3A%20alice?secret=JBSWY3DPEHPK3PXP&issuer=Example", Some("Example"), "alice"),
        ("otpauth://totp/Example:%20alice?secret=JBSWY3DPEHPK3PXP", Some("Example"), " alice"),
        ("otpauth://totp/Example: alice?secret=JBSWY3DPEHPK3PXP", Some("Example"), "alice"),
        ("otpauth://totp/Example:   alice?secret=JBSWY3DPEHPK3PXP", Some("Example"), "alice"),
        // encoded separator without issuer parameter: whole label is the account
        ("otpauth://totp/Example%3Aalice?secret=JBSWY3DPEHPK3PXP", None, "Example:alice"),
        // issuer only as a parameter, '+' as a space in values
        ("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&issuer=Big+Corp", Some("Big Corp"), "alice"),
        ("otpauth://totp/Big%20Corp:alice?secret=JBSWY3DPEHPK3PXP&issuer=Big+Corp", Some("Big Corp"), "alice"),
        // empty issuer parameter / prefix means none
        ("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&issuer=", None, "alice"),
        ("otpauth://totp/:alice?secret=JBSWY3DPEHPK3PXP", None, "alice"),
        // unknown parameters, empty pairs, fragment
        ("otpauth://totp/alice?image=https%3A%2F%2Fx%2Fy.png&secret=JBSWY3DPEHPK3PXP&&lock=true&", None, "alice"),
        ("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP#frag", None, "alice"),
        // raw (non-encoded) unicode and '+' in the label
        ("otpauth://totp/Zürich:a+b?secret=JBSWY3DPEHPK3PXP", Some("Zürich"), "a+b"),
    ];
    for &(uri, issuer, account) in cases {
        let k = parse_ok(uri);
        assert_eq!(k.issuer.as_deref(), issuer, "{uri}");
        assert_eq!(k.account, account, "{uri}");
        assert_eq!(k.secret, s, "{uri}");
        assert_eq!(k.kind, OtpKind::Totp { period: 30 }, "{uri}");
        assert_eq!((k.algorithm, k.digits), (Algorithm::Sha1, 6), "{uri}");
    }
}

#[test]
fn defaults_and_explicit_parameters() {
    let k = parse_ok("otpauth://hotp/alice?secret=JBSWY3DPEHPK3PXP");
    assert_eq!(k.kind, OtpKind::Hotp { counter: 0 });
    assert_eq!((k.algorithm, k.digits), (Algorithm::Sha1, 6));

    let k = parse_ok(
        "otpauth://hotp/alice?secret=JBSWY3DPEHPK3PXP&counter=18446744073709551615\
         &algorithm=sha-512&digits=8&period=0",
    );
    assert_eq!(k.kind, OtpKind::Hotp { counter: u64::MAX }, "period ignored for hotp");
    assert_eq!((k.algorithm, k.digits), (Algorithm::Sha512, 8));

    let k = parse_ok("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&period=60&algorithm=SHA256&digits=10&counter=x");
    assert_eq!(k.kind, OtpKind::Totp { period: 60 }, "counter ignored for totp");
    assert_eq!((k.algorithm, k.digits), (Algorithm::Sha256, 10));
}

#[test]
fn rejects_garbage() {
    const S: &str = "secret=JBSWY3DPEHPK3PXP";
    let cases: Vec<(String, UriError)> = vec![
        // wrong scheme
        (String::new(), UriError::InvalidScheme),
        ("otpauth".into(), UriError::InvalidScheme),
        (format!("http://totp/a?{S}"), UriError::InvalidScheme),
        (format!("otpauth:/totp/a?{S}"), UriError::InvalidScheme),
        (format!("otpauth:totp/a?{S}"), UriError::InvalidScheme),
        (format!(" otpauth://totp/a?{S}"), UriError::InvalidScheme),
        (format!("otpauth-migration://offline?data=abc&{S}"), UriError::InvalidScheme),
        (format!("ötpauth://totp/a?{S}"), UriError::InvalidScheme),
        // type and label
        (format!("otpauth://xotp/a?{S}"), UriError::UnknownType("xotp".into())),
        (format!("otpauth:///a?{S}"), UriError::UnknownType(String::new())),
        (format!("otpauth://totp?{S}"), UriError::MissingLabel),
        ("otpauth://totp".into(), UriError::MissingLabel),
        (format!("otpauth://totp/?{S}"), UriError::MissingAccount),
        (format!("otpauth://totp/Example:?{S}"), UriError::MissingAccount),
        (format!("otpauth://totp/Example:   ?{S}"), UriError::MissingAccount),
        (format!("otpauth://totp/Example%3A?{S}&issuer=Example"), UriError::MissingAccount),
        (format!("otpauth://totp/a%ZZ?{S}"), UriError::InvalidPercentEncoding),
        (format!("otpauth://totp/a%4?{S}"), UriError::InvalidPercentEncoding),
        (format!("otpauth://totp/a%FF?{S}"), UriError::InvalidUtf8),
        (
            format!("otpauth://totp/Evil:alice?{S}&issuer=Example"),
            UriError::IssuerMismatch { label: "Evil".into(), parameter: "Example".into() },
        ),
        // secret
        ("otpauth://totp/a".into(), UriError::MissingSecret),
        ("otpauth://totp/a?issuer=x".into(), UriError::MissingSecret),
        ("otpauth://totp/a?secrets=JBSWY3DPEHPK3PXP".into(), UriError::MissingSecret),
        ("otpauth://totp/a?secret=JBSWY3DPEHPK3PX1".into(), UriError::InvalidSecret),
        ("otpauth://totp/a?secret=JBSWY3DPEHPK3P".into(), UriError::InvalidSecret), // 14 symbols: impossible length
        ("otpauth://totp/a?secret=JBSW=Y3DP".into(), UriError::InvalidSecret),
        ("otpauth://totp/a?secret=%%%".into(), UriError::InvalidPercentEncoding),
        ("otpauth://totp/a?secret=".into(), UriError::EmptySecret),
        ("otpauth://totp/a?secret".into(), UriError::EmptySecret),
        ("otpauth://totp/a?secret=====".into(), UriError::EmptySecret),
        (format!("otpauth://totp/a?{S}&{S}"), UriError::DuplicateParameter("secret".into())),
        (format!("otpauth://totp/a?{S}&Secret=AA"), UriError::DuplicateParameter("secret".into())),
        // algorithm / digits / period / counter
        (format!("otpauth://totp/a?{S}&algorithm=MD5"), UriError::UnsupportedAlgorithm("MD5".into())),
        (format!("otpauth://totp/a?{S}&algorithm="), UriError::UnsupportedAlgorithm(String::new())),
        (format!("otpauth://totp/a?{S}&digits=3"), UriError::InvalidDigits("3".into())),
        (format!("otpauth://totp/a?{S}&digits=5"), UriError::InvalidDigits("5".into())),
        (format!("otpauth://totp/a?{S}&digits=11"), UriError::InvalidDigits("11".into())),
        (format!("otpauth://totp/a?{S}&digits=six"), UriError::InvalidDigits("six".into())),
        (format!("otpauth://totp/a?{S}&digits=%2B6"), UriError::InvalidDigits("+6".into())),
        (format!("otpauth://totp/a?{S}&digits=+6"), UriError::InvalidDigits(" 6".into())),
        (format!("otpauth://totp/a?{S}&digits=99999999999"), UriError::InvalidDigits("99999999999".into())),
        (format!("otpauth://totp/a?{S}&period=0"), UriError::InvalidPeriod("0".into())),
        (format!("otpauth://totp/a?{S}&period=-30"), UriError::InvalidPeriod("-30".into())),
        (format!("otpauth://totp/a?{S}&period=30s"), UriError::InvalidPeriod("30s".into())),
        (format!("otpauth://hotp/a?{S}&counter=-1"), UriError::InvalidCounter("-1".into())),
        (format!("otpauth://hotp/a?{S}&counter=18446744073709551616"), UriError::InvalidCounter("18446744073709551616".into())),
    ];
    for (uri, want) in cases {
        assert_eq!(KeyUri::parse(&uri), Err(want), "{uri:?}");
    }
}

#[test]
fn errors_display_without_secrets() {
    let errors = [
        UriError::InvalidScheme,
        UriError::UnknownType("x".into()),
        UriError::MissingLabel,
        UriError::MissingAccount,
        UriError::InvalidPercentEncoding,
        UriError::InvalidUtf8,
        UriError::IssuerMismatch { label: "a".into(), parameter: "b".into() },
        UriError::DuplicateParameter("secret".into()),
        UriError::MissingSecret,
        UriError::InvalidSecret,
        UriError::EmptySecret,
        UriError::UnsupportedAlgorithm("MD5".into()),
        UriError::InvalidDigits("3".into()),
        UriError::InvalidPeriod("0".into()),
        UriError::InvalidCounter("-1".into()),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.is_empty());
        let _: &dyn std::error::Error = &e;
    }
    let bad = KeyUri::parse("otpauth://totp/a?secret=JBSWY3DPEHPK3PX1SECRETISH").expect_err("invalid base32");
    assert!(!format!("{bad} {bad:?}").contains("JBSWY3DP"));
}

#[test]
fn debug_redacts_secret() {
    let k = parse_ok(GOOGLE_EXAMPLE);
    let dbg = format!("{k:?}");
    assert!(dbg.contains("secret: <redacted>"), "{dbg}");
    assert!(!dbg.contains("JBSWY3DP"), "{dbg}");
    assert!(!dbg.contains("72, 101"), "{dbg}"); // "He" as bytes
    assert!(!dbg.contains("Hello"), "{dbg}");
    assert!(dbg.contains("alice@google.com") && dbg.contains("Example") && dbg.contains("Sha1"));
    let pretty = format!("{k:#?}");
    assert!(pretty.contains("<redacted>") && !pretty.contains("72,"), "{pretty}");
}
