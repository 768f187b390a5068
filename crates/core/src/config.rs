//! Settings: what an operator can configure (TOML file, then `TESSERA_*` environment variables).
//!
//! Loading lives in the server crate; this module only describes the settings and their defaults.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite://path` or `postgres://...`; empty = `<data_dir>/tessera.db`.
    pub database_url: Option<String>,
    /// Holds the SQLite file, the master key and initial-account.json.
    pub data_dir: PathBuf,
    /// 64 hex characters; empty = read or create `<data_dir>/master.key`.
    pub master_key: Option<String>,
    /// Connection pool size.
    pub db_max_connections: u32,
    pub otp: OtpSettings,
    pub session: SessionSettings,
    pub u2f: U2fSettings,
    pub log: LogSettings,
    /// Delivery providers, raw (read by the delivery module).
    pub delivery: serde_json::Value,
    pub soap: SoapSettings,
    pub radius: RadiusSettings,
    /// Connection limits of the HTTP listener.
    pub server: ServerSettings,
    /// HTTPS: when a certificate and key are set, the listener speaks TLS only.
    pub tls: TlsSettings,
}

impl Settings {
    /// True when the HTTP listener serves HTTPS only (`[tls] cert_file` and `key_file` set). Anything that
    /// depends on the transport (e.g. `Secure` cookies) asks this.
    pub fn tls_enabled(&self) -> bool {
        self.tls.enabled()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &self.database_url.as_ref().map(|u| redact_url(u)))
            .field("data_dir", &self.data_dir)
            .field("master_key", &self.master_key.as_ref().map(|_| "<redacted>"))
            .field("otp", &self.otp)
            .field("server", &self.server)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Hides a password inside a URL (`postgres://u:secret@h/db` -> `postgres://u:***@h/db`).
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        if let Some(at) = rest.find('@') {
            let creds = &rest[..at];
            if let Some(colon) = creds.find(':') {
                return format!("{}://{}:***@{}", &url[..scheme_end], &creds[..colon], &rest[at + 1..]);
            }
        }
    }
    url.to_string()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            database_url: None,
            data_dir: PathBuf::from("./tessera-data"),
            master_key: None,
            db_max_connections: 8,
            otp: OtpSettings::default(),
            session: SessionSettings::default(),
            u2f: U2fSettings::default(),
            log: LogSettings::default(),
            delivery: serde_json::Value::Null,
            soap: SoapSettings::default(),
            radius: RadiusSettings::default(),
            server: ServerSettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OtpSettings {
    pub max_failures: i64,
    pub lockout_seconds: i64,
    pub sent_code_lifetime_seconds: i64,
    pub send_limit: i64,
    pub send_window_seconds: i64,
    /// HOTP look-ahead when the device sets none.
    pub hotp_window: i64,
    /// TOTP steps accepted either side when the device sets none.
    pub totp_steps: i64,
    /// Counters searched by activation / resync.
    pub resync_hotp_window: i64,
    /// Seconds either side searched by activation / resync for TOTP.
    pub resync_totp_seconds: i64,
    /// Prefix of generated psns.
    pub psn_prefix: String,
    /// Issuer shown in authenticator apps (otpauth URI).
    pub issuer: String,
}

impl Default for OtpSettings {
    fn default() -> Self {
        OtpSettings {
            max_failures: 10,
            lockout_seconds: 900,
            sent_code_lifetime_seconds: 300,
            send_limit: 5,
            send_window_seconds: 900,
            hotp_window: 10,
            totp_steps: 1,
            resync_hotp_window: 1000,
            resync_totp_seconds: 86400,
            psn_prefix: "TESS".into(),
            issuer: "Tessera".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SessionSettings {
    pub default_minutes: i64,
    pub max_minutes: i64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { default_minutes: 30, max_minutes: 43200 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct U2fSettings {
    pub ceremony_seconds: i64,
}

impl Default for U2fSettings {
    fn default() -> Self {
        U2fSettings { ceremony_seconds: 300 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info` or `tessera=debug`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: "text".into(), level: "info".into() }
    }
}

/// The WCF/SOAP front door (docs/api.md, "SOAP (WCF)").
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SoapSettings {
    /// XML namespace of the data contracts (the result types), in the WSDL and in every reply. A
    /// WCF proxy reads reply members only in the namespace its generated code names.
    pub data_contract_namespace: String,
}

/// The data-contract namespace Tessera uses unless configured otherwise.
pub const DEFAULT_DATA_CONTRACT_NAMESPACE: &str = "http://schemas.datacontract.org/2004/07/SurePassID.AuthServer";

impl Default for SoapSettings {
    fn default() -> Self {
        SoapSettings { data_contract_namespace: DEFAULT_DATA_CONTRACT_NAMESPACE.into() }
    }
}

/// The RADIUS front door (`[radius]`, env `TESSERA_RADIUS__<KEY>`); see docs/operations.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RadiusSettings {
    /// UDP address to listen on, e.g. `127.0.0.1:1812`; unset or empty = RADIUS is off.
    pub listen: Option<String>,
    /// How long an Access-Challenge's State can be answered (seconds).
    pub challenge_seconds: i64,
    /// How often the client table is re-read from the database (milliseconds).
    pub client_refresh_ms: u64,
    /// Requests evaluated at once; datagrams beyond it are dropped (the NAS retransmits).
    pub max_in_flight: usize,
}

impl Default for RadiusSettings {
    fn default() -> Self {
        RadiusSettings { listen: None, challenge_seconds: 120, client_refresh_ms: 2000, max_in_flight: 1024 }
    }
}

/// `[server]`: how long a client may take (docs/operations.md, "Connections").
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// A request's headers must have arrived this many seconds after its first byte (or after the connection
    /// opened); else 408 and the connection is closed.
    pub header_timeout_seconds: u64,
    /// A request's body must have arrived this many seconds after its headers; else 408.
    pub body_timeout_seconds: u64,
    /// A keep-alive connection with no request in progress is closed after this many seconds.
    pub idle_timeout_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings { header_timeout_seconds: 10, body_timeout_seconds: 30, idle_timeout_seconds: 60 }
    }
}

/// `[tls]`: PEM files of the server's certificate chain and private key. Both set = HTTPS only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// The certificate chain (leaf first), PEM.
    pub cert_file: Option<PathBuf>,
    /// The private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_file: Option<PathBuf>,
}

impl TlsSettings {
    /// Both files are configured (an empty path counts as unset).
    pub fn enabled(&self) -> bool {
        let set = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
        set(&self.cert_file) && set(&self.key_file)
    }
}
