//! Official FIDO U2F raw-message examples, tampering and fresh signatures.

mod common;

use std::str::FromStr as _;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use tessera_u2f::*;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::Certificate;

fn signing_key(bytes: &[u8]) -> SigningKey {
    SigningKey::from_slice(bytes).expect("valid P-256 private key")
}

fn uncompressed(key: &SigningKey) -> Vec<u8> {
    key.verifying_key().to_encoded_point(false).as_bytes().to_vec()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

fn origins(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Builds registrationData from its parts.
fn registration_data(pk: &[u8], kh: &[u8], cert: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut out = vec![0x05];
    out.extend_from_slice(pk);
    out.push(u8::try_from(kh.len()).expect("key handle <= 255"));
    out.extend_from_slice(kh);
    out.extend_from_slice(cert);
    out.extend_from_slice(sig);
    out
}

/// Signs a registration the way an authenticator does.
fn sign_registration(att: &SigningKey, app_id: &str, client_data: &[u8], kh: &[u8], pk: &[u8]) -> Vec<u8> {
    let mut msg = vec![0x00];
    msg.extend_from_slice(&sha256(app_id.as_bytes()));
    msg.extend_from_slice(&sha256(client_data));
    msg.extend_from_slice(kh);
    msg.extend_from_slice(pk);
    let sig: Signature = att.sign(&msg);
    sig.to_der().as_bytes().to_vec()
}

/// Builds signatureData the way an authenticator does.
fn sign_assertion(key: &SigningKey, app_id: &str, client_data: &[u8], presence: u8, counter: u32) -> Vec<u8> {
    let mut msg = sha256(app_id.as_bytes());
    msg.push(presence);
    msg.extend_from_slice(&counter.to_be_bytes());
    msg.extend_from_slice(&sha256(client_data));
    let sig: Signature = key.sign(&msg);
    let mut out = vec![presence];
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(sig.to_der().as_bytes());
    out
}

// ---------------------------------------------------------------------------
// registration example
// ---------------------------------------------------------------------------

#[test]
fn registration_vector_base64_forms_agree() {
    let v = common::registration();
    assert_eq!(b64_decode(&v.registration_data_b64), Ok(v.registration_data.clone()));
    assert_eq!(b64_decode(&v.client_data_b64), Ok(v.client_data.clone()));
    assert_eq!(b64_decode(&v.key_handle_b64), Ok(v.key_handle.clone()));
    assert_eq!(b64_encode(&v.key_handle), v.key_handle_b64);
}

#[test]
fn registration_vector_parses() {
    let v = common::registration();
    let reg = parse_registration(&v.registration_data).expect("parses");
    assert_eq!(reg.public_key.to_vec(), v.user_public_key);
    assert_eq!(reg.key_handle, v.key_handle);
    assert_eq!(reg.attestation_cert, v.attestation_cert);
    assert_eq!(reg.signature, v.signature);
    assert_eq!(reg.attestation_cert_fixed(), Ok(v.attestation_cert.clone()));
}

#[test]
fn registration_vector_verifies() {
    let v = common::registration();
    let reg = parse_registration(&v.registration_data).expect("parses");
    verify_registration(&reg, &v.app_id, &v.client_data).expect("verifies");

    let cd = check_client_data(&v.client_data, TYP_REGISTER, &v.challenge, &origins(&[&v.origin])).expect("clientData ok");
    assert_eq!(cd.typ, TYP_REGISTER);
    assert_eq!(cd.challenge, v.challenge);
    assert_eq!(cd.origin, v.origin);
    assert_eq!(app_id_origin(&v.app_id).as_deref(), Some(v.origin.as_str()));
}

#[test]
fn registration_vector_rejects_wrong_app_id_and_client_data() {
    let v = common::registration();
    let reg = parse_registration(&v.registration_data).expect("parses");
    assert_eq!(verify_registration(&reg, "https://example.com", &v.client_data), Err(U2fError::SignatureInvalid));
    assert_eq!(verify_registration(&reg, &v.app_id, b"{}"), Err(U2fError::SignatureInvalid));
    // clientData must be hashed exactly as received: re-serializing breaks it.
    let reserialized = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&v.client_data).expect("json")).expect("serialize");
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&v.client_data).expect("json")).expect("serialize");
    assert_ne!(pretty, v.client_data);
    assert_eq!(verify_registration(&reg, &v.app_id, &pretty), Err(U2fError::SignatureInvalid));
    if reserialized != v.client_data {
        assert_eq!(verify_registration(&reg, &v.app_id, &reserialized), Err(U2fError::SignatureInvalid));
    }
}

/// Byte range of the attestation certificate's SubjectPublicKeyInfo inside
/// registrationData.
fn spki_range(v: &common::RegVector) -> std::ops::Range<usize> {
    let cert = Certificate::from_der(&v.attestation_cert).expect("vector cert parses");
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().expect("encode spki");
    let in_cert = v.attestation_cert.windows(spki.len()).position(|w| w == spki.as_slice()).expect("spki found in cert");
    let cert_start = 1 + 65 + 1 + v.key_handle.len();
    cert_start + in_cert..cert_start + in_cert + spki.len()
}

#[test]
fn registration_every_bit_flip_is_rejected_or_harmless() {
    let v = common::registration();
    let data = &v.registration_data;
    let cert_start = 1 + 65 + 1 + v.key_handle.len();
    let cert_range = cert_start..cert_start + v.attestation_cert.len();
    let spki = spki_range(&v);

    let mut rejected = 0usize;
    let mut cert_only = Vec::new();
    for pos in 0..data.len() {
        for bit in 0..8 {
            let mut m = data.clone();
            m[pos] ^= 1 << bit;
            let outcome = parse_registration(&m).and_then(|reg| verify_registration(&reg, &v.app_id, &v.client_data).map(|()| reg));
            match outcome {
                Err(_) => rejected += 1,
                Ok(reg) => {
                    // The attestation signature does not cover the
                    // certificate, so a flip that leaves it a valid X.509
                    // certificate with the same key is only detectable by
                    // attestation chain validation. Everything the signature
                    // binds must be unchanged, and the change must show up in
                    // the returned certificate bytes.
                    assert!(
                        cert_range.contains(&pos) && !spki.contains(&pos),
                        "flip at byte {pos} bit {bit} accepted outside the certificate body"
                    );
                    assert_eq!(reg.public_key.to_vec(), v.user_public_key);
                    assert_eq!(reg.key_handle, v.key_handle);
                    assert_eq!(reg.signature, v.signature);
                    assert_ne!(reg.attestation_cert, v.attestation_cert);
                    cert_only.push((pos, bit));
                }
            }
        }
    }
    // With the official example about 30% of all flips land in certificate
    // fields other than the key (serial, names, validity, the CA signature).
    eprintln!("rejected {rejected}, accepted cert-only flips {}", cert_only.len());
    assert!(rejected > 0);
    // Every flip outside the certificate, and inside its public key, fails.
    for pos in (0..data.len()).filter(|p| !cert_range.contains(p) || spki.contains(p)) {
        assert!(!cert_only.iter().any(|(p, _)| *p == pos));
    }
}

#[test]
fn registration_client_data_bit_flips_fail() {
    let v = common::registration();
    let reg = parse_registration(&v.registration_data).expect("parses");
    for pos in 0..v.client_data.len() {
        let mut cd = v.client_data.clone();
        cd[pos] ^= 1 << (pos % 8);
        assert_eq!(verify_registration(&reg, &v.app_id, &cd), Err(U2fError::SignatureInvalid), "clientData flip at {pos}");
    }
}

#[test]
fn registration_truncations_are_reported() {
    let v = common::registration();
    let data = &v.registration_data;
    let kh_end = 1 + 65 + 1 + v.key_handle.len();
    let cert_end = kh_end + v.attestation_cert.len();

    assert_eq!(parse_registration(&[]), Err(U2fError::Truncated("reserved byte")));
    assert_eq!(parse_registration(&data[..1]), Err(U2fError::Truncated("user public key")));
    assert_eq!(parse_registration(&data[..40]), Err(U2fError::Truncated("user public key")));
    assert_eq!(parse_registration(&data[..66]), Err(U2fError::Truncated("key handle length")));
    assert_eq!(parse_registration(&data[..67]), Err(U2fError::Truncated("key handle")));
    assert_eq!(parse_registration(&data[..kh_end - 1]), Err(U2fError::Truncated("key handle")));
    assert_eq!(parse_registration(&data[..kh_end]), Err(U2fError::Truncated("attestation certificate")));
    for cut in [kh_end + 1, kh_end + 2, kh_end + 3] {
        // data[kh_end..] starts "30 82 01 3c": a two-octet long-form length.
        assert_eq!(parse_registration(&data[..cut]), Err(U2fError::Truncated("attestation certificate")));
    }
    let mut bad_len = data[..kh_end].to_vec();
    bad_len.extend_from_slice(&[0x30, 0x80, 0x00, 0x00]); // indefinite length
    assert_eq!(parse_registration(&bad_len), Err(U2fError::BadCertificate));
    assert_eq!(parse_registration(&data[..cert_end - 1]), Err(U2fError::Truncated("attestation certificate")));
    assert_eq!(parse_registration(&data[..cert_end]), Err(U2fError::Truncated("signature")));
    assert_eq!(parse_registration(&data[..data.len() - 1]), Err(U2fError::BadSignatureEncoding));
    for len in 0..data.len() {
        assert!(parse_registration(&data[..len]).is_err(), "prefix {len} accepted");
    }
    // Trailing garbage after the signature is not a DER signature.
    let mut long = data.clone();
    long.push(0);
    assert_eq!(parse_registration(&long), Err(U2fError::BadSignatureEncoding));
}

#[test]
fn registration_specific_errors() {
    let v = common::registration();
    let mut m = v.registration_data.clone();
    m[0] = 0x04;
    assert_eq!(parse_registration(&m), Err(U2fError::BadReservedByte));

    let mut m = v.registration_data.clone();
    m[1] = 0x02; // compressed prefix
    assert_eq!(parse_registration(&m), Err(U2fError::BadPublicKey));

    let mut m = v.registration_data.clone();
    m[65] ^= 0x01; // last byte of Y: point leaves the curve
    assert_eq!(parse_registration(&m), Err(U2fError::BadPublicKey));

    let kh_end = 1 + 65 + 1 + v.key_handle.len();
    let mut m = v.registration_data.clone();
    m[kh_end] = 0x31; // not a SEQUENCE
    assert_eq!(parse_registration(&m), Err(U2fError::BadCertificate));

    // Well-formed structure but the public key was replaced by another valid
    // point: the signature no longer matches.
    let other = signing_key(&[7u8; 32]);
    let mut reg = parse_registration(&v.registration_data).expect("parses");
    reg.public_key.copy_from_slice(&uncompressed(&other));
    assert_eq!(verify_registration(&reg, &v.app_id, &v.client_data), Err(U2fError::SignatureInvalid));
    // Garbage signature bytes in a hand-built Registration.
    reg.signature = vec![0x30, 0x00];
    assert_eq!(verify_registration(&reg, &v.app_id, &v.client_data), Err(U2fError::BadSignatureEncoding));
    reg.attestation_cert = vec![0x30, 0x00];
    assert_eq!(verify_registration(&reg, &v.app_id, &v.client_data), Err(U2fError::BadCertificate));
}

#[test]
fn fresh_registration_signed_with_vector_attestation_key_verifies() {
    let v = common::registration();
    let att = signing_key(&v.attestation_private_key);
    let user = signing_key(&v.user_private_key);
    assert_eq!(uncompressed(&user), v.user_public_key);

    let challenge = challenge_from_bytes(&[0x42; 32]);
    let app_id = "https://tessera.example/app-id.json";
    let origin = app_id_origin(app_id).expect("origin");
    assert_eq!(origin, "https://tessera.example");
    let client_data = format!(r#"{{"typ":"{TYP_REGISTER}","challenge":"{challenge}","origin":"{origin}"}}"#);
    let kh = [0xa5u8; 96];
    let sig = sign_registration(&att, app_id, client_data.as_bytes(), &kh, &v.user_public_key);
    let data = registration_data(&v.user_public_key, &kh, &v.attestation_cert, &sig);

    let wire = b64_encode(&data);
    let reg = parse_registration(&b64_decode(&wire).expect("b64")).expect("parses");
    assert_eq!(reg.key_handle, kh);
    check_client_data(client_data.as_bytes(), TYP_REGISTER, &challenge, &[origin]).expect("clientData ok");
    verify_registration(&reg, app_id, client_data.as_bytes()).expect("verifies");
    assert_eq!(verify_registration(&reg, "https://other.example", client_data.as_bytes()), Err(U2fError::SignatureInvalid));
}

// ---------------------------------------------------------------------------
// Yubico attestation certificate quirk
// ---------------------------------------------------------------------------

/// Offset of the outer signature BIT STRING's unused-bits octet.
fn unused_bits_offset(cert: &[u8]) -> usize {
    // For a certificate whose signature BIT STRING is last, its content is the
    // ECDSA/RSA signature; find the header from the parsed structure.
    let parsed = Certificate::from_der(cert).expect("parses");
    let sig_len = parsed.signature.raw_bytes().len();
    // BIT STRING content = unused-bits octet + signature bytes.
    cert.len() - sig_len - 1
}

fn registration_with_cert(v: &common::RegVector, cert: &[u8]) -> (Vec<u8>, String, Vec<u8>) {
    let att = signing_key(&v.attestation_private_key);
    let app_id = "https://yubico.example".to_owned();
    let client_data = br#"{"typ":"navigator.id.finishEnrollment","challenge":"x","origin":"https://yubico.example"}"#.to_vec();
    let sig = sign_registration(&att, &app_id, &client_data, &v.key_handle, &v.user_public_key);
    (registration_data(&v.user_public_key, &v.key_handle, cert, &sig), app_id, client_data)
}

#[test]
fn quirk_invalid_unused_bits_octet_is_repaired() {
    let v = common::registration();
    let idx = unused_bits_offset(&v.attestation_cert);
    assert_eq!(v.attestation_cert[idx], 0, "vector cert needs no fix");
    let mut broken = v.attestation_cert.clone();
    broken[idx] = 0x08; // > 7: rejected by strict DER parsers
    assert!(Certificate::from_der(&broken).is_err());

    let (data, app_id, cd) = registration_with_cert(&v, &broken);
    let reg = parse_registration(&data).expect("quirk repaired during parse");
    assert_eq!(reg.attestation_cert, broken, "received bytes are kept as-is");
    assert_eq!(reg.attestation_cert_fixed(), Ok(v.attestation_cert.clone()));
    verify_registration(&reg, &app_id, &cd).expect("verifies");
}

#[test]
fn quirk_known_yubico_cn_is_normalized() {
    let v = common::registration();
    for cn in YUBICO_QUIRK_CNS {
        let mut cert = Certificate::from_der(&v.attestation_cert).expect("parses");
        cert.tbs_certificate.subject = x509_cert::name::Name::from_str(&format!("CN={cn}")).expect("name");
        let mut der = cert.to_der().expect("encode");
        let idx = unused_bits_offset(&der);
        der[idx] = 0x03; // accepted by the parser but not zero
        assert!(Certificate::from_der(&der).is_ok());

        let (data, app_id, cd) = registration_with_cert(&v, &der);
        let reg = parse_registration(&data).expect("parses");
        verify_registration(&reg, &app_id, &cd).expect("verifies");
        let fixed = reg.attestation_cert_fixed().expect("fixed");
        assert_eq!(fixed[idx], 0, "{cn}");
        assert_eq!(fixed.len(), der.len());

        // A certificate with another CN is returned untouched.
        let mut other = Certificate::from_der(&v.attestation_cert).expect("parses");
        other.tbs_certificate.subject = x509_cert::name::Name::from_str("CN=Yubico U2F EE Serial 1").expect("name");
        let mut der = other.to_der().expect("encode");
        let idx = unused_bits_offset(&der);
        der[idx] = 0x03;
        let (data, _, _) = registration_with_cert(&v, &der);
        let reg = parse_registration(&data).expect("parses");
        assert_eq!(reg.attestation_cert_fixed(), Ok(der));
    }
}

// ---------------------------------------------------------------------------
// authentication example
// ---------------------------------------------------------------------------

#[test]
fn authentication_vector_parses_and_verifies() {
    let v = common::authentication();
    assert_eq!(b64_decode(&v.signature_data_b64), Ok(v.signature_data.clone()));
    assert_eq!(b64_decode(&v.client_data_b64), Ok(v.client_data.clone()));

    let resp = parse_sign_response(&v.signature_data).expect("parses");
    assert_eq!(resp.user_presence, v.user_presence);
    assert_eq!(resp.counter, v.counter);
    assert!(resp.user_present());
    assert_eq!(check_user_presence(&resp), Ok(()));
    assert_eq!(resp.signature, v.signature_data[5..].to_vec());
    verify_signature(&v.public_key, &v.app_id, &v.client_data, &resp).expect("verifies");

    let cd = check_client_data(&v.client_data, TYP_SIGN, &v.challenge, &origins(&[&v.origin])).expect("clientData ok");
    assert_eq!(cd.typ, TYP_SIGN);
    assert_eq!(
        check_client_data(&v.client_data, TYP_REGISTER, &v.challenge, &origins(&[&v.origin])),
        Err(U2fError::WrongType { expected: TYP_REGISTER })
    );
    // The private key in the vectors matches the public key.
    assert_eq!(uncompressed(&signing_key(&v.private_key)), v.public_key);
    assert_eq!(v.key_handle.len(), 64);
}

#[test]
fn authentication_vector_rejects_wrong_inputs() {
    let v = common::authentication();
    let resp = parse_sign_response(&v.signature_data).expect("parses");
    let reg = common::registration();
    // Wrong key (the registration example's user key).
    assert_eq!(verify_signature(&reg.user_public_key, &v.app_id, &v.client_data, &resp), Err(U2fError::SignatureInvalid));
    assert_eq!(verify_signature(&v.public_key, &reg.app_id, &v.client_data, &resp), Err(U2fError::SignatureInvalid));
    assert_eq!(verify_signature(&v.public_key[..64], &v.app_id, &v.client_data, &resp), Err(U2fError::BadPublicKey));
    assert_eq!(verify_signature(&[], &v.app_id, &v.client_data, &resp), Err(U2fError::BadPublicKey));
    let mut bumped = resp.clone();
    bumped.counter += 1;
    assert_eq!(verify_signature(&v.public_key, &v.app_id, &v.client_data, &bumped), Err(U2fError::SignatureInvalid));
    let mut absent = resp.clone();
    absent.user_presence = 0;
    assert_eq!(check_user_presence(&absent), Err(U2fError::UserNotPresent));
    assert_eq!(verify_signature(&v.public_key, &v.app_id, &v.client_data, &absent), Err(U2fError::SignatureInvalid));
}

#[test]
fn authentication_every_bit_flip_is_rejected() {
    let v = common::authentication();
    let data = &v.signature_data;
    for pos in 0..data.len() {
        for bit in 0..8 {
            let mut m = data.clone();
            m[pos] ^= 1 << bit;
            let outcome = parse_sign_response(&m).and_then(|resp| {
                verify_signature(&v.public_key, &v.app_id, &v.client_data, &resp)?;
                check_user_presence(&resp)
            });
            assert!(outcome.is_err(), "flip at byte {pos} bit {bit} accepted");
        }
    }
}

#[test]
fn authentication_client_data_bit_flips_fail() {
    let v = common::authentication();
    let resp = parse_sign_response(&v.signature_data).expect("parses");
    for pos in 0..v.client_data.len() {
        let mut cd = v.client_data.clone();
        cd[pos] ^= 1 << (pos % 8);
        assert_eq!(verify_signature(&v.public_key, &v.app_id, &cd, &resp), Err(U2fError::SignatureInvalid), "clientData flip at {pos}");
    }
}

#[test]
fn authentication_truncations_are_reported() {
    let v = common::authentication();
    let d = &v.signature_data;
    assert_eq!(parse_sign_response(&[]), Err(U2fError::Truncated("user presence")));
    assert_eq!(parse_sign_response(&d[..1]), Err(U2fError::Truncated("counter")));
    assert_eq!(parse_sign_response(&d[..4]), Err(U2fError::Truncated("counter")));
    assert_eq!(parse_sign_response(&d[..5]), Err(U2fError::Truncated("signature")));
    for len in 6..d.len() {
        assert_eq!(parse_sign_response(&d[..len]), Err(U2fError::BadSignatureEncoding));
    }
    let mut long = d.clone();
    long.push(0);
    assert_eq!(parse_sign_response(&long), Err(U2fError::BadSignatureEncoding));
}

#[test]
fn fresh_assertion_signed_with_vector_user_key_verifies() {
    let v = common::registration();
    let user = signing_key(&v.user_private_key);
    let reg = parse_registration(&v.registration_data).expect("parses");
    assert_eq!(uncompressed(&user), reg.public_key.to_vec());

    let app_id = "https://tessera.example/app-id.json";
    let origin = app_id_origin(app_id).expect("origin");
    for (i, counter) in [0u32, 1, 41, 0x0102_0304, u32::MAX].into_iter().enumerate() {
        let challenge = challenge_from_bytes(&[u8::try_from(i).expect("small"); 32]);
        let client_data = format!(r#"{{"typ":"{TYP_SIGN}","challenge":"{challenge}","origin":"{origin}/","cid_pubkey":"unused"}}"#);
        let data = sign_assertion(&user, app_id, client_data.as_bytes(), 0x01, counter);
        let wire = b64_encode(&data);
        let client_wire = base64_std(client_data.as_bytes());

        let resp = parse_sign_response(&b64_decode(&wire).expect("b64")).expect("parses");
        assert_eq!(resp.counter, counter);
        assert!(resp.user_present());
        let cd_bytes = b64_decode(&client_wire).expect("b64");
        let cd = check_client_data(&cd_bytes, TYP_SIGN, &challenge, std::slice::from_ref(&origin)).expect("clientData ok");
        assert_eq!(cd.challenge, challenge);
        verify_signature(&reg.public_key, app_id, &cd_bytes, &resp).expect("verifies");

        // Stale challenge or different appId fail.
        assert_eq!(
            check_client_data(&cd_bytes, TYP_SIGN, &challenge_from_bytes(&[0xff; 32]), std::slice::from_ref(&origin)),
            Err(U2fError::ChallengeMismatch)
        );
        assert_eq!(verify_signature(&reg.public_key, "https://tessera.example", &cd_bytes, &resp), Err(U2fError::SignatureInvalid));
    }

    // Presence bit clear: signature is valid, policy check rejects it.
    let client_data = br#"{"typ":"navigator.id.getAssertion","challenge":"c","origin":"https://tessera.example"}"#;
    let data = sign_assertion(&user, app_id, client_data, 0x00, 9);
    let resp = parse_sign_response(&data).expect("parses");
    verify_signature(&reg.public_key, app_id, client_data, &resp).expect("verifies");
    assert_eq!(check_user_presence(&resp), Err(U2fError::UserNotPresent));
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
