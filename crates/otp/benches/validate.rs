//! Plain single-threaded throughput benchmark (no criterion): `cargo bench -p tessera-otp`.
//!
//! For each algorithm it measures
//! * `hotp_code`: generating one code (includes HMAC keying),
//! * `find_counter` with `window = 10` where the submitted code matches at
//!   offset 0 (the common HOTP case), and with no match (the full window of
//!   11 candidates is scanned: the cost of a wrong code),
//! * `find_step` with one step behind and ahead, matching the center (the
//!   common TOTP case) and not matching (3 candidates).
//!
//! Each measurement runs for about `TESSERA_BENCH_MS` milliseconds (default
//! 1000) after a short warm-up and prints operations per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tessera_otp::{find_counter, find_step, hotp_code, Algorithm};

/// Runs `op` repeatedly for about `budget` and returns operations per second.
fn rate(budget: Duration, mut op: impl FnMut(u64)) -> f64 {
    // Warm-up, then calibrate a batch size so clock reads are negligible.
    let mut i: u64 = 0;
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        op(i);
        i += 1;
    }
    let batch = (i / 100).max(1);
    let start = Instant::now();
    let mut done: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..batch {
            op(i);
            i += 1;
        }
        done += batch;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and
    // only needs this to run quickly.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let ms = std::env::var("TESSERA_BENCH_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench_mode { 1000 } else { 10 });
    let budget = Duration::from_millis(ms);

    // 20-byte (160-bit) secret, as RFC 4226 recommends; base time step ~ 2025.
    let secret = b"12345678901234567890";
    let digits = 6;
    let base_step: u64 = 58_000_000;
    // Pre-generate the codes to submit so that only validation is measured.
    const N: u64 = 1024;

    for alg in Algorithm::ALL {
        let name = alg.as_str();

        let r = rate(budget, |i| {
            black_box(hotp_code(black_box(secret), i, digits, alg));
        });
        println!("hotp_code {name}: {r:.0} codes/s");

        let codes: Vec<String> = (0..N).map(|i| hotp_code(secret, base_step + i, digits, alg)).collect();
        let code = |i: u64| codes[(i % N) as usize].as_str();

        let r = rate(budget, |i| {
            let c = base_step + i % N;
            let found = find_counter(secret, alg, digits, black_box(code(i)), c, 10);
            assert_eq!(found, Some(c));
        });
        println!("find_counter {name} window=10: {r:.0} validations/s");

        let r = rate(budget, |i| {
            // Start the window just after the code's counter: never matches
            // (barring a 1-in-10^6 collision), all 11 candidates tried.
            let c = base_step + i % N;
            black_box(find_counter(secret, alg, digits, black_box(code(i)), c + 1, 10));
        });
        println!("find_counter {name} window=10 (no match): {r:.0} validations/s");

        let r = rate(budget, |i| {
            let c = base_step + i % N;
            let found = find_step(secret, alg, digits, black_box(code(i)), c, 1, 1);
            assert_eq!(found, Some(c));
        });
        println!("find_step {name} +-1: {r:.0} validations/s");

        let r = rate(budget, |i| {
            let c = base_step + i % N;
            black_box(find_step(secret, alg, digits, black_box(code(i)), c + 5, 1, 1));
        });
        println!("find_step {name} +-1 (no match): {r:.0} validations/s");
    }
}
