//! Verification edge cases for `find_counter` (HOTP) and `find_step` (TOTP):
//! window bounds, search order, clamping at the ends of the counter space and
//! rejection of malformed codes.

use tessera_otp::{find_counter, find_step, hotp_code, Algorithm};

const SECRET: &[u8] = b"12345678901234567890";

fn code(counter: u64) -> String {
    hotp_code(SECRET, counter, 6, Algorithm::Sha1)
}

#[test]
fn find_counter_window_edges() {
    for alg in Algorithm::ALL {
        for digits in [6, 8] {
            let at = |c: u64| hotp_code(SECRET, c, digits, alg);
            let fc = |code: &str| find_counter(SECRET, alg, digits, code, 100, 10);
            assert_eq!(fc(&at(100)), Some(100), "{alg} first");
            assert_eq!(fc(&at(105)), Some(105), "{alg} middle");
            assert_eq!(fc(&at(110)), Some(110), "{alg} last inside");
            assert_eq!(fc(&at(111)), None, "{alg} just after");
            assert_eq!(fc(&at(99)), None, "{alg} just before");
        }
    }
    // window 0 is exactly one counter.
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &code(7), 7, 0), Some(7));
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &code(8), 7, 0), None);
}

#[test]
fn find_counter_returns_first_match() {
    // code(153567) == code(153569) == "468457" (found by exhaustive search).
    assert_eq!(code(153_567), code(153_569));
    let c = code(153_567);
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &c, 153_560, 20), Some(153_567));
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &c, 153_568, 20), Some(153_569));
}

#[test]
fn find_counter_saturates_at_u64_max() {
    let top = u64::MAX;
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &code(top), top - 1, 10), Some(top));
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &code(top), top - 3, u64::MAX), Some(top));
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &code(top), top, 0), Some(top));
}

#[test]
fn find_step_window_edges() {
    for alg in Algorithm::ALL {
        let at = |s: u64| hotp_code(SECRET, s, 8, alg);
        let fs = |code: &str| find_step(SECRET, alg, 8, code, 1_000, 2, 1);
        assert_eq!(fs(&at(1_000)), Some(1_000), "{alg} center");
        assert_eq!(fs(&at(999)), Some(999), "{alg} behind 1");
        assert_eq!(fs(&at(998)), Some(998), "{alg} behind 2 (edge)");
        assert_eq!(fs(&at(997)), None, "{alg} behind 3 (outside)");
        assert_eq!(fs(&at(1_001)), Some(1_001), "{alg} ahead 1 (edge)");
        assert_eq!(fs(&at(1_002)), None, "{alg} ahead 2 (outside)");
    }
    // Zero-width window: only the center.
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(50), 50, 0, 0), Some(50));
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(49), 50, 0, 0), None);
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(51), 50, 0, 0), None);
}

#[test]
fn find_step_nearest_first_order() {
    let fs = |c: &str, center| find_step(SECRET, Algorithm::Sha1, 6, c, center, 2, 2);
    // code(910737) == code(910738): the center wins.
    assert_eq!(code(910_737), code(910_738));
    assert_eq!(fs(&code(910_738), 910_738), Some(910_738));
    // code(153567) == code(153569): center - 1 is tried before center + 1.
    assert_eq!(code(153_567), code(153_569));
    assert_eq!(fs(&code(153_567), 153_568), Some(153_567));
    // code(103424) == code(103427): center + 1 is tried before center - 2.
    assert_eq!(code(103_424), code(103_427));
    assert_eq!(fs(&code(103_424), 103_426), Some(103_427));
    // ... but only inside the window.
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(103_424), 103_426, 2, 0), Some(103_424));
}

#[test]
fn find_step_clamps_at_both_ends() {
    // Window below zero is clamped.
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(0), 1, 5, 0), Some(0));
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(0), 0, 5, 0), Some(0));
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(3), 0, u64::MAX, 3), Some(3));
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(4), 0, u64::MAX, 3), None);
    // Window above u64::MAX is clamped.
    let top = u64::MAX;
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(top), top - 1, 0, u64::MAX), Some(top));
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(top - 3), top, 3, u64::MAX), Some(top - 3));
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &code(top - 4), top, 3, u64::MAX), None);
}

/// Strings that must never verify, for a window where `good` would.
fn malformed(good: &str) -> Vec<String> {
    let mut v = vec![
        String::new(),
        format!(" {good}"),
        format!("{good} "),
        format!("{good}\n"),
        format!("\t{good}"),
        format!("{good}0"),
        format!("0{good}"),
        good[1..].to_string(),
        good[..good.len() - 1].to_string(),
        format!("+{}", &good[1..]),
        format!("-{}", &good[1..]),
        format!("{}a", &good[..good.len() - 1]),
        format!("{} {}", &good[..3], &good[3..]),
        format!("{}-{}", &good[..3], &good[3..]),
        // Full-width digits have the right char count but are not ASCII.
        good.chars().map(|c| char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap_or('x')).collect(),
        format!("{}\0", &good[..good.len() - 1]),
    ];
    // Same length, one byte replaced by a non-digit.
    for (i, repl) in [(0, 'O'), (2, '/'), (good.len() - 1, ':')] {
        let mut s: Vec<char> = good.chars().collect();
        s[i] = repl;
        v.push(s.into_iter().collect());
    }
    v
}

#[test]
fn malformed_codes_never_match() {
    for digits in [6u32, 8] {
        for alg in Algorithm::ALL {
            let good = hotp_code(SECRET, 42, digits, alg);
            assert_eq!(find_counter(SECRET, alg, digits, &good, 40, 5), Some(42));
            assert_eq!(find_step(SECRET, alg, digits, &good, 42, 1, 1), Some(42));
            for bad in malformed(&good) {
                assert_eq!(find_counter(SECRET, alg, digits, &bad, 40, 5), None, "{bad:?}");
                assert_eq!(find_step(SECRET, alg, digits, &bad, 42, 1, 1), None, "{bad:?}");
            }
        }
    }
}

#[test]
fn codes_of_another_length_never_match() {
    let six = hotp_code(SECRET, 5, 6, Algorithm::Sha1);
    let eight = hotp_code(SECRET, 5, 8, Algorithm::Sha1);
    assert!(eight.ends_with(&six));
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 8, &six, 0, 10), None);
    assert_eq!(find_counter(SECRET, Algorithm::Sha1, 6, &eight, 0, 10), None);
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 8, &six, 5, 1, 1), None);
    assert_eq!(find_step(SECRET, Algorithm::Sha1, 6, &eight, 5, 1, 1), None);
}

#[test]
fn out_of_range_digits_fail_closed() {
    // hotp_code clamps (5 -> 6) but verification with an invalid `digits`
    // never accepts anything, whatever the code.
    let six = hotp_code(SECRET, 1, 6, Algorithm::Sha1);
    let ten = hotp_code(SECRET, 1, 10, Algorithm::Sha1);
    for digits in [0u32, 1, 5, 11, 12, u32::MAX] {
        for c in [&six, &ten, &six[1..], &six[..5], &format!("{ten}0")] {
            assert_eq!(find_counter(SECRET, Algorithm::Sha1, digits, c, 0, 5), None);
            assert_eq!(find_step(SECRET, Algorithm::Sha1, digits, c, 1, 1, 1), None);
        }
    }
    // 7, 9 and 10 digits are valid.
    for digits in [7u32, 9, 10] {
        let c = hotp_code(SECRET, 3, digits, Algorithm::Sha256);
        assert_eq!(c.len(), digits as usize);
        assert_eq!(find_counter(SECRET, Algorithm::Sha256, digits, &c, 0, 5), Some(3));
        assert_eq!(find_step(SECRET, Algorithm::Sha256, digits, &c, 3, 0, 0), Some(3));
    }
}

#[test]
fn other_secrets_and_long_keys() {
    // Empty and very long (hashed) keys work and differ.
    let long = vec![0xA5u8; 1000];
    for alg in Algorithm::ALL {
        for secret in [&b""[..], &long[..]] {
            let c = hotp_code(secret, 9, 6, alg);
            assert_eq!(c.len(), 6);
            assert_eq!(find_counter(secret, alg, 6, &c, 9, 0), Some(9));
        }
        assert_ne!(
            (0..5).map(|n| hotp_code(&long, n, 8, alg)).collect::<Vec<_>>(),
            (0..5).map(|n| hotp_code(b"", n, 8, alg)).collect::<Vec<_>>()
        );
    }
}
