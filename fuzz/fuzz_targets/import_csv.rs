//! Fuzz the CSV token import (`psn,seed,...` lines).
//!
//! Seeds: `fuzz/corpus/import_csv/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_core::import::parse_csv(data);
});
