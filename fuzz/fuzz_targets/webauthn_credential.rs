//! Fuzz the WebAuthn credential parsing: RegistrationResponseJSON / AuthenticationResponseJSON
//! (JSON text), attestation objects (CBOR), authenticator data, COSE keys and clientDataJSON, and
//! the verification paths behind them. Nothing may panic or hang.
//!
//! Seeds: `fuzz/corpus/webauthn_credential/` (credential JSON and raw attestation objects).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_u2f::webauthn::*;

fuzz_target!(|data: &[u8]| {
    // Raw binary forms.
    let _ = check_registration_structure(data);
    let _ = verify_registration(data, b"{}", b"id", &rp_id_hash("localhost"));
    let _ = parse_authenticator_data(data);
    let _ = check_client_data(data, TYPE_CREATE, "challenge");
    if let Ok(key) = PublicKey::from_stored(data) {
        let _ = key.verify(b"message", data);
    }
    // The JSON forms as the API receives them.
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(r) = parse_registration_response(&json) {
            let _ = check_client_data(&r.client_data_json, TYPE_CREATE, "challenge");
            let _ = verify_registration(&r.attestation_object, &r.client_data_json, &r.credential_id, &rp_id_hash("localhost"));
        }
        if let Ok(a) = parse_authentication_response(&json) {
            if let Ok(ad) = parse_authenticator_data(&a.authenticator_data) {
                let _ = ad.user_verified();
            }
        }
    }
});
