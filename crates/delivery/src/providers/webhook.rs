//! The generic JSON webhook: `POST url` with `{"channel","to","message","account"}` (plus
//! `"subject"` for email), optionally with `Authorization: Bearer <token>`. A 2xx answer is
//! delivery; see [`crate::provider::classify_http`] for the rest.

use crate::provider::{classify_http, classify_reqwest, Message, Provider, SendError};
use serde_json::json;
use tessera_core::service::delivery::Channel;

pub struct WebhookProvider {
    client: reqwest::Client,
    url: reqwest::Url,
    bearer_token: Option<String>,
}

impl std::fmt::Debug for WebhookProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookProvider")
            .field("url", &tessera_core::config::redact_url(self.url.as_str()))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl WebhookProvider {
    pub fn new(client: reqwest::Client, url: &str, bearer_token: Option<String>) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| format!("url is not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("url must be http:// or https://".into());
        }
        Ok(WebhookProvider { client, url: parsed, bearer_token })
    }
}

/// The JSON body the webhook receives.
pub fn webhook_body(msg: &Message<'_>) -> serde_json::Value {
    let mut v = json!({"channel": msg.channel.as_str(), "to": msg.to, "message": msg.body, "account": msg.account});
    if msg.channel == Channel::Email {
        v["subject"] = json!(msg.subject);
    }
    v
}

#[async_trait::async_trait]
impl Provider for WebhookProvider {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        let mut req = self.client.post(self.url.clone()).json(&webhook_body(msg));
        if let Some(t) = &self.bearer_token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(classify_reqwest)?;
        match classify_http(resp.status().as_u16(), "") {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
