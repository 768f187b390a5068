//! Fuzz registrationData parsing and attestation verification.
//!
//! Seeds: `fuzz/corpus/u2f_registration/` (raw, decoded registrationData).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_u2f::{b64_decode, parse_registration, verify_registration};

/// clientData of the official FIDO registration example.
const CLIENT_DATA: &[u8] = br#"{"typ":"navigator.id.finishEnrollment","challenge":"vqrS6WXDe1JUs5_c3i4-LkKIHRr-3XVb3azuA5TifHo","cid_pubkey":{"kty":"EC","crv":"P-256","x":"HzQwlfXX7Q4S5MtCCnZUNBw3RMzPO9tOyWjBqRl4tJ8","y":"XVguGFLIZx1fXg3wNqfdbn75hi4-_7-BxhMljw42Ht4"},"origin":"http://example.com"}"#;

fn exercise(data: &[u8]) {
    if let Ok(reg) = parse_registration(data) {
        let _ = verify_registration(&reg, "http://example.com", CLIENT_DATA);
        let _ = reg.attestation_cert_fixed();
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    // The same bytes as they would arrive on the wire (base64 text).
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(decoded) = b64_decode(text) {
            exercise(&decoded);
        }
    }
});
