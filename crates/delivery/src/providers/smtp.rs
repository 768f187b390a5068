//! Email over SMTP with lettre.
//!
//! URL forms: `smtp://host[:port]` (plain, port 25), `smtp://host:587?tls=starttls` or
//! `starttls://host[:port]` (STARTTLS required, port 587), `smtp://…?tls=opportunistic` (STARTTLS
//! when offered), `smtps://host[:port]` (implicit TLS, port 465). `user:password@` in the URL
//! (percent-encoded) logs in. Every connection and command is bounded by the delivery timeout.

use crate::provider::{classify_smtp, Message, Provider, SendError};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

pub struct SmtpProvider {
    how: How,
    from: Mailbox,
    timeout: Duration,
    /// The URL without its password, for messages.
    shown: String,
}

/// How a message is handed over.
enum How {
    /// Plain or STARTTLS: our own TCP connection with `TCP_NODELAY` (lettre's would wait ~40 ms on
    /// Nagle + delayed ACK before the end of every message), then lettre's SMTP client on it.
    Direct {
        host: String,
        port: u16,
        /// STARTTLS parameters, and whether STARTTLS is required (else opportunistic).
        starttls: Option<(TlsParameters, bool)>,
        credentials: Option<Credentials>,
    },
    /// Implicit TLS (smtps): lettre's transport.
    Transport(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for SmtpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpProvider").field("url", &self.shown).field("from", &self.from.to_string()).finish()
    }
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    Plain,
    StartTlsRequired,
    StartTlsOpportunistic,
    ImplicitTls,
}

/// A parsed SMTP URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Parses `smtp://`, `starttls://` and `smtps://` URLs (see the module docs).
pub fn parse_smtp_url(url: &str) -> Result<SmtpUrl, String> {
    let u = reqwest::Url::parse(url.trim()).map_err(|e| format!("smtp_url is not a valid URL: {e}"))?;
    let mut tls_param = None;
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "tls" => tls_param = Some(v.to_ascii_lowercase()),
            other => return Err(format!("smtp_url: unknown parameter {other:?} (known: tls)")),
        }
    }
    let security = match (u.scheme(), tls_param.as_deref()) {
        ("smtp", None | Some("none")) => SmtpSecurity::Plain,
        ("smtp", Some("starttls" | "required")) | ("starttls", None | Some("starttls" | "required")) => SmtpSecurity::StartTlsRequired,
        ("smtp" | "starttls", Some("opportunistic")) => SmtpSecurity::StartTlsOpportunistic,
        ("smtps", None | Some("implicit" | "wrapper")) => SmtpSecurity::ImplicitTls,
        ("smtp" | "starttls" | "smtps", Some(other)) => {
            return Err(format!("smtp_url: tls={other} is not one of none, starttls, opportunistic (smtps:// is implicit TLS)"))
        }
        (other, _) => return Err(format!("smtp_url: scheme {other}:// is not smtp://, starttls:// or smtps://")),
    };
    let host = u.host_str().filter(|h| !h.is_empty()).ok_or("smtp_url has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = u.port().unwrap_or(match security {
        SmtpSecurity::Plain => 25,
        SmtpSecurity::StartTlsRequired | SmtpSecurity::StartTlsOpportunistic => 587,
        SmtpSecurity::ImplicitTls => 465,
    });
    let user = Some(percent_decode(u.username())?).filter(|s| !s.is_empty());
    let password = u.password().map(percent_decode).transpose()?;
    if password.is_some() && user.is_none() {
        return Err("smtp_url has a password but no user".into());
    }
    Ok(SmtpUrl { host, port, security, user, password })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or("smtp_url: bad percent-encoding")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "smtp_url: bad percent-encoding")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "smtp_url: bad percent-encoding")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "smtp_url: credentials are not UTF-8".to_string())
}

impl SmtpProvider {
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, String> {
        let parsed = parse_smtp_url(url)?;
        let from: Mailbox = from.trim().parse().map_err(|e| format!("from {from:?} is not an email address: {e}"))?;
        let tls = |host: &str| TlsParameters::new(host.to_string()).map_err(|e| format!("TLS set-up failed: {e}"));
        let credentials = parsed.user.as_ref().map(|u| Credentials::new(u.clone(), parsed.password.clone().unwrap_or_default()));
        let how = match parsed.security {
            SmtpSecurity::Plain => How::Direct { host: parsed.host.clone(), port: parsed.port, starttls: None, credentials },
            SmtpSecurity::StartTlsRequired | SmtpSecurity::StartTlsOpportunistic => How::Direct {
                host: parsed.host.clone(),
                port: parsed.port,
                starttls: Some((tls(&parsed.host)?, parsed.security == SmtpSecurity::StartTlsRequired)),
                credentials,
            },
            SmtpSecurity::ImplicitTls => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(parsed.host.clone())
                    .port(parsed.port)
                    .tls(Tls::Wrapper(tls(&parsed.host)?))
                    .timeout(Some(timeout));
                if let Some(c) = credentials {
                    builder = builder.credentials(c);
                }
                How::Transport(builder.build())
            }
        };
        Ok(SmtpProvider { how, from, timeout, shown: tessera_core::config::redact_url(url) })
    }

    async fn send_direct(
        host: &str,
        port: u16,
        starttls: &Option<(TlsParameters, bool)>,
        credentials: &Option<Credentials>,
        email: &lettre::Message,
    ) -> Result<(), SendError> {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| SendError::Transient(format!("connection to the SMTP server failed: {e}")))?;
        // Best effort: without it a message still goes, only ~40 ms slower.
        let _ = tcp.set_nodelay(true);
        let hello = ClientId::default();
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await.map_err(|e| classify_smtp(&e))?;
        let result = async {
            if let Some((params, required)) = starttls {
                if conn.can_starttls() {
                    conn.starttls(params.clone(), &hello).await.map_err(|e| classify_smtp(&e))?;
                } else if *required {
                    return Err(SendError::Permanent("the SMTP server does not offer STARTTLS (tls=starttls requires it)".into()));
                }
            }
            if let Some(c) = credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await.map_err(|e| classify_smtp(&e))?;
            }
            conn.send(email.envelope(), &email.formatted()).await.map_err(|e| classify_smtp(&e))?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                let _ = conn.quit().await;
                Ok(())
            }
            Err(e) => {
                conn.abort().await;
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl Provider for SmtpProvider {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        let to: Mailbox = msg.to.parse().map_err(|e| SendError::Permanent(format!("recipient is not an email address: {e}")))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(msg.body.to_string())
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
        // The whole dialogue (connect, greeting, every reply) is bounded here.
        let attempt = async {
            match &self.how {
                How::Direct { host, port, starttls, credentials } => Self::send_direct(host, *port, starttls, credentials, &email).await,
                How::Transport(t) => t.send(email.clone()).await.map(|_| ()).map_err(|e| classify_smtp(&e)),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient(format!("timeout after {} s", self.timeout.as_secs_f32()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_smtp_url("smtp://127.0.0.1:2525").expect("plain");
        assert_eq!((u.host.as_str(), u.port, u.security, u.user.clone()), ("127.0.0.1", 2525, SmtpSecurity::Plain, None));
        let u = parse_smtp_url("smtp://me%40x.org:p%3Ass@mail.example.com?tls=starttls").expect("starttls");
        assert_eq!((u.port, u.security), (587, SmtpSecurity::StartTlsRequired));
        assert_eq!(u.user.as_deref(), Some("me@x.org"));
        assert_eq!(u.password.as_deref(), Some("p:ss"));
        assert!(!format!("{u:?}").contains("p:ss"));
        assert_eq!(parse_smtp_url("starttls://mail.example.com").map(|u| u.security), Ok(SmtpSecurity::StartTlsRequired));
        assert_eq!(parse_smtp_url("smtps://mail.example.com").map(|u| (u.port, u.security)), Ok((465, SmtpSecurity::ImplicitTls)));
        assert_eq!(parse_smtp_url("smtp://h?tls=opportunistic").map(|u| u.security), Ok(SmtpSecurity::StartTlsOpportunistic));
        assert_eq!(parse_smtp_url("smtp://[::1]:25").map(|u| u.host), Ok("::1".to_string()));
        assert!(parse_smtp_url("http://h").is_err());
        assert!(parse_smtp_url("smtp://h?tls=maybe").is_err());
        assert!(parse_smtp_url("smtp://h?foo=1").is_err());
        assert!(parse_smtp_url("not a url").is_err());
    }

    #[test]
    fn bad_from_is_refused() {
        assert!(SmtpProvider::new("smtp://127.0.0.1:25", "not an address", Duration::from_secs(1)).is_err());
        assert!(SmtpProvider::new("smtp://127.0.0.1:25", "Tessera <a@b.example>", Duration::from_secs(1)).is_ok());
    }
}
