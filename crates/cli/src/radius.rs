//! `tessera radius client add|list|remove`: the RADIUS clients (NAS) of an account.
//!
//! A client is an address or CIDR range (unique over all accounts: the source address of a
//! request says which account it is for) and a shared secret, stored sealed under the master key
//! (bound to account and address) because the server must recover it to check packets. The
//! secret is never printed. A running server picks changes up within a few seconds.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use tessera_core::config::Settings;
use tessera_core::error::StoreError;
use tessera_core::service::accounts;
use tessera_core::service::radius::client_secret_context;
use tessera_core::store::RadiusClientRow;
use zeroize::Zeroizing;

/// Longest shared secret accepted (octets).
const SECRET_MAX: usize = 256;
/// Shorter secrets are accepted with a warning (RFC 6614 era advice: at least 16 random characters).
const SECRET_WEAK: usize = 16;

#[derive(Subcommand)]
pub enum RadiusCmd {
    /// RADIUS clients (NAS: VPN concentrators, firewalls, Wi-Fi controllers) of an account.
    #[command(subcommand)]
    Client(ClientCmd),
}

#[derive(Subcommand)]
pub enum ClientCmd {
    /// Add a client: requests from ADDRESS (an IP or a CIDR range) are checked with SECRET and
    /// decided for ACCOUNT.
    Add {
        account: String,
        /// IP address or CIDR range, e.g. 192.0.2.10 or 10.0.0.0/24.
        #[arg(long)]
        address: String,
        /// The shared secret (visible in the process list: prefer --secret-file).
        #[arg(long, conflicts_with = "secret_file", required_unless_present = "secret_file")]
        secret: Option<String>,
        /// Reads the shared secret from a file (one line; the line break is not part of it).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// User-Password carries the one-time passcode alone (no password check).
        #[arg(long)]
        otp_only: bool,
    },
    /// List clients (of one account, or of all); secrets are never shown.
    List {
        account: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove a client.
    Remove {
        account: String,
        #[arg(long)]
        address: String,
    },
}

fn read_secret(secret: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Zeroizing<String>> {
    let secret = match (secret, file) {
        (Some(s), _) => Zeroizing::new(s),
        (None, Some(path)) => {
            let text = Zeroizing::new(std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?);
            Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string())
        }
        (None, None) => anyhow::bail!("give --secret or --secret-file"),
    };
    if secret.is_empty() {
        anyhow::bail!("the shared secret is empty");
    }
    if secret.len() > SECRET_MAX {
        anyhow::bail!("the shared secret is longer than {SECRET_MAX} octets");
    }
    if secret.len() < SECRET_WEAK {
        eprintln!("warning: the shared secret is shorter than {SECRET_WEAK} characters; use a long random one");
    }
    Ok(secret)
}

pub async fn run(settings: &Settings, cmd: RadiusCmd, now: i64) -> anyhow::Result<()> {
    let RadiusCmd::Client(cmd) = cmd;
    let key = tessera_server::app::load_master_key(settings)?;
    let store = tessera_server::app::open_store(settings, &key).await?;
    match cmd {
        ClientCmd::Add { account, address, secret, secret_file, otp_only } => {
            let a = accounts::get(&*store, &account).await?;
            let net = tessera_radius::parse_cidr(&address).map_err(|e| anyhow::anyhow!("--address: {e}"))?;
            let address = net.to_string();
            let secret = read_secret(secret, secret_file)?;
            let row = RadiusClientRow {
                account_id: a.id,
                address: address.clone(),
                secret: key.seal_bound(&client_secret_context(a.id, &address), secret.as_bytes()),
                otp_only,
                created_at: now,
                ..Default::default()
            };
            match store.add_radius_client(&row).await {
                Ok(_) => println!("RADIUS client {address} added to {account}{}", if otp_only { " (OTP only)" } else { "" }),
                Err(StoreError::Conflict) => anyhow::bail!("a RADIUS client with address {address} already exists (remove it first)"),
                Err(e) => return Err(e.into()),
            }
        }
        ClientCmd::List { account, json } => {
            let account_id = match &account {
                Some(name) => Some(accounts::get(&*store, name).await?.id),
                None => None,
            };
            for c in store.list_radius_clients(account_id).await? {
                let created = tessera_core::service::sessions::rfc3339(c.created_at);
                if json {
                    println!("{}", json!({"account": c.account_name, "address": c.address, "otpOnly": c.otp_only, "createdAt": created}));
                } else {
                    println!("{}\t{}\t{}\t{}", c.account_name, c.address, if c.otp_only { "otp-only" } else { "password+otp" }, created);
                }
            }
        }
        ClientCmd::Remove { account, address } => {
            let a = accounts::get(&*store, &account).await?;
            let net = tessera_radius::parse_cidr(&address).map_err(|e| anyhow::anyhow!("--address: {e}"))?;
            if !store.remove_radius_client(a.id, &net.to_string()).await? {
                anyhow::bail!("account {account} has no RADIUS client {net}");
            }
            println!("RADIUS client {net} removed from {account}");
        }
    }
    Ok(())
}
