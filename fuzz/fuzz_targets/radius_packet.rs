//! Fuzz RADIUS packet parsing, the Message-Authenticator check, User-Password revealing and
//! response encoding.
//!
//! Seeds: `fuzz/corpus/radius_packet/` (raw datagrams).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_radius::{attr, check_message_authenticator, code, decrypt_user_password, encode_response, verify_response, Packet};

const SECRET: &[u8] = b"xyzzy5461";

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::parse(data) else { return };
    let _ = check_message_authenticator(&p, SECRET);
    if let Some(pw) = p.attr(attr::USER_PASSWORD) {
        let _ = decrypt_user_password(pw, SECRET, &p.authenticator);
    }
    let attrs: Vec<(u8, &[u8])> = p.all_attrs().filter(|(_, v)| v.len() <= 253).take(8).collect();
    if let Ok(out) = encode_response(code::ACCESS_CHALLENGE, p.identifier, &p.authenticator, &attrs, SECRET) {
        // What we encode must parse and verify.
        assert!(Packet::parse(&out).is_ok());
        assert!(verify_response(&out, &p.authenticator, SECRET, true));
    }
});
