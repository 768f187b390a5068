//! Fuzz the PSKC (RFC 6030) token import: plain and pre-shared-key containers.
//!
//! Seeds: `fuzz/corpus/import_pskc/` (the RFC examples and the test containers).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The pre-shared key of RFC 6030 figure 5.
const RFC_PSK: [u8; 16] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12];

fuzz_target!(|data: &[u8]| {
    let _ = tessera_core::import::parse_pskc(data, None);
    let _ = tessera_core::import::parse_pskc(data, Some(&RFC_PSK));
    let _ = tessera_core::import::parse(data, None, Some(&RFC_PSK));
});
