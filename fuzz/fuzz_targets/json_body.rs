//! Fuzz the lenient JSON reader of the JSON endpoint (strict JSON, then trailing commas dropped)
//! and the typed reads of the resulting parameters (any scalar form, aliases).
//!
//! Seeds: `fuzz/corpus/json_body/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tessera_server::lenient::strip_trailing_commas(text);
    }
    let (_type, parsed) = tessera_server::json_api::parse(data);
    if let Ok(params) = parsed {
        for name in ["username", "otp", "psn", "windowSize", "timeDrift", "removeRelated", "deliveryMethod", "OtpType"] {
            let _ = params.opt_str(name);
            let _ = params.opt_i64(name);
            let _ = params.opt_i64_in(name, 1, 100);
            let _ = params.opt_bool(name);
        }
    }
});
