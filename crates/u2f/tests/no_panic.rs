//! Property tests: nothing panics on arbitrary or mutated input.

mod common;

use proptest::prelude::*;
use tessera_u2f::*;

fn mutate(base: &[u8], edits: &[(usize, u8)], cut: Option<usize>, extra: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for &(pos, val) in edits {
        if !m.is_empty() {
            let i = pos % m.len();
            m[i] ^= val;
        }
    }
    if let Some(cut) = cut {
        m.truncate(cut % (m.len() + 1));
    }
    m.extend_from_slice(extra);
    m
}

fn origins() -> Vec<String> {
    vec!["http://example.com".to_owned()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_registration(&data);
        let _ = parse_sign_response(&data);
        let _ = check_client_data(&data, TYP_SIGN, "c", &origins());
        let _ = b64_decode(&String::from_utf8_lossy(&data));
    }

    #[test]
    fn registration_prefixed_random_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..400), kh_len in any::<u8>()) {
        let v = common::registration();
        let mut data = v.registration_data[..66].to_vec();
        data.push(kh_len);
        data.extend_from_slice(&tail);
        let _ = parse_registration(&data);
    }

    #[test]
    fn mutated_registration_never_panics(
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in proptest::option::of(any::<usize>()),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let v = common::registration();
        let m = mutate(&v.registration_data, &edits, cut, &extra);
        if let Ok(reg) = parse_registration(&m) {
            // Verification of whatever parsed must not panic either.
            let _ = verify_registration(&reg, &v.app_id, &v.client_data);
            let _ = reg.attestation_cert_fixed();
        }
    }

    #[test]
    fn mutated_sign_response_never_panics(
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in proptest::option::of(any::<usize>()),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let v = common::authentication();
        let m = mutate(&v.signature_data, &edits, cut, &extra);
        if let Ok(resp) = parse_sign_response(&m) {
            let _ = verify_signature(&v.public_key, &v.app_id, &v.client_data, &resp);
        }
    }

    #[test]
    fn mutated_client_data_never_panics(
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in proptest::option::of(any::<usize>()),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let v = common::authentication();
        let m = mutate(&v.client_data, &edits, cut, &extra);
        let _ = check_client_data(&m, TYP_SIGN, &v.challenge, &origins());
        let _ = b64_decode(&String::from_utf8_lossy(&m));
    }

    #[test]
    fn b64_roundtrips(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(b64_decode(&b64_encode(&data)), Ok(data));
    }

    #[test]
    fn b64_random_strings_never_panic(s in "[A-Za-z0-9+/_=\\- \t\n-]{0,64}") {
        let _ = b64_decode(&s);
    }

    #[test]
    fn app_id_origin_never_panics(s in "\\PC{0,64}", tail in "[a-z0-9:/\\[\\]@.?#]{0,24}") {
        let _ = app_id_origin(&s);
        let _ = app_id_origin(&format!("https://{tail}"));
    }

    #[test]
    fn check_client_data_rejects_any_other_challenge(c in "[A-Za-z0-9_-]{0,50}") {
        let v = common::authentication();
        let res = check_client_data(&v.client_data, TYP_SIGN, &c, &origins());
        if c == v.challenge {
            prop_assert!(res.is_ok());
        } else {
            prop_assert_eq!(res, Err(U2fError::ChallengeMismatch));
        }
    }
}
