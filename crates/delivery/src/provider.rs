//! The provider interface and the classification of failures.
//!
//! A failure is either transient (retried with back-off until the message expires) or permanent
//! (the message is marked failed, and `send_oath_otp` reports 9012 / 9031 if it is still waiting).
//! HTTP: 5xx, 408, 429, a timeout or a refused connection are transient; other 4xx are permanent.
//! SMTP: a 4xx reply, a timeout or a connection failure is transient; a 5xx reply is permanent.

use tessera_core::service::delivery::Channel;

/// One message as a provider sends it.
pub struct Message<'a> {
    pub channel: Channel,
    /// E.164 number (sms, voice) or email address.
    pub to: &'a str,
    /// Email subject (empty otherwise).
    pub subject: &'a str,
    /// The text; may carry a passcode, so it is never logged (except by the `log` provider).
    pub body: &'a str,
    /// The account (tenant) name.
    pub account: &'a str,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("body", &"<redacted>")
            .field("account", &self.account)
            .finish()
    }
}

/// Why an attempt failed. The text is for operators (outbox `last_error`, the log) and never
/// carries the message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
    pub fn text(&self) -> &str {
        match self {
            SendError::Transient(s) | SendError::Permanent(s) => s,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient(s) => write!(f, "transient: {s}"),
            SendError::Permanent(s) => write!(f, "permanent: {s}"),
        }
    }
}

/// A way to deliver messages.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// `smtp`, `twilio`, `webhook` or `log`.
    fn kind(&self) -> &'static str;
    /// One attempt. Implementations bound their own I/O; the worker adds an outer timeout too.
    async fn send(&self, msg: &Message<'_>) -> Result<(), SendError>;
}

/// Classifies an HTTP status: `None` for success (2xx), else the kind of failure.
pub fn classify_http(status: u16, detail: &str) -> Option<SendError> {
    let what = if detail.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {detail}") };
    match status {
        200..=299 => None,
        408 | 425 | 429 => Some(SendError::Transient(what)),
        500..=599 => Some(SendError::Transient(what)),
        _ => Some(SendError::Permanent(what)),
    }
}

/// Classifies a reqwest error (no response): timeouts and connection failures are transient;
/// a request that could not even be built (bad URL) is permanent. The URL is left out of the text.
pub fn classify_reqwest(e: reqwest::Error) -> SendError {
    let builder = e.is_builder();
    let timeout = e.is_timeout();
    let connect = e.is_connect();
    let text = e.without_url().to_string();
    if builder {
        SendError::Permanent(format!("request could not be built: {text}"))
    } else if timeout {
        SendError::Transient(format!("timeout: {text}"))
    } else if connect {
        SendError::Transient(format!("connection failed: {text}"))
    } else {
        SendError::Transient(text)
    }
}

/// Classifies an SMTP failure: 5xx replies and client-side errors (a bad address) are permanent;
/// 4xx replies, timeouts, connection and TLS failures are transient.
pub fn classify_smtp(e: &lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    if e.is_permanent() || e.is_client() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses() {
        assert_eq!(classify_http(200, ""), None);
        assert_eq!(classify_http(201, "x"), None);
        assert!(matches!(classify_http(500, ""), Some(SendError::Transient(_))));
        assert!(matches!(classify_http(503, ""), Some(SendError::Transient(_))));
        assert!(matches!(classify_http(429, ""), Some(SendError::Transient(_))));
        assert!(matches!(classify_http(400, ""), Some(SendError::Permanent(_))));
        assert!(matches!(classify_http(401, ""), Some(SendError::Permanent(_))));
        assert!(matches!(classify_http(404, ""), Some(SendError::Permanent(_))));
        assert!(matches!(classify_http(301, ""), Some(SendError::Permanent(_))));
        assert_eq!(classify_http(400, "bad number").map(|e| e.text().to_string()).as_deref(), Some("HTTP 400: bad number"));
    }
}
