//! Twilio-compatible REST: SMS by `POST {url}/2010-04-01/Accounts/{sid}/Messages.json` (form
//! `To`, `From`, `Body`), voice by `POST …/Calls.json` (form `To`, `From`, `Twiml`) with TwiML that
//! says the message twice (the voice template spells the code digit by digit). Basic auth
//! `sid:token`. Twilio's error JSON (`code`, `message`) is kept in the failure text.

use crate::provider::{classify_http, classify_reqwest, Message, Provider, SendError};
use tessera_core::service::delivery::Channel;

pub struct TwilioProvider {
    client: reqwest::Client,
    base: String,
    account_sid: String,
    auth_token: String,
    from: String,
}

impl std::fmt::Debug for TwilioProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioProvider")
            .field("base", &self.base)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

impl TwilioProvider {
    pub fn new(client: reqwest::Client, url: &str, account_sid: &str, auth_token: &str, from: &str) -> Result<Self, String> {
        let base = url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| format!("url is not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("url must be http:// or https://".into());
        }
        let sid = account_sid.trim();
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("account_sid must be letters and digits".into());
        }
        Ok(TwilioProvider { client, base, account_sid: sid.to_string(), auth_token: auth_token.to_string(), from: from.trim().to_string() })
    }

    /// The URL a channel posts to.
    pub fn endpoint(&self, channel: Channel) -> String {
        let resource = if channel == Channel::Voice { "Calls" } else { "Messages" };
        format!("{}/2010-04-01/Accounts/{}/{resource}.json", self.base, self.account_sid)
    }
}

/// TwiML that says `text` twice, with a pause between.
pub fn twiml(text: &str) -> String {
    let t = xml_escape(text);
    format!("<Response><Say>{t}</Say><Pause length=\"1\"/><Say>{t}</Say></Response>")
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The form fields of a message.
pub fn form(from: &str, msg: &Message<'_>) -> Vec<(&'static str, String)> {
    match msg.channel {
        Channel::Voice => vec![("To", msg.to.to_string()), ("From", from.to_string()), ("Twiml", twiml(msg.body))],
        _ => vec![("To", msg.to.to_string()), ("From", from.to_string()), ("Body", msg.body.to_string())],
    }
}

#[async_trait::async_trait]
impl Provider for TwilioProvider {
    fn kind(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        if msg.channel == Channel::Email {
            return Err(SendError::Permanent("the twilio provider does not send email".into()));
        }
        let resp = self
            .client
            .post(self.endpoint(msg.channel))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form(&self.from, msg))
            .send()
            .await
            .map_err(classify_reqwest)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        // Twilio explains failures as {"code": 21211, "message": "...", ...}; keep only those two.
        let detail = match resp.json::<serde_json::Value>().await {
            Ok(v) => {
                let code = v.get("code").map(|c| c.to_string()).unwrap_or_default();
                let message: String = v.get("message").and_then(|m| m.as_str()).unwrap_or("").chars().take(200).collect();
                if code.is_empty() && message.is_empty() {
                    String::new()
                } else {
                    format!("twilio error {code}: {message}")
                }
            }
            Err(_) => String::new(),
        };
        match classify_http(status, &detail) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
