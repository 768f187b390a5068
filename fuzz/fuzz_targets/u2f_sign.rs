//! Fuzz signatureData parsing and assertion verification.
//!
//! Seeds: `fuzz/corpus/u2f_sign/` (raw, decoded signatureData).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_u2f::{check_user_presence, parse_sign_response, verify_signature};

/// User public key of the official FIDO authentication example.
const PUBLIC_KEY: [u8; 65] = [
    0x04, 0xd3, 0x68, 0xf1, 0xb6, 0x65, 0xba, 0xde, 0x3c, 0x33, 0xa2, 0x0f, 0x1e, 0x42, 0x9c, 0x77,
    0x50, 0xd5, 0x03, 0x36, 0x60, 0xc0, 0x19, 0x11, 0x9d, 0x29, 0xaa, 0x4b, 0xa7, 0xab, 0xc0, 0x4a,
    0xa7, 0xc8, 0x0a, 0x46, 0xbb, 0xe1, 0x1c, 0xa8, 0xcb, 0x56, 0x74, 0xd7, 0x4f, 0x31, 0xf8, 0xa9,
    0x03, 0xf6, 0xba, 0xd1, 0x05, 0xfb, 0x6a, 0xb7, 0x4a, 0xef, 0xef, 0x4d, 0xb8, 0xb0, 0x02, 0x5e,
    0x1d,
];
const APP_ID: &str = "https://gstatic.com/securitykey/a/example.com";
/// clientData of the official FIDO authentication example.
const CLIENT_DATA: &[u8] = br#"{"typ":"navigator.id.getAssertion","challenge":"opsXqUifDriAAmWclinfbS0e-USY0CgyJHe_Otd7z8o","cid_pubkey":{"kty":"EC","crv":"P-256","x":"HzQwlfXX7Q4S5MtCCnZUNBw3RMzPO9tOyWjBqRl4tJ8","y":"XVguGFLIZx1fXg3wNqfdbn75hi4-_7-BxhMljw42Ht4"},"origin":"http://example.com"}"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = parse_sign_response(data) {
        let _ = check_user_presence(&resp);
        let _ = verify_signature(&PUBLIC_KEY, APP_ID, CLIENT_DATA, &resp);
        // Also use the input's own bytes as a (usually invalid) key.
        let _ = verify_signature(data, APP_ID, data, &resp);
    }
});
