//! HOTP (RFC 4226) and TOTP (RFC 6238) generation and constant-time
//! verification.
//!
//! The HMAC key is processed once per call (the ipad/opad states are cached
//! in the keyed [`Hmac`] value) and cloned for every counter that is tried,
//! so a verification window of `n` candidates costs `n` cheap HMAC
//! finalisations rather than `n` full key setups. Candidate codes are
//! rendered into a stack buffer: verification does not allocate.

use hmac::digest::block_buffer::Eager;
use hmac::digest::core_api::{BlockSizeUser, BufferKindUser, CoreProxy, FixedOutputCore, UpdateCore};
use hmac::digest::typenum::{IsLess, Le, NonZero, U256};
use hmac::digest::{Digest, HashMarker};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::Algorithm;

/// Smallest supported code length (RFC 4226 §5.3 requires at least 6).
pub const MIN_DIGITS: u32 = 6;
/// Largest supported code length: a dynamically truncated value has 31 bits,
/// so more than 10 decimal digits would only add leading zeros.
pub const MAX_DIGITS: u32 = 10;

/// `10^digits` for `digits` in `0..=MAX_DIGITS`.
const POW10: [u64; 11] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000, 10_000_000_000];

/// A rendered code: ASCII digits in `buf[..len]`.
struct CodeBuf {
    buf: [u8; MAX_DIGITS as usize],
    len: usize,
}

impl CodeBuf {
    /// Renders `value` zero-padded to `digits` (already in range) digits.
    fn render(mut value: u32, digits: u32) -> CodeBuf {
        let mut buf = [b'0'; MAX_DIGITS as usize];
        let len = usize::try_from(digits).map_or(0, |d| d.min(buf.len()));
        for slot in buf.iter_mut().take(len).rev() {
            // `value % 10` is < 10, so the cast cannot truncate.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        CodeBuf { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// Builds the HMAC key block exactly as RFC 2104 does (keys longer than the
/// hash block are hashed first, then zero-padded), so that the infallible
/// [`Mac::new`] can be used: there is no `Result` to handle and no key length
/// that could make construction fail.
fn keyed<D>(secret: &[u8]) -> Hmac<D>
where
    D: CoreProxy + Digest + BlockSizeUser<BlockSize = <D::Core as BlockSizeUser>::BlockSize>,
    D::Core: HashMarker + UpdateCore + FixedOutputCore + BufferKindUser<BufferKind = Eager> + Default + Clone,
    <D::Core as BlockSizeUser>::BlockSize: IsLess<U256>,
    Le<<D::Core as BlockSizeUser>::BlockSize, U256>: NonZero,
{
    let mut block = hmac::digest::Key::<Hmac<D>>::default();
    if secret.len() > block.len() {
        let hashed = D::digest(secret);
        for (dst, src) in block.iter_mut().zip(hashed.iter()) {
            *dst = *src;
        }
    } else {
        for (dst, src) in block.iter_mut().zip(secret.iter()) {
            *dst = *src;
        }
    }
    <Hmac<D> as Mac>::new(&block)
}

/// An HMAC instance keyed with the shared secret, for one algorithm.
#[derive(Clone)]
enum Keyed {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Keyed {
    fn new(secret: &[u8], alg: Algorithm) -> Keyed {
        match alg {
            Algorithm::Sha1 => Keyed::Sha1(keyed::<Sha1>(secret)),
            Algorithm::Sha256 => Keyed::Sha256(keyed::<Sha256>(secret)),
            Algorithm::Sha512 => Keyed::Sha512(keyed::<Sha512>(secret)),
        }
    }

    /// RFC 4226 §5.3 dynamic truncation of HMAC(secret, counter): a 31-bit
    /// value.
    fn truncated(&self, counter: u64) -> u32 {
        fn run<M: Mac + Clone>(mac: &M, counter: u64) -> u32 {
            let mut mac = mac.clone();
            mac.update(&counter.to_be_bytes());
            dynamic_truncate(&mac.finalize().into_bytes())
        }
        match self {
            Keyed::Sha1(m) => run(m, counter),
            Keyed::Sha256(m) => run(m, counter),
            Keyed::Sha512(m) => run(m, counter),
        }
    }

    fn value(&self, counter: u64, digits: u32) -> u32 {
        let modulus = POW10.get(usize::try_from(digits).unwrap_or(usize::MAX)).copied().unwrap_or(POW10[MAX_DIGITS as usize]);
        // The truncated value is < 2^31, so the remainder always fits in u32.
        u32::try_from(u64::from(self.truncated(counter)) % modulus).unwrap_or(0)
    }
}

/// Dynamic truncation (RFC 4226 §5.3). Every HMAC output used here is at
/// least 20 bytes long and the offset is at most 15, so the four bytes are
/// always present; the fallback exists only to keep the function total.
fn dynamic_truncate(mac: &[u8]) -> u32 {
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    }
}

fn clamp_digits(digits: u32) -> u32 {
    digits.clamp(MIN_DIGITS, MAX_DIGITS)
}

/// RFC 4226 HOTP value truncated to `digits` decimal digits, as a number.
///
/// `digits` is meant to be in `6..=10` (callers use 6 or 8); values outside
/// that range are clamped into it, so this never panics. Any secret length is
/// accepted (including empty, although RFC 4226 asks for at least 128 bits).
///
/// ```
/// use tessera_otp::{hotp, Algorithm};
/// assert_eq!(hotp(b"12345678901234567890", 0, 6, Algorithm::Sha1), 755_224);
/// ```
pub fn hotp(secret: &[u8], counter: u64, digits: u32, alg: Algorithm) -> u32 {
    Keyed::new(secret, alg).value(counter, clamp_digits(digits))
}

/// Zero-padded decimal HOTP code of exactly `digits` characters (after
/// clamping `digits` into `6..=10`, as [`hotp`] does).
///
/// ```
/// use tessera_otp::{hotp_code, Algorithm};
/// assert_eq!(hotp_code(b"12345678901234567890", 7, 6, Algorithm::Sha1), "162583");
/// ```
pub fn hotp_code(secret: &[u8], counter: u64, digits: u32, alg: Algorithm) -> String {
    let digits = clamp_digits(digits);
    let value = Keyed::new(secret, alg).value(counter, digits);
    CodeBuf::render(value, digits).as_bytes().iter().map(|&b| char::from(b)).collect()
}

/// RFC 6238 time step: `(unix_time - t0) / step`.
///
/// Returns `0` when `unix_time < t0`. A `step` of `0` is invalid; it is
/// treated as `1` rather than panicking (callers should reject it when
/// loading configuration).
///
/// ```
/// use tessera_otp::totp_step;
/// assert_eq!(totp_step(59, 30, 0), 1);
/// assert_eq!(totp_step(10, 30, 100), 0);
/// ```
pub fn totp_step(unix_time: u64, step: u64, t0: u64) -> u64 {
    unix_time.saturating_sub(t0) / step.max(1)
}

/// RFC 6238 TOTP code for `unix_time` with `T0 = 0`: the [`hotp_code`] of
/// step [`totp_step(unix_time, step, 0)`](totp_step).
pub fn totp_code(secret: &[u8], unix_time: u64, step: u64, digits: u32, alg: Algorithm) -> String {
    hotp_code(secret, totp_step(unix_time, step, 0), digits, alg)
}

/// A submitted code that passed the shape check: exactly `digits` ASCII
/// digits, with `digits` in `6..=10`.
fn checked_code(code: &str, digits: u32) -> Option<&[u8]> {
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
        return None;
    }
    let bytes = code.as_bytes();
    // Length and character class are not secret: rejecting early leaks
    // nothing about the expected code.
    let right_len = usize::try_from(digits).is_ok_and(|d| d == bytes.len());
    (right_len && bytes.iter().all(u8::is_ascii_digit)).then_some(bytes)
}

/// Constant-time comparison of the candidate for `counter` with `code`.
fn matches(keyed: &Keyed, counter: u64, digits: u32, code: &[u8]) -> bool {
    let candidate = CodeBuf::render(keyed.value(counter, digits), digits);
    bool::from(candidate.as_bytes().ct_eq(code))
}

/// HOTP verification: searches counters `from ..= from + window` (the upper
/// bound saturates at `u64::MAX`) for `code` and returns the first matching
/// counter. The caller must then store `counter + 1` to prevent replay.
///
/// Every candidate is compared in constant time
/// ([`subtle::ConstantTimeEq`] over the ASCII bytes). The search stops at the
/// first match; when nothing matches the whole window is always scanned, so
/// the running time of a failed attempt does not depend on the secret. A
/// match's position is learned by the caller anyway, so stopping early leaks
/// nothing to someone who does not already hold a valid code.
///
/// Never matches (returns `None`) when `code` is not exactly `digits` ASCII
/// digits (no surrounding whitespace is stripped) or when `digits` is outside
/// `6..=10`. Cost is linear in `window`; keep it small (RFC 4226 suggests a
/// look-ahead of a few dozen at most).
pub fn find_counter(secret: &[u8], alg: Algorithm, digits: u32, code: &str, from: u64, window: u64) -> Option<u64> {
    let code = checked_code(code, digits)?;
    let keyed = Keyed::new(secret, alg);
    let last = from.saturating_add(window);
    (from..=last).find(|&counter| matches(&keyed, counter, digits, code))
}

/// TOTP verification: searches time steps `center - behind ..= center +
/// ahead` (clamped to `0 ..= u64::MAX`) for `code`, nearest to `center`
/// first — `center`, `center - 1`, `center + 1`, `center - 2`, … — and
/// returns the matching step. Callers should remember the last accepted step
/// and reject steps `<=` it to prevent replay.
///
/// Comparison and rejection rules are those of [`find_counter`]: constant-time
/// per candidate, `None` for a code that is not exactly `digits` ASCII digits
/// or for `digits` outside `6..=10`. Cost is linear in the number of steps
/// actually inside the clamped window; RFC 6238 recommends at most one step
/// of network delay either way.
pub fn find_step(secret: &[u8], alg: Algorithm, digits: u32, code: &str, center: u64, behind: u64, ahead: u64) -> Option<u64> {
    let code = checked_code(code, digits)?;
    let keyed = Keyed::new(secret, alg);
    if matches(&keyed, center, digits, code) {
        return Some(center);
    }
    let mut distance: u64 = 1;
    loop {
        let before = (distance <= behind).then(|| center.checked_sub(distance)).flatten();
        let after = (distance <= ahead).then(|| center.checked_add(distance)).flatten();
        if before.is_none() && after.is_none() {
            // Both sides are exhausted and stay exhausted for larger
            // distances (bounds are monotone), so the search is over.
            return None;
        }
        for step in [before, after].into_iter().flatten() {
            if matches(&keyed, step, digits, code) {
                return Some(step);
            }
        }
        distance = distance.checked_add(1)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_pads_with_zeros() {
        assert_eq!(CodeBuf::render(42, 6).as_bytes(), b"000042");
        assert_eq!(CodeBuf::render(0, 8).as_bytes(), b"00000000");
        assert_eq!(CodeBuf::render(2_147_483_647, 10).as_bytes(), b"2147483647");
    }

    #[test]
    fn dynamic_truncate_rfc4226_example() {
        // RFC 4226 §5.4 example HMAC-SHA-1 value.
        let mac = [0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85, 0x50, 0xef, 0x7f, 0x19, 0xda, 0x8e, 0x94, 0x5b, 0x55, 0x5a];
        assert_eq!(dynamic_truncate(&mac), 0x50ef_7f19);
        assert_eq!(dynamic_truncate(&[]), 0);
        assert_eq!(dynamic_truncate(&[0x0f]), 0);
    }

    #[test]
    fn long_keys_are_hashed_like_rfc2104() {
        // Keys longer than the block size must give the same result as the
        // hmac crate's own slice constructor.
        for len in [0usize, 1, 20, 63, 64, 65, 127, 128, 129, 300] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let ours = {
                let mut m = keyed::<Sha1>(&key);
                m.update(b"x");
                m.finalize().into_bytes()
            };
            let reference = {
                let mut m = <Hmac<Sha1> as Mac>::new_from_slice(&key).expect("any length");
                m.update(b"x");
                m.finalize().into_bytes()
            };
            assert_eq!(ours, reference, "sha1 len {len}");
            let ours = {
                let mut m = keyed::<Sha512>(&key);
                m.update(b"x");
                m.finalize().into_bytes()
            };
            let reference = {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(&key).expect("any length");
                m.update(b"x");
                m.finalize().into_bytes()
            };
            assert_eq!(ours, reference, "sha512 len {len}");
        }
    }

    #[test]
    fn digits_are_clamped_for_generation() {
        let s = b"12345678901234567890";
        assert_eq!(hotp_code(s, 0, 0, Algorithm::Sha1), "755224");
        assert_eq!(hotp_code(s, 0, 3, Algorithm::Sha1), "755224");
        assert_eq!(hotp_code(s, 0, 11, Algorithm::Sha1), "1284755224");
        assert_eq!(hotp_code(s, 0, u32::MAX, Algorithm::Sha1), "1284755224");
        assert_eq!(hotp(s, 0, u32::MAX, Algorithm::Sha1), 1_284_755_224);
    }

    #[test]
    fn step_zero_does_not_panic() {
        assert_eq!(totp_step(100, 0, 0), 100);
        assert_eq!(totp_step(u64::MAX, 1, 0), u64::MAX);
        assert_eq!(totp_step(5, 30, u64::MAX), 0);
    }
}
