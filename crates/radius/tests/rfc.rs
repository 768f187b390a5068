//! The codec against RFC 2865 §7.1 (the Access-Request / Access-Accept example with secret
//! "xyzzy5461"), and against packets it must refuse.

use tessera_radius::*;

const SECRET: &[u8] = b"xyzzy5461";

/// RFC 2865 §7.1: NAS 192.168.1.16 asks for "nemo" / "arctangent" on port 3.
fn rfc_request() -> Vec<u8> {
    hex::decode(concat!(
        "010000380f403f9473978057bd83d5cb98f4227a",
        "01066e656d6f",
        "02120dbe708d93d413ce3196e43f782a0aee",
        "0406c0a80110",
        "050600000003"
    ))
    .expect("hex")
}

/// RFC 2865 §7.1: the server's Access-Accept (Service-Type, Login-Service, Login-IP-Host).
fn rfc_accept() -> Vec<u8> {
    hex::decode("0200002686fe220e7624ba2a1005f6bf9b55e0b2060600000001".to_owned() + "0f06000000000e06c0a80103").expect("hex")
}

#[test]
fn rfc2865_7_1_request_parses_and_the_password_is_revealed() {
    let raw = rfc_request();
    let p = Packet::parse(&raw).unwrap();
    assert_eq!(p.code, code::ACCESS_REQUEST);
    assert_eq!(p.identifier, 0);
    assert_eq!(p.attr(attr::USER_NAME), Some(&b"nemo"[..]));
    assert_eq!(p.attr(attr::NAS_IP_ADDRESS), Some(&[192u8, 168, 1, 16][..]));
    assert_eq!(p.attr(attr::NAS_PORT), Some(&[0u8, 0, 0, 3][..]));
    let pw = decrypt_user_password(p.attr(attr::USER_PASSWORD).unwrap(), SECRET, &p.authenticator).unwrap();
    assert_eq!(pw, b"arctangent");
    // Re-hiding with the same authenticator gives the RFC's octets.
    assert_eq!(encrypt_user_password(b"arctangent", SECRET, &p.authenticator).unwrap(), p.attr(attr::USER_PASSWORD).unwrap());
    // The 1997 example predates RFC 3579: it has no Message-Authenticator.
    assert_eq!(check_message_authenticator(&p, SECRET), MessageAuth::Missing);
}

#[test]
fn rfc2865_7_1_accept_has_the_rfc_response_authenticator() {
    let req = rfc_request();
    let p = Packet::parse(&req).unwrap();
    // The RFC's response carries no Message-Authenticator; its Response Authenticator verifies.
    assert!(verify_response(&rfc_accept(), &p.authenticator, SECRET, false));
    assert!(!verify_response(&rfc_accept(), &p.authenticator, SECRET, true));
    assert!(!verify_response(&rfc_accept(), &p.authenticator, b"other", false));
    let mut tampered = rfc_accept();
    tampered[25] ^= 1;
    assert!(!verify_response(&tampered, &p.authenticator, SECRET, false));
}

#[test]
fn responses_carry_the_message_authenticator_first_and_verify() {
    let req = rfc_request();
    let p = Packet::parse(&req).unwrap();
    let out = encode_response(
        code::ACCESS_CHALLENGE,
        p.identifier,
        &p.authenticator,
        &[(attr::STATE, b"abc"), (attr::REPLY_MESSAGE, b"Enter the passcode")],
        SECRET,
    )
    .unwrap();
    assert_eq!(out[0], code::ACCESS_CHALLENGE);
    assert_eq!(out[20], attr::MESSAGE_AUTHENTICATOR);
    assert_eq!(out[21], 18);
    assert!(verify_response(&out, &p.authenticator, SECRET, true));
    let r = Packet::parse(&out).unwrap();
    assert_eq!(r.attr(attr::STATE), Some(&b"abc"[..]));
    assert_eq!(r.attr(attr::REPLY_MESSAGE), Some(&b"Enter the passcode"[..]));
    // Tampering with the Message-Authenticator alone breaks it (the Response Authenticator too).
    let mut bad = out.clone();
    bad[25] ^= 0x80;
    assert!(!verify_response(&bad, &p.authenticator, SECRET, true));
    assert!(!verify_response(&out, &[0u8; 16], SECRET, true));
}

#[test]
fn requests_with_a_message_authenticator_verify_and_tampering_is_seen() {
    let auth = [0x42u8; 16];
    let hidden = encrypt_user_password(b"pw", SECRET, &auth).unwrap();
    let raw = encode_request(9, &auth, &[(attr::USER_NAME, b"alice"), (attr::USER_PASSWORD, &hidden)], SECRET).unwrap();
    let p = Packet::parse(&raw).unwrap();
    assert_eq!(check_message_authenticator(&p, SECRET), MessageAuth::Valid);
    assert_eq!(check_message_authenticator(&p, b"wrong secret"), MessageAuth::Invalid);
    for i in 0..raw.len() {
        if (2..4).contains(&i) {
            continue; // a changed length is a parse error, covered below
        }
        let mut t = raw.clone();
        t[i] ^= 0x01;
        if let Ok(q) = Packet::parse(&t) {
            assert_ne!(check_message_authenticator(&q, SECRET), MessageAuth::Valid, "flip at {i} went unnoticed");
        }
    }
    // Two Message-Authenticators: refused even if one is right.
    let mut twice = raw.clone();
    twice.extend_from_slice(&raw[20..38]);
    let len = twice.len() as u16;
    twice[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(check_message_authenticator(&Packet::parse(&twice).unwrap(), SECRET), MessageAuth::Invalid);
    // A Message-Authenticator of the wrong length.
    let short = encode_request_raw(&[(attr::MESSAGE_AUTHENTICATOR, &[0u8; 15])]);
    assert_eq!(check_message_authenticator(&Packet::parse(&short).unwrap(), SECRET), MessageAuth::Invalid);
}

/// An Access-Request with exactly these attributes (no Message-Authenticator added).
fn encode_request_raw(attrs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![1u8, 1, 0, 0];
    b.extend_from_slice(&[0u8; 16]);
    for (t, v) in attrs {
        b.push(*t);
        b.push(v.len() as u8 + 2);
        b.extend_from_slice(v);
    }
    let len = b.len() as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    b
}

#[test]
fn malformed_packets_are_refused_without_panicking() {
    let good = rfc_request();
    assert_eq!(Packet::parse(&good[..19]).err(), Some(Error::Truncated));
    assert_eq!(Packet::parse(&good[..40]).err(), Some(Error::Truncated)); // Length says 56
    let mut long_len = good.clone();
    long_len[2..4].copy_from_slice(&5000u16.to_be_bytes());
    assert_eq!(Packet::parse(&long_len).err(), Some(Error::BadLength));
    let mut short_len = good.clone();
    short_len[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(Packet::parse(&short_len).err(), Some(Error::BadLength));
    assert_eq!(Packet::parse(&vec![0u8; 4097]).err(), Some(Error::BadLength));
    // An attribute of length 1, and one running past the end.
    let mut zero_attr = good.clone();
    zero_attr[21] = 1;
    assert_eq!(Packet::parse(&zero_attr).err(), Some(Error::BadAttribute));
    let mut past = good.clone();
    past[51] = 200;
    assert_eq!(Packet::parse(&past).err(), Some(Error::BadAttribute));
    // Padding beyond Length is ignored (RFC 2865 §3).
    let mut padded = good.clone();
    padded.extend_from_slice(&[0xff; 10]);
    assert_eq!(Packet::parse(&padded).unwrap().raw().len(), 56);
    // Unknown attribute types are kept and skipped.
    let unknown = encode_request_raw(&[(250, b"vendor junk"), (attr::USER_NAME, b"bob")]);
    let p = Packet::parse(&unknown).unwrap();
    assert_eq!(p.attr(attr::USER_NAME), Some(&b"bob"[..]));
    assert_eq!(p.count(250), 1);
    // Every truncation of a valid packet is an error, never a panic.
    for n in 0..good.len() {
        assert!(Packet::parse(&good[..n]).is_err());
    }
}

#[test]
fn encoding_refuses_oversized_values() {
    let big = vec![b'x'; 254];
    assert_eq!(encode_response(code::ACCESS_ACCEPT, 1, &[0; 16], &[(attr::REPLY_MESSAGE, &big)], SECRET).err(), Some(Error::TooLong));
    assert_eq!(
        encode_response(code::ACCESS_ACCEPT, 1, &[0; 16], &[(attr::MESSAGE_AUTHENTICATOR, &[0u8; 16])], SECRET).err(),
        Some(Error::BadAttribute)
    );
    let many: Vec<(u8, &[u8])> = (0..20).map(|_| (attr::REPLY_MESSAGE, &big[..250])).collect();
    assert_eq!(encode_response(code::ACCESS_ACCEPT, 1, &[0; 16], &many, SECRET).err(), Some(Error::TooLong));
}

/// What the fuzz target does (`fuzz/fuzz_targets/radius_packet.rs`), on stable, over deterministic mutations of
/// valid packets: nothing panics, and whatever is encoded parses and verifies.
#[test]
fn mutated_packets_never_panic() {
    let auth = [3u8; 16];
    let hidden = encrypt_user_password(b"password123456", SECRET, &auth).unwrap();
    let seeds = [
        rfc_request(),
        rfc_accept(),
        encode_request(1, &auth, &[(attr::USER_NAME, b"alice"), (attr::USER_PASSWORD, &hidden), (attr::STATE, b"s")], SECRET).unwrap(),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..30_000 {
        let mut data = seeds[i % seeds.len()].clone();
        for _ in 0..(next() % 4 + 1) {
            match next() % 4 {
                0 if !data.is_empty() => {
                    let at = (next() as usize) % data.len();
                    data[at] = next() as u8;
                }
                1 => data.truncate((next() as usize) % (data.len() + 1)),
                2 => data.extend((0..next() % 40).map(|_| next() as u8)),
                _ if data.len() > 3 => {
                    let len = (next() % 80) as u16 + (data.len() as u16).saturating_sub(40);
                    data[2..4].copy_from_slice(&len.to_be_bytes());
                }
                _ => {}
            }
        }
        let Ok(p) = Packet::parse(&data) else { continue };
        let _ = check_message_authenticator(&p, SECRET);
        if let Some(pw) = p.attr(attr::USER_PASSWORD) {
            let _ = decrypt_user_password(pw, SECRET, &p.authenticator);
        }
        let attrs: Vec<(u8, &[u8])> = p.all_attrs().filter(|(_, v)| v.len() <= 253).take(8).collect();
        let own_ma = attrs.iter().any(|(t, _)| *t == attr::MESSAGE_AUTHENTICATOR);
        let encoded = encode_response(code::ACCESS_CHALLENGE, p.identifier, &p.authenticator, &attrs, SECRET);
        assert!(!own_ma || encoded == Err(Error::BadAttribute));
        if let Ok(out) = encoded {
            assert!(Packet::parse(&out).is_ok());
            assert!(verify_response(&out, &p.authenticator, SECRET, true));
        }
    }
}
