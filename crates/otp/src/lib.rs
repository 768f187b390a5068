//! # tessera-otp
//!
//! A pure OATH library: HOTP ([RFC 4226]), TOTP ([RFC 6238]), `otpauth://`
//! key URIs (Google Authenticator "Key Uri Format") and tolerant Base32
//! ([RFC 4648]) helpers.
//!
//! The crate performs no I/O and never reads the clock: every time-dependent
//! function takes the current Unix time (or an already computed time step) as
//! an argument. No public function panics, whatever its input:
//!
//! * `digits` outside `6..=10` is clamped into that range by the *generating*
//!   functions ([`hotp`], [`hotp_code`], [`totp_code`]) and makes the
//!   *verifying* functions ([`find_counter`], [`find_step`]) fail closed
//!   (return `None`), so a misconfigured length can never widen acceptance.
//! * a TOTP `step` of `0` is treated as `1` (see [`totp_step`]).
//! * all counter / step arithmetic saturates instead of overflowing.
//!
//! Verification compares every candidate code with
//! [`subtle::ConstantTimeEq`]; a submitted code whose length differs from
//! `digits` or that contains anything but ASCII digits (including leading or
//! trailing spaces) never matches.
//!
//! [RFC 4226]: https://www.rfc-editor.org/rfc/rfc4226
//! [RFC 6238]: https://www.rfc-editor.org/rfc/rfc6238
//! [RFC 4648]: https://www.rfc-editor.org/rfc/rfc4648
//!
//! ```
//! use tessera_otp::{find_step, totp_code, totp_step, Algorithm};
//!
//! let secret = b"12345678901234567890";
//! let now = 1_111_111_109;
//! let code = totp_code(secret, now, 30, 8, Algorithm::Sha1);
//! assert_eq!(code, "07081804");
//!
//! // 30 seconds later the previous step is still accepted with `behind = 1`.
//! let center = totp_step(now + 30, 30, 0);
//! assert_eq!(find_step(secret, Algorithm::Sha1, 8, &code, center, 1, 1), Some(center - 1));
//! ```

mod algorithm;
mod base32;
mod oath;
mod uri;

pub use algorithm::Algorithm;
pub use base32::{base32_decode, base32_encode};
pub use oath::{find_counter, find_step, hotp, hotp_code, totp_code, totp_step, MAX_DIGITS, MIN_DIGITS};
pub use uri::{KeyUri, OtpKind, UriError, DEFAULT_DIGITS, DEFAULT_PERIOD};
