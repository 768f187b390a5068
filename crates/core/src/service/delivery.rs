//! Sending passcodes and notifications by SMS, voice and email (docs/api.md).
//!
//! `send_oath_otp` generates a fresh random code, stores only its keyed hash (see
//! [`crate::crypto::MasterKey::sent_code_hash`]) and writes the code's record and its message to the
//! durable outbox in one transaction (with the per-user send limit). Then it asks the
//! [`Dispatcher`] for the first attempt and waits for it up to a short bound: a provider that
//! refuses permanently is reported (9012 / 9031); anything else is answered with 0 and the outbox
//! worker retries until the code expires.
//!
//! This module knows no provider: the `tessera-delivery` crate implements [`Dispatcher`] (templates,
//! SMTP / Twilio / webhook / log providers, the outbox worker) and the server plugs it into
//! [`Service`]. Welcome notifications of `add_u2f_account` / `add_oath_account` go through
//! [`send_welcome`].

use super::users::load_user;
use super::{Caller, OpResult, Service};
use crate::catalog::{f, Group, Kind::*, OpSpec};
use crate::error::{code, display_name, ApiError, StoreError};
use crate::params::Params;
use crate::reply;
use crate::store::{DeviceRow, OutboxRow, SentCodeRow, UserRow};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

pub const OPS: &[OpSpec] = &[OpSpec {
    name: "send_oath_otp",
    aliases: &[],
    reply_type: None,
    summary: "Send a one-time passcode to the user by sms, voice or email; validate it with validate_oath_otp. \
              At most 5 sends per user per 15 minutes (configurable), beyond that 9015.",
    fields: &[
        f("username", Str, true, "The user."),
        f("deliveryMethod", Str, true, "sms | voice | email (case-insensitive); also 0 = sms, 1 = email, 2 = voice."),
        f("psn", Str, false, "Device (alias printedSerialNumber); default: the user's first OATH device."),
    ],
    ok_message: "OK",
    group: Group::Delivery,
}];

pub(super) async fn run(svc: &Service, name: &str, caller: &Caller, p: &Params) -> OpResult {
    match name {
        "send_oath_otp" => send_oath_otp(svc, caller, p).await,
        other => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{other}]"))),
    }
}

/// deviceType of an out-of-band device (codes are only ever sent to it).
pub const OUT_OF_BAND_DEVICE_TYPE: i64 = 15;
/// How long a welcome notification is retried.
pub const WELCOME_LIFETIME_SECONDS: i64 = 86_400;
/// Default bound on the reply's wait for the first attempt.
pub const DEFAULT_REPLY_WAIT: Duration = Duration::from_secs(3);

/// The default passcode text; `{code}`, `{minutes}`, `{account}`, `{username}` are replaced.
pub const DEFAULT_CODE_TEMPLATE: &str = "Your code is {code}. It expires in {minutes} minutes.";
/// The default voice text (read twice by the Twilio voice provider).
pub const DEFAULT_VOICE_TEMPLATE: &str = "Your code is {code}.";
pub const DEFAULT_CODE_SUBJECT: &str = "Your {account} verification code";
pub const DEFAULT_WELCOME_TEMPLATE: &str = "Welcome to {account}, {username}. Your account is set up for multi-factor authentication.";
pub const DEFAULT_WELCOME_SUBJECT: &str = "Welcome to {account}";

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Sms,
    Voice,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Sms, Channel::Voice, Channel::Email];

    /// The name used in the outbox and in configuration (`sms`, `voice`, `email`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
        }
    }

    pub fn from_name(s: &str) -> Option<Channel> {
        match s {
            "sms" => Some(Channel::Sms),
            "voice" => Some(Channel::Voice),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }

    /// `deliveryMethod` as clients send it: `sms`|`voice`|`email` in any case, or the SOAP
    /// numbers 0 = sms, 1 = email, 2 = voice.
    pub fn from_delivery_method(s: &str) -> Option<Channel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sms" | "0" => Some(Channel::Sms),
            "email" | "1" => Some(Channel::Email),
            "voice" | "2" => Some(Channel::Voice),
            _ => None,
        }
    }

    /// The error code of a permanent provider failure on this channel.
    pub fn send_error_code(self) -> i64 {
        match self {
            Channel::Email => code::EMAIL_SEND_ERROR,
            Channel::Sms | Channel::Voice => code::SMS_SEND_ERROR,
        }
    }
}

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Carries a passcode.
    Passcode,
    /// A welcome notification (no code).
    Welcome,
}

/// Values that templates may use.
#[derive(Clone)]
pub struct MessageVars<'a> {
    /// The passcode (None in a welcome message).
    pub code: Option<&'a str>,
    /// Lifetime of the code in whole minutes (rounded up).
    pub minutes: i64,
    /// The account (tenant) name.
    pub account: &'a str,
    pub username: &'a str,
}

impl std::fmt::Debug for MessageVars<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageVars")
            .field("code", &self.code.map(|_| "<redacted>"))
            .field("minutes", &self.minutes)
            .field("account", &self.account)
            .field("username", &self.username)
            .finish()
    }
}

/// A rendered message.
#[derive(Clone, PartialEq, Eq)]
pub struct Composed {
    /// Email subject (empty for sms / voice).
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for Composed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composed").field("subject", &self.subject).field("body", &"<redacted>").finish()
    }
}

/// Fills a template: `{code}` (on the voice channel spelled digit by digit, "1, 2, 3, 4, 5, 6", so
/// that a speech engine reads digits, not a number), `{minutes}`, `{account}`, `{username}`.
/// Unknown `{...}` are left as written; a template without `{code}` still gets the code appended
/// when there is one, so a misconfigured template cannot send a passcode message without the code.
pub fn render(template: &str, channel: Channel, vars: &MessageVars<'_>) -> String {
    let code_text = match (vars.code, channel) {
        (Some(c), Channel::Voice) => spell_digits(c),
        (Some(c), _) => c.to_string(),
        (None, _) => String::new(),
    };
    let mut out =
        template.replace("{minutes}", &vars.minutes.to_string()).replace("{account}", vars.account).replace("{username}", vars.username);
    if vars.code.is_some() && !out.contains("{code}") {
        out.push_str(" {code}");
    }
    out.replace("{code}", &code_text)
}

/// "123456" -> "1, 2, 3, 4, 5, 6".
pub fn spell_digits(code: &str) -> String {
    code.chars().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
}

/// The built-in texts (used when no template is configured).
pub fn default_compose(channel: Channel, kind: MessageKind, vars: &MessageVars<'_>) -> Composed {
    let (subject, body) = match kind {
        MessageKind::Passcode => {
            let body = if channel == Channel::Voice { DEFAULT_VOICE_TEMPLATE } else { DEFAULT_CODE_TEMPLATE };
            (DEFAULT_CODE_SUBJECT, body)
        }
        MessageKind::Welcome => (DEFAULT_WELCOME_SUBJECT, DEFAULT_WELCOME_TEMPLATE),
    };
    let subject =
        if channel == Channel::Email { render(subject, channel, &MessageVars { code: None, ..vars.clone() }) } else { String::new() };
    Composed { subject, body: render(body, channel, vars) }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The provider accepted the message.
    Sent,
    /// A transient failure (5xx, timeout, refused connection): the worker retries later.
    Retrying(String),
    /// The provider refused the message for good (4xx): no more attempts.
    Failed(String),
    /// The message expired before it could be delivered.
    Expired,
    /// The message was not due or is being handled elsewhere (another node, the worker).
    NotClaimed,
}

/// The port through which services reach delivery (implemented by `tessera-delivery`).
#[async_trait::async_trait]
pub trait Dispatcher: Send + Sync {
    /// Renders a message (configured templates; by default [`default_compose`]).
    fn compose(&self, channel: Channel, kind: MessageKind, vars: &MessageVars<'_>) -> Composed {
        default_compose(channel, kind, vars)
    }

    /// How long `send_oath_otp` waits for the first attempt before answering.
    fn reply_wait(&self) -> Duration {
        DEFAULT_REPLY_WAIT
    }

    /// Makes an attempt on outbox message `outbox_id` at once, if it is due and nobody else has it.
    /// The attempt must carry on (and record its outcome) even if the caller stops waiting.
    async fn deliver_now(&self, outbox_id: i64) -> DeliveryResult;
}

/// Normalises a phone number to E.164: `+1(800)200-8411` -> `+18002008411`,
/// `+44(0)20 1234 5678` -> `+442012345678` (a trunk `(0)` is dropped), `0044 20...` -> `+4420...`.
/// Spaces, `-`, `.`, `/` and parentheses are separators; anything else is refused, as is a number
/// without its country code.
pub fn normalize_e164(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("no number".into());
    }
    let rest = if let Some(r) = s.strip_prefix('+') {
        r
    } else if let Some(r) = s.strip_prefix("00") {
        r
    } else {
        return Err("the number must start with + and the country code".into());
    };
    let rest = rest.replace("(0)", "");
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}' => {}
            _ => return Err("the number may only contain digits, spaces, - . / and parentheses".into()),
        }
    }
    if digits.starts_with('0') {
        return Err("country codes do not start with 0".into());
    }
    if !(8..=15).contains(&digits.len()) {
        return Err("an international number has 8 to 15 digits".into());
    }
    Ok(format!("+{digits}"))
}

/// The address of `user` on `channel` (E.164 mobile for sms / voice, the email for email), or 9103.
pub fn recipient(user: &UserRow, channel: Channel) -> Result<String, ApiError> {
    let name = display_name(&user.username);
    match channel {
        Channel::Sms | Channel::Voice => {
            if user.mobile.trim().is_empty() {
                return Err(ApiError::invalid("mobile", format!("user [{name}] has no mobile number (needed for {})", channel.as_str())));
            }
            normalize_e164(&user.mobile)
                .map_err(|why| ApiError::invalid("mobile", format!("the mobile number of user [{name}] is not usable: {why}")))
        }
        Channel::Email => {
            let email = user.email.trim();
            if email.is_empty() {
                return Err(ApiError::invalid("email", format!("user [{name}] has no email address (needed for email)")));
            }
            let ok = match email.split_once('@') {
                Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !email.chars().any(char::is_whitespace),
                None => false,
            };
            if !ok {
                return Err(ApiError::invalid("email", format!("the email address of user [{name}] is not valid")));
            }
            Ok(email.to_string())
        }
    }
}

fn is_oath(d: &DeviceRow) -> bool {
    matches!(d.otp_type, 1..=3) || matches!(d.device_type, 13..=15)
}

fn user_disabled(user: &UserRow) -> ApiError {
    ApiError::new(code::USER_DISABLED, format!("User disabled [{}]", display_name(&user.username)))
}

fn device_disabled(d: &DeviceRow) -> ApiError {
    ApiError::new(code::DEVICE_DISABLED, format!("Device disabled [{}]", display_name(&d.psn)))
}

/// The device a code is sent for: the given psn (the user's), else the user's first enabled OATH
/// device, else a new out-of-band device.
async fn pick_device(svc: &Service, caller: &Caller, user: &UserRow, psn: Option<&str>) -> Result<DeviceRow, ApiError> {
    if let Some(psn) = psn {
        let d = svc.store.device_by_psn(caller.account_id(), psn).await?;
        let d = match d {
            Some(d) if d.user_id == Some(user.id) => d,
            _ => return Err(ApiError::device_not_found(psn)),
        };
        if !is_oath(&d) {
            return Err(ApiError::new(code::DEVICE_INVALID, format!("Device [{}] is not an OATH device", display_name(psn))));
        }
        if d.status != 0 {
            return Err(device_disabled(&d));
        }
        return Ok(d);
    }
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    let oath: Vec<&DeviceRow> = devices.iter().filter(|d| is_oath(d)).collect();
    if let Some(d) = oath.iter().find(|d| d.status == 0) {
        return Ok((*d).clone());
    }
    if let Some(d) = oath.first() {
        return Err(device_disabled(d));
    }
    let mine = create_out_of_band_device(svc, caller, user).await?;
    // Two first sends racing each other both create one; the older device wins and the other goes.
    let devices = svc.store.devices_of_user(caller.account_id(), user.id).await?;
    match devices.into_iter().find(|d| is_oath(d) && d.status == 0) {
        Some(first) if first.id != mine.id => {
            svc.store.delete_device(caller.account_id(), mine.id).await?;
            Ok(first)
        }
        _ => Ok(mine),
    }
}

/// Creates an out-of-band device (deviceType 15, otpType 1, no seed) for a user who has no OATH device.
pub async fn create_out_of_band_device(svc: &Service, caller: &Caller, user: &UserRow) -> Result<DeviceRow, ApiError> {
    let mut last = None;
    for _ in 0..8 {
        let psn = super::oath::generate_psn(&svc.settings.otp.psn_prefix);
        let mut d = DeviceRow {
            account_id: caller.account_id(),
            user_id: Some(user.id),
            psn,
            device_type: OUT_OF_BAND_DEVICE_TYPE,
            otp_type: 1,
            status: 0,
            activated: true,
            seed: None,
            algorithm: "SHA1".into(),
            digits: 6,
            time_step: 30,
            created_at: svc.now(),
            u2f_counter: -1,
            ..Default::default()
        };
        match svc.store.create_device(&d).await {
            Ok(id) => {
                d.id = id;
                return Ok(d);
            }
            Err(StoreError::Conflict) => last = Some(StoreError::Conflict),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.unwrap_or(StoreError::Conflict).into())
}

/// `digits` random decimal digits from the operating system's generator.
pub fn random_code(digits: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..digits).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

fn lifetime_minutes(seconds: i64) -> i64 {
    (seconds.max(1) + 59) / 60
}

fn compose(svc: &Service, channel: Channel, kind: MessageKind, vars: &MessageVars<'_>) -> Composed {
    match &svc.dispatcher {
        Some(d) => d.compose(channel, kind, vars),
        None => default_compose(channel, kind, vars),
    }
}

async fn send_oath_otp(svc: &Service, caller: &Caller, p: &Params) -> OpResult {
    // The user first: an unknown user is 9001 whatever else the request holds.
    let user = load_user(svc, caller, p).await?;
    let method = p.opt_str("deliveryMethod")?;
    let channel = method.as_deref().and_then(Channel::from_delivery_method).ok_or_else(|| {
        ApiError::new(
            code::SEND_OTP_INVALID_DELIVERY_METHOD,
            match &method {
                Some(m) => format!("Invalid delivery method [{}]: use sms, voice or email", display_name(m)),
                None => "Missing delivery method: use sms, voice or email".to_string(),
            },
        )
    })?;
    if user.status != 0 {
        return Err(user_disabled(&user));
    }
    let to = recipient(&user, channel)?;
    let psn = p.opt_str("psn")?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let device = pick_device(svc, caller, &user, psn.as_deref()).await?;

    let digits = if (4..=10).contains(&device.digits) { device.digits as usize } else { 6 };
    let code = zeroize::Zeroizing::new(random_code(digits));
    let now = svc.now();
    let lifetime = svc.settings.otp.sent_code_lifetime_seconds.max(1);
    let expires_at = now + lifetime;
    let vars = MessageVars {
        code: Some(code.as_str()),
        minutes: lifetime_minutes(lifetime),
        account: &caller.account.name,
        username: &user.username,
    };
    let msg = compose(svc, channel, MessageKind::Passcode, &vars);
    let sent = SentCodeRow {
        id: 0,
        account_id: caller.account_id(),
        user_id: user.id,
        device_id: Some(device.id),
        code_hash: svc.master_key.sent_code_hash(caller.account_id(), user.id, &code),
        expires_at,
        used: false,
    };
    let row = pending_message(svc, caller, channel, to, msg, now, expires_at);
    let window_start = now - svc.settings.otp.send_window_seconds.max(0);
    let Some((_code_id, outbox_id)) = svc.store.enqueue_code(&sent, &row, window_start, svc.settings.otp.send_limit).await? else {
        return Err(ApiError::new(
            code::TOO_MANY_FAILURES,
            format!("Too many passcodes sent to user [{}]; try again later", display_name(&user.username)),
        ));
    };
    if let Some(d) = &svc.dispatcher {
        // The attempt runs on its own task: when the bound passes, it carries on and the reply says
        // 0 (the message is in the outbox and will be retried until the code expires).
        if let Ok(DeliveryResult::Failed(why)) = tokio::time::timeout(d.reply_wait(), d.deliver_now(outbox_id)).await {
            let what = if channel == Channel::Email { "Email" } else { "SMS/voice" };
            return Err(ApiError::new(
                channel.send_error_code(),
                format!("{what} send error: the provider refused the message ({})", clip(&why)),
            ));
        }
    }
    Ok(reply!())
}

fn clip(s: &str) -> String {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    cleaned
}

/// Queues a welcome notification (no code) for a new user: `method` is the request's
/// `notificationMethod`, 0 = none, 1 = email, 2 = sms. A missing or unusable address is 9103; any
/// other method is 9103 on `notificationMethod`. Does not wait for the provider.
/// An outbox row due now.
/// Its body (which may carry a passcode) is sealed under the master key until it is delivered.
fn pending_message(svc: &Service, caller: &Caller, channel: Channel, to: String, msg: Composed, now: i64, expires_at: i64) -> OutboxRow {
    OutboxRow {
        id: 0,
        account_id: caller.account_id(),
        channel: channel.as_str().to_string(),
        body: svc.master_key.seal_message(caller.account_id(), channel.as_str(), &to, &msg.body),
        recipient: to,
        subject: msg.subject,
        attempts: 0,
        next_attempt_at: now,
        expires_at,
        state: "pending".into(),
        last_error: String::new(),
    }
}

/// Reads `notificationMethod` (0 none, 1 email, 2 sms) and checks that the user (or the request that
/// creates them) has the address it needs, before anything is written.
pub fn welcome_method(p: &crate::params::Params, existing: Option<&UserRow>) -> Result<i64, ApiError> {
    let method = p.opt_i64_in("notificationMethod", 0, 2)?.unwrap_or(0);
    let (field, have) = match method {
        1 => ("email", existing.map(|u| !u.email.is_empty()).unwrap_or(false) || p.opt_str("email")?.is_some()),
        2 => ("mobile", existing.map(|u| !u.mobile.is_empty()).unwrap_or(false) || p.opt_str("mobile")?.is_some()),
        _ => return Ok(method),
    };
    if !have {
        return Err(ApiError::invalid("notificationMethod", format!("the welcome message needs the user's {field}")));
    }
    Ok(method)
}

/// Sends the welcome message after an account was created; a failure to queue it is logged, not
/// returned (the user and device exist by then).
pub async fn welcome_after_create(svc: &Service, caller: &Caller, user: &UserRow, method: i64) {
    if method == 0 {
        return;
    }
    if let Err(e) = send_welcome(svc, caller, user, method).await {
        tracing::warn!(code = e.code, error = %e.message, "welcome message not queued");
    }
}

pub async fn send_welcome(svc: &Service, caller: &Caller, user: &UserRow, method: i64) -> Result<(), ApiError> {
    let channel = match method {
        0 => return Ok(()),
        1 => Channel::Email,
        2 => Channel::Sms,
        _ => return Err(ApiError::invalid("notificationMethod", "must be 0 (none), 1 (email) or 2 (sms)")),
    };
    let to = recipient(user, channel)?;
    let now = svc.now();
    let vars = MessageVars { code: None, minutes: 0, account: &caller.account.name, username: &user.username };
    let msg = compose(svc, channel, MessageKind::Welcome, &vars);
    let row = pending_message(svc, caller, channel, to, msg, now, now + WELCOME_LIFETIME_SECONDS);
    let id = svc.store.enqueue_message(&row).await?;
    if let Some(d) = &svc.dispatcher {
        let d: Arc<dyn Dispatcher> = d.clone();
        tokio::spawn(async move {
            d.deliver_now(id).await;
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert_eq!(normalize_e164("+1(800)200-8411").as_deref(), Ok("+18002008411"));
        assert_eq!(normalize_e164("+44(0)20 1234 5678").as_deref(), Ok("+442012345678"));
        assert_eq!(normalize_e164(" +49 30 123456 ").as_deref(), Ok("+4930123456"));
        assert_eq!(normalize_e164("0044 20 1234 5678").as_deref(), Ok("+442012345678"));
        assert_eq!(normalize_e164("+1.800.200.8411").as_deref(), Ok("+18002008411"));
        assert!(normalize_e164("8002008411").is_err());
        assert!(normalize_e164("+1 800 CALL NOW").is_err());
        assert!(normalize_e164("+0123456789").is_err());
        assert!(normalize_e164("+1234").is_err());
        assert!(normalize_e164("+1234567890123456").is_err());
        assert!(normalize_e164("").is_err());
    }

    #[test]
    fn delivery_methods() {
        assert_eq!(Channel::from_delivery_method("SMS"), Some(Channel::Sms));
        assert_eq!(Channel::from_delivery_method(" Voice "), Some(Channel::Voice));
        assert_eq!(Channel::from_delivery_method("email"), Some(Channel::Email));
        assert_eq!(Channel::from_delivery_method("0"), Some(Channel::Sms));
        assert_eq!(Channel::from_delivery_method("1"), Some(Channel::Email));
        assert_eq!(Channel::from_delivery_method("2"), Some(Channel::Voice));
        assert_eq!(Channel::from_delivery_method("3"), None);
        assert_eq!(Channel::from_delivery_method("fax"), None);
    }

    #[test]
    fn codes_are_digits_of_the_length_asked() {
        for n in [4, 6, 8] {
            let c = random_code(n);
            assert_eq!(c.len(), n);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(lifetime_minutes(300), 5);
        assert_eq!(lifetime_minutes(301), 6);
        assert_eq!(lifetime_minutes(30), 1);
    }
}
