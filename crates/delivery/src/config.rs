//! The `[delivery]` settings, read from the raw value the server's figment produced (TOML file,
//! then `TESSERA_DELIVERY__<CHANNEL>__<KEY>` environment variables).
//!
//! Scalars are read leniently (an environment variable `TESSERA_DELIVERY__SMS__FROM=+15550001`
//! may arrive as a number). Unknown keys are refused, so a typo does not silently fall back to a
//! default. No secret (auth token, SMTP password, webhook bearer token) is printed by `Debug`.

use serde_json::{Map, Value};
use std::time::Duration;
use tessera_core::config::redact_url;
use tessera_core::service::delivery::Channel;

/// Settings of the whole `[delivery]` section.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Bound on every outbound call (connect + request + response).
    pub timeout: Duration,
    /// How long `send_oath_otp` waits for the first attempt.
    pub reply_wait: Duration,
    /// How often the worker looks for due messages.
    pub poll_interval: Duration,
    /// How long a claimed message is reserved for the worker that claimed it.
    pub lease_seconds: i64,
    /// Longest wait between two attempts.
    pub max_backoff_seconds: i64,
    pub sms: ChannelConfig,
    pub voice: ChannelConfig,
    pub email: ChannelConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            reply_wait: Duration::from_millis(3000),
            poll_interval: Duration::from_millis(1000),
            lease_seconds: 60,
            max_backoff_seconds: 60,
            sms: ChannelConfig::default(),
            voice: ChannelConfig::default(),
            email: ChannelConfig::default(),
        }
    }
}

/// One channel's provider and templates.
#[derive(Debug, Clone, Default)]
pub struct ChannelConfig {
    pub provider: ProviderConfig,
    /// Passcode message; `{code}`, `{minutes}`, `{account}`, `{username}`.
    pub template: Option<String>,
    /// Email subject of passcode messages.
    pub subject: Option<String>,
    /// Welcome notification text and subject.
    pub welcome_template: Option<String>,
    pub welcome_subject: Option<String>,
}

/// Which provider a channel uses, with its settings.
#[derive(Clone, Default)]
pub enum ProviderConfig {
    /// Writes the message to the server log (development only).
    #[default]
    Log,
    Smtp {
        /// `smtp://[user:password@]host[:port][?tls=starttls]`, `starttls://…`, `smtps://…`.
        url: String,
        from: String,
    },
    Twilio {
        /// API base, default `https://api.twilio.com`.
        url: String,
        account_sid: String,
        auth_token: String,
        from: String,
    },
    Webhook {
        url: String,
        /// Sent as `Authorization: Bearer …` when set.
        bearer_token: Option<String>,
    },
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Log => "log",
            ProviderConfig::Smtp { .. } => "smtp",
            ProviderConfig::Twilio { .. } => "twilio",
            ProviderConfig::Webhook { .. } => "webhook",
        }
    }
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderConfig::Log => f.write_str("Log"),
            ProviderConfig::Smtp { url, from } => f.debug_struct("Smtp").field("url", &redact_url(url)).field("from", from).finish(),
            ProviderConfig::Twilio { url, account_sid, from, .. } => f
                .debug_struct("Twilio")
                .field("url", &redact_url(url))
                .field("account_sid", account_sid)
                .field("auth_token", &"<redacted>")
                .field("from", from)
                .finish(),
            ProviderConfig::Webhook { url, bearer_token } => f
                .debug_struct("Webhook")
                .field("url", &redact_url(url))
                .field("bearer_token", &bearer_token.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

const TOP_KEYS: &[&str] =
    &["timeout_seconds", "reply_wait_ms", "poll_interval_ms", "lease_seconds", "max_backoff_seconds", "sms", "voice", "email"];
const TEMPLATE_KEYS: &[&str] = &["provider", "template", "subject", "welcome_template", "welcome_subject"];

impl DeliveryConfig {
    /// Reads the raw `[delivery]` value (`null` = nothing configured: every channel logs).
    pub fn from_value(v: &Value) -> Result<DeliveryConfig, String> {
        let mut c = DeliveryConfig::default();
        let map = match v {
            Value::Null => return Ok(c),
            Value::Object(m) => m,
            _ => return Err("[delivery] must be a table".into()),
        };
        for k in map.keys() {
            if !TOP_KEYS.contains(&k.as_str()) {
                return Err(format!("unknown key delivery.{k} (known: {})", TOP_KEYS.join(", ")));
            }
        }
        if let Some(t) = int(map, "delivery", "timeout_seconds")? {
            c.timeout = Duration::from_secs(in_range("delivery.timeout_seconds", t, 1, 300)? as u64);
        }
        if let Some(t) = int(map, "delivery", "reply_wait_ms")? {
            c.reply_wait = Duration::from_millis(in_range("delivery.reply_wait_ms", t, 0, 60_000)? as u64);
        }
        if let Some(t) = int(map, "delivery", "poll_interval_ms")? {
            c.poll_interval = Duration::from_millis(in_range("delivery.poll_interval_ms", t, 50, 60_000)? as u64);
        }
        if let Some(t) = int(map, "delivery", "lease_seconds")? {
            c.lease_seconds = in_range("delivery.lease_seconds", t, 5, 3600)?;
        }
        if let Some(t) = int(map, "delivery", "max_backoff_seconds")? {
            c.max_backoff_seconds = in_range("delivery.max_backoff_seconds", t, 1, 3600)?;
        }
        if c.lease_seconds <= c.timeout.as_secs() as i64 {
            return Err(format!(
                "delivery.lease_seconds ({}) must be longer than delivery.timeout_seconds ({})",
                c.lease_seconds,
                c.timeout.as_secs()
            ));
        }
        for ch in Channel::ALL {
            let cfg = match map.get(ch.as_str()) {
                None | Some(Value::Null) => ChannelConfig::default(),
                Some(Value::Object(m)) => channel(ch, m)?,
                Some(_) => return Err(format!("delivery.{} must be a table", ch.as_str())),
            };
            match ch {
                Channel::Sms => c.sms = cfg,
                Channel::Voice => c.voice = cfg,
                Channel::Email => c.email = cfg,
            }
        }
        Ok(c)
    }

    pub fn channel(&self, ch: Channel) -> &ChannelConfig {
        match ch {
            Channel::Sms => &self.sms,
            Channel::Voice => &self.voice,
            Channel::Email => &self.email,
        }
    }
}

fn channel(ch: Channel, m: &Map<String, Value>) -> Result<ChannelConfig, String> {
    let sec = format!("delivery.{}", ch.as_str());
    let provider_name = string(m, &sec, "provider")?
        .ok_or_else(|| {
            format!("{sec}.provider is missing (one of: log, webhook, {})", if ch == Channel::Email { "smtp" } else { "twilio" })
        })?
        .to_ascii_lowercase();
    let provider_keys: &[&str] = match provider_name.as_str() {
        "log" => &[],
        "smtp" => &["smtp_url", "from"],
        "twilio" => &["url", "account_sid", "auth_token", "from"],
        "webhook" => &["url", "bearer_token"],
        other => return Err(format!("{sec}.provider: unknown provider {other:?} (known: log, smtp, twilio, webhook)")),
    };
    for k in m.keys() {
        if !TEMPLATE_KEYS.contains(&k.as_str()) && !provider_keys.contains(&k.as_str()) {
            let mut known: Vec<&str> = TEMPLATE_KEYS.to_vec();
            known.extend_from_slice(provider_keys);
            return Err(format!("unknown key {sec}.{k} for provider {provider_name} (known: {})", known.join(", ")));
        }
    }
    let required = |key: &str| -> Result<String, String> {
        string(m, &sec, key)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("{sec}.{key} is required for provider {provider_name}"))
    };
    let provider = match provider_name.as_str() {
        "log" => ProviderConfig::Log,
        "smtp" => {
            if ch != Channel::Email {
                return Err(format!("{sec}.provider: smtp can only send email"));
            }
            ProviderConfig::Smtp { url: required("smtp_url")?, from: required("from")? }
        }
        "twilio" => {
            if ch == Channel::Email {
                return Err(format!("{sec}.provider: twilio sends sms and voice, not email"));
            }
            let mut from = required("from")?;
            if matches!(m.get("from"), Some(Value::Number(_))) {
                // `TESSERA_DELIVERY__SMS__FROM=+15550001` is read as the number 15550001.
                from = format!("+{from}");
            }
            ProviderConfig::Twilio {
                url: string(m, &sec, "url")?.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "https://api.twilio.com".into()),
                account_sid: required("account_sid")?,
                auth_token: required("auth_token")?,
                from,
            }
        }
        _ => ProviderConfig::Webhook { url: required("url")?, bearer_token: string(m, &sec, "bearer_token")?.filter(|s| !s.is_empty()) },
    };
    Ok(ChannelConfig {
        provider,
        template: string(m, &sec, "template")?,
        subject: string(m, &sec, "subject")?,
        welcome_template: string(m, &sec, "welcome_template")?,
        welcome_subject: string(m, &sec, "welcome_subject")?,
    })
}

fn string(m: &Map<String, Value>, sec: &str, key: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(format!("{sec}.{key} must be a string")),
    }
}

fn int(m: &Map<String, Value>, sec: &str, key: &str) -> Result<Option<i64>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("{sec}.{key} must be an integer")),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| format!("{sec}.{key} must be an integer")),
        Some(_) => Err(format!("{sec}.{key} must be an integer")),
    }
}

fn in_range(name: &str, v: i64, lo: i64, hi: i64) -> Result<i64, String> {
    if v < lo || v > hi {
        Err(format!("{name} must be between {lo} and {hi}"))
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nothing_configured_means_log_everywhere() {
        let c = DeliveryConfig::from_value(&Value::Null).expect("config");
        for ch in Channel::ALL {
            assert_eq!(c.channel(ch).provider.kind(), "log");
        }
        assert_eq!(c.timeout, Duration::from_secs(10));
    }

    #[test]
    fn channels_and_providers() {
        let v = json!({
            "timeout_seconds": "5",
            "email": {"provider": "SMTP", "smtp_url": "smtp://u:p@127.0.0.1:2525", "from": "a@b.c", "subject": "S {account}"},
            "sms": {"provider": "webhook", "url": "http://127.0.0.1:1/x", "bearer_token": "tok"},
            "voice": {"provider": "twilio", "account_sid": "AC1", "auth_token": "secret-token", "from": 15550001}
        });
        let c = DeliveryConfig::from_value(&v).expect("config");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.email.provider.kind(), "smtp");
        assert_eq!(c.email.subject.as_deref(), Some("S {account}"));
        match &c.voice.provider {
            ProviderConfig::Twilio { url, from, .. } => {
                assert_eq!(url, "https://api.twilio.com");
                assert_eq!(from, "+15550001");
            }
            other => panic!("unexpected {other:?}"),
        }
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret-token") && !dbg.contains("tok\"") && !dbg.contains(":p@"), "{dbg}");
    }

    #[test]
    fn mistakes_are_named() {
        let e = |v: Value| DeliveryConfig::from_value(&v).err().unwrap_or_default();
        assert!(e(json!({"sms": {"url": "x"}})).contains("delivery.sms.provider is missing"));
        assert!(e(json!({"sms": {"provider": "smtp", "smtp_url": "smtp://x", "from": "a@b"}})).contains("only send email"));
        assert!(e(json!({"email": {"provider": "twilio"}})).contains("not email"));
        assert!(e(json!({"sms": {"provider": "webhook"}})).contains("delivery.sms.url is required"));
        assert!(e(json!({"sms": {"provider": "webhook", "url": "http://x", "ulr": "y"}})).contains("unknown key delivery.sms.ulr"));
        assert!(e(json!({"sms": {"provider": "pigeon"}})).contains("unknown provider"));
        assert!(e(json!({"timeout_seconds": 0})).contains("between"));
        assert!(e(json!({"bogus": 1})).contains("unknown key delivery.bogus"));
        assert!(e(json!({"voice": {"provider": "twilio", "account_sid": "A", "from": "+1"}})).contains("auth_token is required"));
    }
}
