//! A cheap, deterministic "never panics" sweep (no proptest): pseudo-random
//! secrets, counters, digit counts, codes, windows, Base32 strings and
//! mutated `otpauth://` URIs are fed to every public function.

use tessera_otp::{
    base32_decode, base32_encode, find_counter, find_step, hotp, hotp_code, totp_code, totp_step, Algorithm, KeyUri, OtpKind,
};

/// xorshift64*: deterministic, good enough to spread inputs around.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// Interesting u64: edges and random values.
    fn u64(&mut self) -> u64 {
        let edges = [0, 1, 2, 29, 30, 59, u64::MAX, u64::MAX - 1, u64::MAX / 2, 1 << 32];
        if self.below(3) == 0 {
            self.pick(&edges)
        } else {
            self.next() >> self.below(64)
        }
    }
    fn digits(&mut self) -> u32 {
        self.pick(&[0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 31, 32, u32::MAX])
    }
    fn text(&mut self, alphabet: &[char], max_len: u64) -> String {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.pick(alphabet)).collect()
    }
}

const CODE_CHARS: &[char] = &['0', '1', '5', '9', ' ', 'a', '+', '-', '\0', '٣', '５', 'é'];
const URI_CHARS: &[char] = &['a', 'Z', '2', '7', '=', '%', 'F', '0', ':', '/', '?', '&', '#', '+', ' ', 'é', '日', '\u{0}'];
const B32_CHARS: &[char] = &['A', 'z', '2', '7', '1', '8', '0', '=', ' ', '\t', '-', 'é', '%'];

#[test]
fn otp_functions_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3_000 {
        let secret = rng.bytes(200);
        let alg = rng.pick(&Algorithm::ALL);
        let digits = rng.digits();
        let counter = rng.u64();

        let value = hotp(&secret, counter, digits, alg);
        let code = hotp_code(&secret, counter, digits, alg);
        let clamped = digits.clamp(6, 10);
        assert_eq!(code.len(), clamped as usize);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(code.parse::<u64>().ok(), Some(u64::from(value)));
        assert!(u64::from(value) < 10u64.pow(clamped));

        let step = rng.u64();
        let t = rng.u64();
        let _ = totp_step(t, step, rng.u64());
        assert_eq!(totp_code(&secret, t, step, digits, alg).len(), clamped as usize);

        // Small windows anywhere, huge windows only where clamping bounds them.
        let window = rng.below(8);
        let from = rng.u64();
        let submitted = if rng.below(2) == 0 { code.clone() } else { rng.text(CODE_CHARS, 12) };
        let found = find_counter(&secret, alg, digits, &submitted, from, window);
        if let Some(c) = found {
            assert!(c >= from && c <= from.saturating_add(window));
            assert_eq!(hotp_code(&secret, c, digits, alg), submitted);
        }
        let _ = find_counter(&secret, alg, digits, &submitted, u64::MAX - rng.below(4), u64::MAX);

        let center = rng.u64();
        let (behind, ahead) = (rng.below(4), rng.below(4));
        if let Some(s) = find_step(&secret, alg, digits, &submitted, center, behind, ahead) {
            assert!(s >= center.saturating_sub(behind) && s <= center.saturating_add(ahead));
            assert_eq!(hotp_code(&secret, s, digits, alg), submitted);
        }
        let _ = find_step(&secret, alg, digits, &submitted, rng.below(3), u64::MAX, rng.below(3));
        let _ = find_step(&secret, alg, digits, &submitted, u64::MAX - rng.below(3), rng.below(3), u64::MAX);
    }
}

#[test]
fn base32_never_panics_and_round_trips() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let bytes = rng.bytes(80);
        assert_eq!(base32_decode(&base32_encode(&bytes)), Some(bytes));
        let s = rng.text(B32_CHARS, 40);
        if let Some(decoded) = base32_decode(&s) {
            // Whatever decodes re-encodes to something decoding the same way.
            assert_eq!(base32_decode(&base32_encode(&decoded)), Some(decoded));
        }
        let raw = String::from_utf8_lossy(&rng.bytes(40)).into_owned();
        let _ = base32_decode(&raw);
    }
}

#[test]
fn uri_parse_never_panics() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let seeds = [
        "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        "otpauth://hotp/ACME%20Co:john?secret=GEZDGNBVGY3TQOJQ&algorithm=SHA256&digits=8&counter=7",
        "otpauth://totp/%E6%97%A5:x?secret=MZXW6===&period=60",
    ];
    for _ in 0..20_000 {
        let mut s: Vec<char> = rng.pick(&seeds).chars().collect();
        for _ in 0..=rng.below(4) {
            let at = rng.below(s.len() as u64 + 1) as usize;
            match rng.below(3) {
                0 => s.insert(at, rng.pick(URI_CHARS)),
                1 if at < s.len() => {
                    s.remove(at);
                }
                _ => s.truncate(at),
            }
        }
        let uri: String = s.into_iter().collect();
        if let Ok(k) = KeyUri::parse(&uri) {
            // Anything accepted is well-formed and survives a round trip.
            assert!(!k.account.is_empty() && !k.secret.is_empty());
            assert!((6..=10).contains(&k.digits));
            if let OtpKind::Totp { period } = k.kind {
                assert!(period > 0);
            }
            assert_eq!(KeyUri::parse(&k.to_uri()), Ok(k.clone()), "{uri}");
            let _ = format!("{k:?}");
        }
        let raw = String::from_utf8_lossy(&rng.bytes(60)).into_owned();
        let _ = KeyUri::parse(&raw);
        let _ = KeyUri::parse(&format!("otpauth://totp/{raw}"));
    }
}
