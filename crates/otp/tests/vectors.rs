//! Published test vectors: RFC 4226 Appendix D (HOTP, SHA-1) and RFC 6238
//! Appendix B (TOTP, SHA-1/SHA-256/SHA-512), read from `tests/data/*.json`.

use serde_json::Value;
use tessera_otp::{base32_decode, base32_encode, find_counter, find_step, hotp, hotp_code, totp_code, totp_step, Algorithm};

const HOTP_JSON: &str = include_str!("data/rfc4226_hotp.json");
const TOTP_JSON: &str = include_str!("data/rfc6238_totp.json");

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("vector file is valid JSON")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("missing string field {key}"))
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("missing integer field {key}"))
}

fn u32_field(v: &Value, key: &str) -> u32 {
    u32::try_from(u64_field(v, key)).expect("fits in u32")
}

fn alg(name: &str) -> Algorithm {
    Algorithm::parse(name).unwrap_or_else(|| panic!("unknown algorithm {name}"))
}

#[test]
fn rfc4226_hotp_vectors() {
    let doc = json(HOTP_JSON);
    let secret = hex::decode(str_field(&doc, "secret_hex")).expect("hex secret");
    assert_eq!(secret, str_field(&doc, "secret_ascii").as_bytes());
    assert_eq!(base32_decode(str_field(&doc, "secret_base32")).as_deref(), Some(secret.as_slice()));
    assert_eq!(base32_encode(&secret), str_field(&doc, "secret_base32"));
    let digits = u32_field(&doc, "digits");
    let algorithm = alg(str_field(&doc, "algorithm"));
    let values = doc["values"].as_array().expect("values array");
    assert_eq!(values.len(), 10);
    let max_counter = values.iter().map(|v| u64_field(v, "counter")).max().unwrap_or(0);
    for v in values {
        let counter = u64_field(v, "counter");
        let otp = str_field(v, "otp");
        assert_eq!(hotp_code(&secret, counter, digits, algorithm), otp, "counter {counter}");
        let number: u32 = otp.parse().expect("numeric otp");
        assert_eq!(hotp(&secret, counter, digits, algorithm), number);
        // Exact window hit.
        assert_eq!(find_counter(&secret, algorithm, digits, otp, counter, 0), Some(counter));
        // Found from the start of a window covering all vectors.
        assert_eq!(find_counter(&secret, algorithm, digits, otp, 0, max_counter), Some(counter));
        // Not found once the window has moved past it.
        assert_eq!(find_counter(&secret, algorithm, digits, otp, counter + 1, 20), None);
    }
}

/// RFC 4226 Appendix D "Truncated" table: the full 31-bit decimal values,
/// which is what a 10-digit HOTP yields.
#[test]
fn rfc4226_truncated_values_as_ten_digits() {
    let secret = b"12345678901234567890";
    let truncated: [u32; 10] = [
        1_284_755_224,
        1_094_287_082,
        137_359_152,
        1_726_969_429,
        1_640_338_314,
        868_254_676,
        1_918_287_922,
        82_162_583,
        673_399_871,
        645_520_489,
    ];
    for (counter, &value) in (0u64..).zip(truncated.iter()) {
        assert_eq!(hotp(secret, counter, 10, Algorithm::Sha1), value);
        assert_eq!(hotp_code(secret, counter, 10, Algorithm::Sha1), format!("{value:010}"));
        assert_eq!(hotp(secret, counter, 8, Algorithm::Sha1), value % 100_000_000);
        assert_eq!(hotp(secret, counter, 7, Algorithm::Sha1), value % 10_000_000);
        assert_eq!(hotp(secret, counter, 9, Algorithm::Sha1), value % 1_000_000_000);
    }
}

#[test]
fn rfc6238_totp_vectors_all_algorithms() {
    let doc = json(TOTP_JSON);
    let step = u64_field(&doc, "step_seconds");
    let t0 = u64_field(&doc, "t0");
    let digits = u32_field(&doc, "digits");
    assert_eq!(t0, 0, "totp_code assumes T0 = 0");
    let values = doc["values"].as_array().expect("values array");
    assert_eq!(values.len(), 18);
    let mut seen = [0usize; 3];
    for v in values {
        let algorithm = alg(str_field(v, "algorithm"));
        let seed = hex::decode(str_field(&doc["seeds_hex"], algorithm.as_str())).expect("seed hex");
        let time = u64_field(v, "unix_time");
        let otp = str_field(v, "otp");
        let ctx = format!("{} t={time}", algorithm.as_str());

        assert_eq!(totp_code(&seed, time, step, digits, algorithm), otp, "{ctx}");
        let counter = totp_step(time, step, t0);
        assert_eq!(hotp_code(&seed, counter, digits, algorithm), otp, "{ctx}");
        let number: u32 = otp.parse().expect("numeric otp");
        assert_eq!(hotp(&seed, counter, digits, algorithm), number, "{ctx}");

        // Verification: exact, and from one step either side.
        assert_eq!(find_step(&seed, algorithm, digits, otp, counter, 0, 0), Some(counter), "{ctx}");
        assert_eq!(find_step(&seed, algorithm, digits, otp, counter + 1, 1, 0), Some(counter), "{ctx}");
        assert_eq!(find_step(&seed, algorithm, digits, otp, counter - 1, 0, 1), Some(counter), "{ctx}");
        assert_eq!(find_counter(&seed, algorithm, digits, otp, counter.saturating_sub(5), 5), Some(counter), "{ctx}");
        // Wrong algorithm with the same seed does not verify.
        for other in Algorithm::ALL.into_iter().filter(|&a| a != algorithm) {
            assert_eq!(find_step(&seed, other, digits, otp, counter, 1, 1), None, "{ctx} vs {}", other.as_str());
        }
        seen[Algorithm::ALL.iter().position(|&a| a == algorithm).expect("known")] += 1;
    }
    assert_eq!(seen, [6, 6, 6]);
}

#[test]
fn totp_step_boundaries() {
    assert_eq!(totp_step(0, 30, 0), 0);
    assert_eq!(totp_step(29, 30, 0), 0);
    assert_eq!(totp_step(30, 30, 0), 1);
    assert_eq!(totp_step(59, 30, 0), 1);
    assert_eq!(totp_step(1_111_111_109, 30, 0), 0x23523EC);
    assert_eq!(totp_step(20_000_000_000, 30, 0), 0x27BC86AA);
    assert_eq!(totp_step(100, 30, 40), 2);
    assert_eq!(totp_step(39, 30, 40), 0);
    assert_eq!(totp_step(100, 0, 0), 100, "step 0 is treated as 1");
}
