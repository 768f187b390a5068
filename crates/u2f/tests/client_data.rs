//! clientData checks, base64 helpers, appId origins and error messages.

use tessera_u2f::*;

const CHALLENGE: &str = "vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo";

fn allowed() -> Vec<String> {
    vec!["https://example.com".to_owned(), "https://login.example.com:8443/".to_owned()]
}

fn cd(typ: &str, challenge: &str, origin: &str) -> Vec<u8> {
    format!(r#"{{"typ":"{typ}","challenge":"{challenge}","origin":"{origin}","cid_pubkey":""}}"#).into_bytes()
}

#[test]
fn accepts_matching_client_data() {
    let bytes = cd(TYP_SIGN, CHALLENGE, "https://example.com");
    let parsed = check_client_data(&bytes, TYP_SIGN, CHALLENGE, &allowed()).expect("ok");
    assert_eq!(parsed, ClientData { typ: TYP_SIGN.to_owned(), challenge: CHALLENGE.to_owned(), origin: "https://example.com".to_owned() });
    let bytes = cd(TYP_REGISTER, CHALLENGE, "https://example.com");
    check_client_data(&bytes, TYP_REGISTER, CHALLENGE, &allowed()).expect("ok");
}

#[test]
fn origin_trailing_slash_is_trimmed_once_on_both_sides() {
    for origin in ["https://example.com/", "https://login.example.com:8443", "https://login.example.com:8443/"] {
        let bytes = cd(TYP_SIGN, CHALLENGE, origin);
        let parsed = check_client_data(&bytes, TYP_SIGN, CHALLENGE, &allowed()).expect(origin);
        assert_eq!(parsed.origin, origin, "origin is reported as received");
    }
    for origin in [
        "https://example.com//",
        "https://example.com/x",
        "http://example.com",
        "https://EXAMPLE.com",
        "https://example.com:443",
        "https://login.example.com",
        "https://evil.example.com",
        "https://example.com.evil",
        "",
    ] {
        let bytes = cd(TYP_SIGN, CHALLENGE, origin);
        assert_eq!(check_client_data(&bytes, TYP_SIGN, CHALLENGE, &allowed()), Err(U2fError::OriginNotAllowed), "{origin}");
    }
    let bytes = cd(TYP_SIGN, CHALLENGE, "https://example.com");
    assert_eq!(check_client_data(&bytes, TYP_SIGN, CHALLENGE, &[]), Err(U2fError::OriginNotAllowed));
}

#[test]
fn wrong_typ() {
    let bytes = cd(TYP_REGISTER, CHALLENGE, "https://example.com");
    assert_eq!(check_client_data(&bytes, TYP_SIGN, CHALLENGE, &allowed()), Err(U2fError::WrongType { expected: TYP_SIGN }));
    let bytes = cd("webauthn.get", CHALLENGE, "https://example.com");
    assert_eq!(check_client_data(&bytes, TYP_REGISTER, CHALLENGE, &allowed()), Err(U2fError::WrongType { expected: TYP_REGISTER }));
}

#[test]
fn wrong_challenge() {
    for challenge in ["", "x", &CHALLENGE[1..], &format!("{CHALLENGE}="), &CHALLENGE.to_uppercase()] {
        let bytes = cd(TYP_SIGN, challenge, "https://example.com");
        assert_eq!(check_client_data(&bytes, TYP_SIGN, CHALLENGE, &allowed()), Err(U2fError::ChallengeMismatch), "{challenge}");
    }
}

#[test]
fn checks_happen_in_order_typ_challenge_origin() {
    let bytes = cd(TYP_REGISTER, "nope", "https://nope");
    assert_eq!(check_client_data(&bytes, TYP_SIGN, CHALLENGE, &allowed()), Err(U2fError::WrongType { expected: TYP_SIGN }));
    let bytes = cd(TYP_SIGN, "nope", "https://nope");
    assert_eq!(check_client_data(&bytes, TYP_SIGN, CHALLENGE, &allowed()), Err(U2fError::ChallengeMismatch));
}

#[test]
fn not_json_or_missing_fields() {
    let cases: &[&[u8]] = &[
        b"",
        b"   ",
        b"not json",
        b"\xff\xfe{}",
        b"null",
        b"42",
        b"\"typ\"",
        br#"["navigator.id.getAssertion","vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","https://example.com"]"#,
        b"{}",
        br#"{"typ":"navigator.id.getAssertion","challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo"}"#,
        br#"{"typ":"navigator.id.getAssertion","origin":"https://example.com"}"#,
        br#"{"challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","origin":"https://example.com"}"#,
        br#"{"typ":1,"challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","origin":"https://example.com"}"#,
        br#"{"typ":"navigator.id.getAssertion","challenge":null,"origin":"https://example.com"}"#,
        br#"{"typ":"navigator.id.getAssertion","challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","origin":"https://example.com""#,
        br#"{"typ":"navigator.id.getAssertion","challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","origin":"https://example.com"} trailing"#,
        // Duplicate keys are ambiguous: reject rather than pick one.
        br#"{"typ":"navigator.id.getAssertion","challenge":"other","challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","origin":"https://example.com"}"#,
    ];
    for bytes in cases {
        assert_eq!(
            check_client_data(bytes, TYP_SIGN, CHALLENGE, &allowed()),
            Err(U2fError::ClientDataJson),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    // Whitespace around the object and unknown fields are fine.
    let ok = br#"
      {"extra":[1,2,{"a":null}],"typ":"navigator.id.getAssertion","challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","origin":"https://example.com"}
    "#;
    check_client_data(ok, TYP_SIGN, CHALLENGE, &allowed()).expect("ok");
}

#[test]
fn b64_accepts_all_alphabets_and_padding() {
    let bytes: Vec<u8> = (0u8..=255).collect();
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    for len in 0..bytes.len() {
        let b = &bytes[..len];
        for enc in [
            STANDARD.encode(b),
            STANDARD_NO_PAD.encode(b),
            URL_SAFE.encode(b),
            URL_SAFE_NO_PAD.encode(b),
            format!(" \t{}\r\n", URL_SAFE.encode(b)),
        ] {
            assert_eq!(b64_decode(&enc).as_deref(), Ok(b), "{enc}");
        }
        assert_eq!(b64_encode(b), URL_SAFE_NO_PAD.encode(b));
    }
}

#[test]
fn b64_rejects_garbage() {
    for bad in [
        "a", "ab=c", "ab===", "QQ=", "Q Q==", "+/-_", "abc$", "éé", "QR==", // non-canonical trailing bits
    ] {
        assert_eq!(b64_decode(bad), Err(U2fError::Base64), "{bad}");
    }
    assert_eq!(b64_decode(""), Ok(Vec::new()));
    assert_eq!(b64_decode("  "), Ok(Vec::new()));
}

#[test]
fn challenge_is_websafe_43_chars() {
    let c = challenge_from_bytes(&[0xfb; 32]);
    assert_eq!(c.len(), 43);
    assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
    assert_eq!(b64_decode(&c), Ok(vec![0xfb; 32]));
    assert_ne!(challenge_from_bytes(&[0; 32]), challenge_from_bytes(&[1; 32]));
}

#[test]
fn app_id_origins() {
    let cases: &[(&str, Option<&str>)] = &[
        ("https://example.com/app-id.json", Some("https://example.com")),
        ("https://example.com", Some("https://example.com")),
        ("https://example.com/", Some("https://example.com")),
        ("http://example.com", Some("http://example.com")),
        ("https://gstatic.com/securitykey/a/example.com", Some("https://gstatic.com")),
        ("https://Example.COM:8443/x?y#z", Some("https://example.com:8443")),
        ("https://example.com:443/app", Some("https://example.com")),
        ("http://example.com:80", Some("http://example.com")),
        ("http://example.com:443", Some("http://example.com:443")),
        ("https://example.com?x", Some("https://example.com")),
        ("https://[::1]:8443/a", Some("https://[::1]:8443")),
        ("https://[::1]/a", Some("https://[::1]")),
        ("  https://example.com/a  ", Some("https://example.com")),
        ("https://", None),
        ("https:///path", None),
        ("example.com/app-id.json", None),
        ("://example.com", None),
        ("1http://example.com", None),
        ("https://user:pw@example.com/", None),
        ("https://example.com:abc/", None),
        ("https://:443/", None),
        ("https://exa mple.com/", None),
        ("https://[::1/", None),
        ("https://::1]/", None),
        ("https://[::1]x:80/", None),
        ("", None),
    ];
    for (app_id, expected) in cases {
        assert_eq!(app_id_origin(app_id).as_deref(), *expected, "{app_id}");
    }
}

#[test]
fn error_messages_are_descriptive() {
    let cases = [
        (U2fError::Base64, "input is not valid base64 (standard or URL-safe alphabet)"),
        (U2fError::Truncated("key handle"), "message truncated: key handle missing or incomplete"),
        (U2fError::BadReservedByte, "registration response reserved byte is not 0x05"),
        (U2fError::WrongType { expected: TYP_SIGN }, "clientData typ does not match; expected navigator.id.getAssertion"),
        (U2fError::UserNotPresent, "user presence was not asserted by the authenticator"),
    ];
    for (err, msg) in cases {
        assert_eq!(err.to_string(), msg);
    }
    for err in [
        U2fError::BadPublicKey,
        U2fError::BadCertificate,
        U2fError::BadSignatureEncoding,
        U2fError::SignatureInvalid,
        U2fError::ClientDataJson,
        U2fError::ChallengeMismatch,
        U2fError::OriginNotAllowed,
    ] {
        assert!(!err.to_string().is_empty());
    }
}
