//! Loads [`Settings`]: defaults, then the optional TOML file, then `TESSERA_*` environment
//! variables (`TESSERA_LISTEN`, `TESSERA_DATABASE_URL`, `TESSERA_DATA_DIR`, `TESSERA_MASTER_KEY`,
//! and `TESSERA_<SECTION>__<KEY>` for keys inside a section, e.g. `TESSERA_OTP__MAX_FAILURES`).

use anyhow::Context;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use std::path::Path;
use tessera_core::config::Settings;

/// Environment variables that are not settings (used by the test harness and tooling).
const NOT_SETTINGS: &[&str] = &["TEST_PG_ADMIN_URL", "BIN"];

pub fn load(config_file: Option<&Path>) -> anyhow::Result<Settings> {
    let mut fig = Figment::new();
    if let Some(path) = config_file {
        if !path.exists() {
            anyhow::bail!("config file {} does not exist", path.display());
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(Env::prefixed("TESSERA_").filter(|k| !NOT_SETTINGS.iter().any(|n| k.as_str().eq_ignore_ascii_case(n))).split("__"));
    let settings: Settings = fig.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    validate(&settings)?;
    Ok(settings)
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
    Ok(())
}

#[cfg(test)]
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
    fn bad_master_key_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA_MASTER_KEY", "abc");
            let e = load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("64 hex"), "{e}");
            Ok(())
        });
    }
}
