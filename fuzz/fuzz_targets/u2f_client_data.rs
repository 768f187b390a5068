//! Fuzz clientData checks, base64 decoding and appId origin extraction.
//!
//! Seeds: `fuzz/corpus/u2f_client_data/` (clientData JSON bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_u2f::{app_id_origin, b64_decode, check_client_data, TYP_REGISTER, TYP_SIGN};

fuzz_target!(|data: &[u8]| {
    let allowed = [
        "http://example.com".to_owned(),
        "https://example.com/".to_owned(),
    ];
    for typ in [TYP_REGISTER, TYP_SIGN] {
        let _ = check_client_data(
            data,
            typ,
            "opsXqUifDriAAmWclinfbS0e-USY0CgyJHe_Otd7z8o",
            &allowed,
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = app_id_origin(text);
        if let Ok(decoded) = b64_decode(text) {
            let _ = check_client_data(&decoded, TYP_SIGN, "", &allowed);
        }
    }
});
