//! Loads [`Settings`]: defaults, then the optional TOML file, then `TESSERA_*` environment
//! variables (`TESSERA_LISTEN`, `TESSERA_DATABASE_URL`, `TESSERA_DATA_DIR`, `TESSERA_MASTER_KEY`,
//! and `TESSERA_<SECTION>__<KEY>` for keys inside a section, e.g. `TESSERA_OTP__MAX_FAILURES`).

use anyhow::Context;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use std::path::Path;
use tessera_core::config::Settings;

/// Environment variables that are not settings (used by the test harness and tooling).
/// `TESSERA_LOG` is a tracing filter read by the CLI, not the `[log]` section.
const NOT_SETTINGS: &[&str] = &["TEST_PG_ADMIN_URL", "BIN", "LOG"];

pub fn load(config_file: Option<&Path>) -> anyhow::Result<Settings> {
    let mut fig = Figment::new();
    if let Some(path) = config_file {
        if !path.exists() {
            anyhow::bail!("config file {} does not exist", path.display());
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(Env::prefixed("TESSERA_").filter(|k| !NOT_SETTINGS.iter().any(|n| k.as_str().eq_ignore_ascii_case(n))).split("__"));
    let mut settings: Settings = fig.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    raw_delivery_env(&mut settings.delivery);
    validate(&settings)?;
    Ok(settings)
}

/// `TESSERA_DELIVERY__<CHANNEL>__<KEY>` values are taken as written: figment would read
/// `+15550001` or an all-digit token as a number (dropping the `+` or leading zeros).
fn raw_delivery_env(delivery: &mut serde_json::Value) {
    for (k, v) in std::env::vars() {
        let Some(rest) = k.strip_prefix("TESSERA_DELIVERY__") else { continue };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(|p| p.is_empty()) {
            continue;
        }
        if !delivery.is_object() {
            *delivery = serde_json::Value::Object(serde_json::Map::new());
        }
        let mut node = &mut *delivery;
        for (i, key) in path.iter().enumerate() {
            let Some(map) = node.as_object_mut() else { break };
            if i + 1 == path.len() {
                map.insert(key.clone(), serde_json::Value::String(v.clone()));
                break;
            }
            let child = map.entry(key.clone()).or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !child.is_object() {
                *child = serde_json::Value::Object(serde_json::Map::new());
            }
            node = child;
        }
    }
}

fn validate(s: &Settings) -> anyhow::Result<()> {
    if let Some(k) = s.master_key.as_deref().filter(|k| !k.is_empty()) {
        tessera_core::crypto::MasterKey::from_hex(k).map_err(|e| anyhow::anyhow!("TESSERA_MASTER_KEY / master_key: {e}"))?;
    }
    s.listen.parse::<std::net::SocketAddr>().with_context(|| format!("listen address {:?} is not host:port", s.listen))?;
    if s.otp.max_failures < 1 || s.otp.lockout_seconds < 0 || s.otp.send_limit < 1 || s.otp.sent_code_lifetime_seconds < 1 {
        anyhow::bail!(
            "otp settings out of range (max_failures >= 1, lockout_seconds >= 0, send_limit >= 1, sent_code_lifetime_seconds >= 1)"
        );
    }
    let sv = &s.server;
    if sv.header_timeout_seconds < 1 || sv.body_timeout_seconds < 1 || sv.idle_timeout_seconds < 1 {
        anyhow::bail!("server settings out of range (header_timeout_seconds, body_timeout_seconds, idle_timeout_seconds >= 1)");
    }
    let set = |p: &Option<std::path::PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
    if set(&s.tls.cert_file) != set(&s.tls.key_file) {
        anyhow::bail!("[tls] needs both cert_file and key_file (PEM), or neither");
    }
    if let Some(r) = s.radius.listen.as_deref().filter(|l| !l.trim().is_empty()) {
        r.trim().parse::<std::net::SocketAddr>().with_context(|| format!("[radius] listen address {r:?} is not host:port"))?;
    }
    if s.radius.challenge_seconds < 1 || s.radius.max_in_flight < 1 {
        anyhow::bail!("radius settings out of range (challenge_seconds >= 1, max_in_flight >= 1)");
    }
    validate_data_contract_namespace(&s.soap.data_contract_namespace)
        .map_err(|e| anyhow::anyhow!("soap.data_contract_namespace / TESSERA_SOAP__DATA_CONTRACT_NAMESPACE: {e}"))?;
    Ok(())
}

/// Namespaces the WSDL and the SOAP envelope already use for something else.
const RESERVED_NAMESPACES: &[&str] = &[
    "http://www.w3.org/2001/XMLSchema",
    "http://www.w3.org/2001/XMLSchema-instance",
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://schemas.xmlsoap.org/wsdl/",
    "http://schemas.xmlsoap.org/wsdl/soap/",
    "http://www.w3.org/2006/05/addressing/wsdl",
    "http://schemas.microsoft.com/2003/10/Serialization/",
];

/// The data-contract namespace must be an absolute URI (`scheme:rest`) of at most 1024 visible
/// ASCII characters, none of which needs escaping in XML, and not a namespace the SOAP front door
/// already uses for something else.
fn validate_data_contract_namespace(ns: &str) -> anyhow::Result<()> {
    if ns.is_empty() || ns.len() > 1024 {
        anyhow::bail!(
            "must be an absolute URI of 1 to 1024 characters, e.g. http://schemas.datacontract.org/2004/07/SurePassID.AuthServer"
        );
    }
    if let Some(c) = ns.chars().find(|c| !c.is_ascii_graphic() || "<>\"'&`{}|\\^".contains(*c)) {
        anyhow::bail!("{:?} may not appear in it (visible ASCII URI characters only)", c);
    }
    let scheme_ok = ns.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok {
        anyhow::bail!("{ns:?} is not an absolute URI (scheme:rest, e.g. http://... or urn:...)");
    }
    if RESERVED_NAMESPACES.contains(&ns) {
        anyhow::bail!("{ns} is reserved (the WSDL and the SOAP envelope use it)");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_sections_split() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("t.toml", "listen = \"127.0.0.1:9000\"\n[otp]\nmax_failures = 4\nsend_limit = 2\n")?;
            jail.set_env("TESSERA_OTP__MAX_FAILURES", "7");
            jail.set_env("TESSERA_DATA_DIR", "/tmp/x");
            let s = load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.listen, "127.0.0.1:9000");
            assert_eq!(s.otp.max_failures, 7);
            assert_eq!(s.otp.send_limit, 2);
            assert_eq!(s.data_dir, std::path::PathBuf::from("/tmp/x"));
            Ok(())
        });
    }

    #[test]
    fn delivery_channels_come_from_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[delivery.email]\nprovider = \"smtp\"\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"a@example.com\"\n\
                 template = \"Code {code}\"\n[delivery.sms]\nprovider = \"webhook\"\nurl = \"http://127.0.0.1:1/a\"\n",
            )?;
            jail.set_env("TESSERA_DELIVERY__SMS__URL", "http://127.0.0.1:2/b");
            jail.set_env("TESSERA_DELIVERY__VOICE__PROVIDER", "twilio");
            jail.set_env("TESSERA_DELIVERY__VOICE__ACCOUNT_SID", "AC123");
            jail.set_env("TESSERA_DELIVERY__VOICE__AUTH_TOKEN", "0123456789");
            jail.set_env("TESSERA_DELIVERY__VOICE__FROM", "+15550001");
            let s = load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            let c = tessera_delivery::DeliveryConfig::from_value(&s.delivery)?;
            assert_eq!(c.email.provider.kind(), "smtp");
            assert_eq!(c.email.template.as_deref(), Some("Code {code}"));
            match (&c.sms.provider, &c.voice.provider) {
                (
                    tessera_delivery::ProviderConfig::Webhook { url, .. },
                    tessera_delivery::ProviderConfig::Twilio { account_sid, auth_token, from, .. },
                ) => {
                    assert_eq!(url, "http://127.0.0.1:2/b");
                    assert_eq!(account_sid, "AC123");
                    assert_eq!(auth_token, "0123456789");
                    assert_eq!(from, "+15550001");
                }
                other => panic!("unexpected providers {other:?}"),
            }
            Ok(())
        });
    }

    #[test]
    fn tessera_log_is_not_a_setting() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA_LOG", "warn,tessera=debug");
            jail.set_env("TESSERA_LOG__FORMAT", "json");
            let s = load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.log.format, "json");
            assert_eq!(s.log.level, "info");
            Ok(())
        });
    }

    #[test]
    fn data_contract_namespace_from_file_env_and_checked() {
        figment::Jail::expect_with(|jail| {
            let s = load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.soap.data_contract_namespace, "http://schemas.datacontract.org/2004/07/SurePassID.AuthServer");
            jail.create_file("t.toml", "[soap]\ndata_contract_namespace = \"http://schemas.datacontract.org/2004/07/Acme.Mfa\"\n")?;
            let s = load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.soap.data_contract_namespace, "http://schemas.datacontract.org/2004/07/Acme.Mfa");
            jail.set_env("TESSERA_SOAP__DATA_CONTRACT_NAMESPACE", "urn:acme:auth");
            let s = load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.soap.data_contract_namespace, "urn:acme:auth");
            for bad in ["", "no-scheme", "http://a b", "http://x/\"><y", "1http://x", "http://www.w3.org/2001/XMLSchema-instance"] {
                jail.set_env("TESSERA_SOAP__DATA_CONTRACT_NAMESPACE", bad);
                let e = load(None).err().map(|e| e.to_string()).unwrap_or_default();
                assert!(e.contains("data_contract_namespace"), "{bad:?}: {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn radius_section_is_read_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("t.toml", "[radius]\nlisten = \"127.0.0.1:1812\"\nchallenge_seconds = 60\n")?;
            jail.set_env("TESSERA_RADIUS__CLIENT_REFRESH_MS", "500");
            let s = load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.radius.listen.as_deref(), Some("127.0.0.1:1812"));
            assert_eq!((s.radius.challenge_seconds, s.radius.client_refresh_ms, s.radius.max_in_flight), (60, 500, 1024));
            jail.set_env("TESSERA_RADIUS__LISTEN", "not an address");
            let e = load(Some(Path::new("t.toml"))).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("[radius] listen"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|_jail| {
            assert_eq!(load(None).map_err(|e| e.to_string())?.radius.listen, None, "RADIUS is off by default");
            Ok(())
        });
    }

    #[test]
    fn bad_master_key_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA_MASTER_KEY", "abc");
            let e = load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("64 hex"), "{e}");
            Ok(())
        });
    }
}
