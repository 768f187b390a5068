//! Fuzz the SOAP 1.1 request envelope parser and the mapping of its parameters onto an operation
//! (what `POST /AuthServerWCFService/…svc` does with the body before the service sees it).
//!
//! Seeds: `fuzz/corpus/soap_envelope/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_server::soap::xml::parse_request(data);
    let headers = axum::http::HeaderMap::new();
    if let Ok((_op, params)) = tessera_server::soap::dispatch(&headers, data) {
        for name in ["username", "otp", "psn", "spAccountLoginName", "windowSize", "removeRelated"] {
            let _ = params.opt_str(name);
            let _ = params.opt_i64(name);
            let _ = params.opt_bool(name);
        }
    }
});
