//! Fuzz `otpauth://` key URI parsing; a URI that parses must render to one that parses to the
//! same key.
//!
//! Seeds: `fuzz/corpus/otpauth_uri/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_otp::KeyUri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = KeyUri::parse(text) {
        let rendered = key.to_uri();
        let again = KeyUri::parse(&rendered).unwrap_or_else(|e| panic!("{rendered:?} does not parse back: {e:?}"));
        assert_eq!(again, key, "{rendered:?} parses to another key");
    }
});
