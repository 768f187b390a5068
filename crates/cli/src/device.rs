//! `tessera device import` and `tessera device list`: an account's hardware-token inventory.
//!
//! Import reads a PSKC or CSV seed file (parsed by `tessera_core::import`), refuses the whole file
//! on the first fault or on a psn the account already has, seals every seed with the master key
//! (bound to account and psn) and inserts all tokens in one transaction as unassigned hardware
//! tokens (deviceType 14), ready for `assign_device`. Nothing is ever half-imported.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tessera_core::config::Settings;
use tessera_core::error::StoreError;
use tessera_core::import::{self, Format, TokenKind, MAX_FILE_BYTES};
use tessera_core::service::accounts;
use tessera_core::store::DeviceRow;
use tessera_server::app;
use zeroize::Zeroizing;

/// deviceType of an OATH hardware token (docs/api.md).
const HARDWARE_TOKEN: i64 = 14;
const OTP_HOTP: i64 = 1;
const OTP_TOTP: i64 = 2;

#[derive(Subcommand)]
pub enum DeviceCmd {
    /// Import hardware tokens from a PSKC (RFC 6030) or CSV seed file into the account's
    /// unassigned inventory; the whole file or nothing.
    ///
    /// CSV lines: serial,seed_hex,type,digits,counter_or_step[,algorithm] (type hotp|totp, digits 6|8,
    /// the next HOTP counter or the TOTP step 30|60, algorithm SHA1|SHA256|SHA512); `#` comments and
    /// a `serial,...` header line are skipped.
    Import {
        /// The account (tenant) whose inventory receives the tokens.
        #[arg(long)]
        account: String,
        /// The seed file.
        file: PathBuf,
        /// File format; by default XML is PSKC and anything else CSV.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        /// Pre-shared key (hex, 16/24/32 bytes) of an encrypted PSKC file.
        #[arg(long, value_name = "HEX", conflicts_with = "psk_file")]
        psk: Option<String>,
        /// Reads the pre-shared key (hex) from a file instead, keeping it out of the process list.
        #[arg(long, value_name = "FILE")]
        psk_file: Option<PathBuf>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the account's devices (psn, type, OTP type, assigned user, status).
    List {
        #[arg(long)]
        account: String,
        /// Only the unassigned inventory.
        #[arg(long)]
        unassigned: bool,
        #[arg(long, default_value_t = 10_000)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Pskc,
    Csv,
}

pub async fn run(settings: &Settings, cmd: DeviceCmd, now: i64) -> anyhow::Result<()> {
    match cmd {
        DeviceCmd::Import { account, file, format, psk, psk_file, json } => {
            let format = format.map(|f| match f {
                FileFormat::Pskc => Format::Pskc,
                FileFormat::Csv => Format::Csv,
            });
            import_file(settings, &account, &file, format, read_psk(psk, psk_file.as_deref())?, json, now).await
        }
        DeviceCmd::List { account, unassigned, limit, json } => list(settings, &account, unassigned, limit, json).await,
    }
}

fn read_psk(psk: Option<String>, psk_file: Option<&Path>) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    let text = match (psk, psk_file) {
        (Some(hex), _) => Zeroizing::new(hex),
        (None, Some(path)) => Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("cannot read the pre-shared key file {}", path.display()))?,
        ),
        (None, None) => return Ok(None),
    };
    let bytes = Zeroizing::new(
        hex::decode(text.trim()).map_err(|_| anyhow::anyhow!("the pre-shared key must be hexadecimal (32, 48 or 64 hex digits)"))?,
    );
    if ![16, 24, 32].contains(&bytes.len()) {
        anyhow::bail!("the pre-shared key must be 16, 24 or 32 bytes (AES-128/192/256), not {}", bytes.len());
    }
    Ok(Some(bytes))
}

/// The file's bytes, refusing one over the import limit without reading all of it.
fn read_limited(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
    if buf.len() > MAX_FILE_BYTES {
        anyhow::bail!("{}: larger than {} MB; nothing was imported", path.display(), MAX_FILE_BYTES / (1024 * 1024));
    }
    Ok(buf)
}

async fn import_file(
    settings: &Settings,
    account: &str,
    file: &Path,
    format: Option<Format>,
    psk: Option<Zeroizing<Vec<u8>>>,
    as_json: bool,
    now: i64,
) -> anyhow::Result<()> {
    let data = read_limited(file)?;
    let tokens = import::parse(&data, format, psk.as_deref().map(Vec::as_slice))
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was imported", file.display()))?;
    drop(data);

    app::ensure_data_dir(&settings.data_dir)?;
    let key = app::load_master_key(settings)?;
    let store = app::open_store(settings, &key).await?;
    let acct = accounts::get(&*store, account).await?;
    for t in &tokens {
        if store.device_by_psn(acct.id, &t.psn).await?.is_some() {
            anyhow::bail!("{}: {}: psn {:?} already exists in account {account}; nothing was imported", file.display(), t.location, t.psn);
        }
    }
    let rows: Vec<DeviceRow> = tokens
        .iter()
        .map(|t| {
            let (otp_type, time_step, counter) = match t.kind {
                TokenKind::Hotp { counter } => (OTP_HOTP, 30, i64::try_from(counter).unwrap_or(i64::MAX)),
                TokenKind::Totp { step } => (OTP_TOTP, i64::from(step), 0),
            };
            DeviceRow {
                account_id: acct.id,
                user_id: None,
                psn: t.psn.clone(),
                device_type: HARDWARE_TOKEN,
                otp_type,
                status: 0,
                activated: true,
                seed: Some(key.seal_seed(acct.id, &t.psn, &t.seed)),
                algorithm: t.algorithm.as_str().to_string(),
                digits: i64::from(t.digits),
                time_step,
                counter,
                created_at: now,
                ..DeviceRow::default()
            }
        })
        .collect();
    match store.import_devices(&rows).await {
        Ok(_) => {}
        Err(StoreError::Conflict) => {
            anyhow::bail!("a psn of {} was added to account {account} meanwhile; nothing was imported", file.display())
        }
        Err(e) => return Err(anyhow::anyhow!("storage error: {e}; nothing was imported")),
    }
    if as_json {
        let psns: Vec<&str> = tokens.iter().map(|t| t.psn.as_str()).collect();
        println!("{}", json!({"account": account, "imported": tokens.len(), "psns": psns}));
    } else {
        println!("imported {} hardware token(s) into the unassigned inventory of account {account}", tokens.len());
    }
    Ok(())
}

fn device_type_name(t: i64) -> &'static str {
    match t {
        12 => "u2f",
        13 => "soft",
        14 => "hardware",
        15 => "out-of-band",
        _ => "other",
    }
}

fn otp_type_name(t: i64) -> &'static str {
    match t {
        1 => "hotp",
        2 => "totp",
        3 => "ocra",
        8 => "u2f",
        _ => "other",
    }
}

async fn list(settings: &Settings, account: &str, unassigned: bool, limit: i64, as_json: bool) -> anyhow::Result<()> {
    app::ensure_data_dir(&settings.data_dir)?;
    let key = app::load_master_key(settings)?;
    let store = app::open_store(settings, &key).await?;
    let acct = accounts::get(&*store, account).await?;
    let limit = limit.clamp(1, 1_000_000);
    let devices = if unassigned { store.unassigned_devices(acct.id, limit).await? } else { store.account_devices(acct.id, limit).await? };
    let mut usernames: HashMap<i64, Option<String>> = HashMap::new();
    for d in devices {
        let username = match d.user_id {
            None => None,
            Some(uid) => match usernames.get(&uid) {
                Some(name) => name.clone(),
                None => {
                    let name = store.user_by_id(acct.id, uid).await?.map(|u| u.username);
                    usernames.insert(uid, name.clone());
                    name
                }
            },
        };
        let status = if d.status == 0 { "enabled" } else { "disabled" };
        if as_json {
            println!(
                "{}",
                json!({"psn": d.psn, "deviceType": d.device_type, "otpType": d.otp_type, "userId": d.user_id,
                       "username": username, "status": d.status, "activated": d.activated})
            );
        } else {
            println!(
                "{}\t{}\t{}\t{}\t{status}",
                d.psn,
                device_type_name(d.device_type),
                otp_type_name(d.otp_type),
                username.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
