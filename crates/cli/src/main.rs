//! The `tessera` binary: `serve`, `migrate`, `account ...`, `device import|list`, `audit list|verify|prune`.
//!
//! Every command reads the same configuration as `serve` (`--config FILE`, then `TESSERA_*`
//! environment variables). Errors are one line on stderr and a non-zero exit status.

mod device;
mod radius;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tessera_core::config::Settings;
use tessera_core::service::{accounts, audit};
use tessera_core::store::Store;
use tessera_server::{app, settings, Application};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Tessera: a SurePassID-compatible multi-factor authentication server")]
struct Cli {
    /// TOML configuration file (every key can be overridden by TESSERA_* environment variables).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (default: 127.0.0.1:8080, SQLite in ./tessera-data).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts (tenants).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Hardware-token inventory: import seed files (PSKC, CSV), list devices.
    #[command(subcommand)]
    Device(device::DeviceCmd),
    /// Read, verify and prune the audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// RADIUS clients (NAS) of an account.
    #[command(subcommand)]
    Radius(radius::RadiusCmd),
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Create an account and print its key (shown once).
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Replace an account's key and print the new one (shown once); the old key stops working.
    RotateKey {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Refuse every request of an account (9000) until enabled again.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Trusted U2F facets (origins) of an account.
    Facets {
        #[command(subcommand)]
        cmd: FacetCmd,
    },
}

#[derive(Subcommand)]
enum FacetCmd {
    Add {
        name: String,
        origin: String,
    },
    Remove {
        name: String,
        origin: String,
    },
    List {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Newest first.
    List {
        #[arg(long)]
        account: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain of every account (or of one): exits 0 when intact, otherwise non-zero
    /// naming the first row that was altered, removed or inserted.
    Verify {
        #[arg(long)]
        account: Option<String>,
    },
    /// Retention: delete the rows older than a date (of every account, and the aggregate rows of
    /// unauthenticated requests; or of one account). What remains stays verifiable.
    #[command(group(clap::ArgGroup::new("cutoff").required(true).args(["before", "older_than_days"])))]
    Prune {
        /// Delete rows older than this date (YYYY-MM-DD, midnight UTC) or RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        before: Option<String>,
        /// Delete rows older than N days.
        #[arg(long, value_name = "N")]
        older_than_days: Option<u32>,
        #[arg(long)]
        account: Option<String>,
    },
}

/// mimalloc: the request path allocates many small short-lived buffers from both runtime threads,
/// which it serves with less contention and fewer instructions than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(s: &Settings) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&s.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if s.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = settings::load(cli.config.as_deref())?;
    init_logging(&settings);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => {
                let store = open(&settings).await?;
                // Every run re-checks the usernames and lists the users set aside by a collision.
                let collisions = tessera_core::service::usernames::migrate_username_keys(&*store).await?;
                let names: std::collections::HashMap<i64, String> =
                    store.list_accounts().await?.into_iter().map(|a| (a.id, a.name)).collect();
                for c in &collisions {
                    let account = names.get(&c.account_id).cloned().unwrap_or_else(|| c.account_id.to_string());
                    println!("username collision in account {account}: {c}");
                }
                drop(store);
                if !collisions.is_empty() {
                    println!(
                        "{} user(s) set aside by username normalisation: rename or delete them (see docs/operations.md)",
                        collisions.len()
                    );
                }
                println!("database is up to date");
                Ok(())
            }
            Command::Account(cmd) => account(&settings, cmd).await,
            Command::Device(cmd) => device::run(&settings, cmd, now()).await,
            Command::Audit(cmd) => audit(&settings, cmd).await,
            Command::Radius(cmd) => radius::run(&settings, cmd, now()).await,
        }
    })
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    eprintln!("tessera listening on {}", app.local_addr());
    app.run_until(app::shutdown_signal()).await
}

async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    app::ensure_data_dir(&settings.data_dir)?;
    let key = app::load_master_key(settings)?;
    app::open_store(settings, &key).await
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn print_key(k: &accounts::IssuedKey, as_json: bool) {
    if as_json {
        println!("{}", k.to_json());
    } else {
        println!("account: {}", k.account);
        println!("key:     {}", k.key);
        println!("(the key is shown only now; store it safely)");
    }
}

async fn account(settings: &Settings, cmd: AccountCmd) -> anyhow::Result<()> {
    let store = open(settings).await?;
    match cmd {
        AccountCmd::Create { name, json } => print_key(&accounts::create(&*store, &name, now()).await?, json),
        AccountCmd::RotateKey { name, json } => print_key(&accounts::rotate_key(&*store, &name).await?, json),
        AccountCmd::Disable { name } => {
            accounts::set_enabled(&*store, &name, false).await?;
            println!("account {name} disabled");
        }
        AccountCmd::Enable { name } => {
            accounts::set_enabled(&*store, &name, true).await?;
            println!("account {name} enabled");
        }
        AccountCmd::List { json } => {
            for a in store.list_accounts().await? {
                if json {
                    println!("{}", json!({"name": a.name, "enabled": a.enabled, "createdAt": a.created_at}));
                } else {
                    println!("{}\t{}", a.name, if a.enabled { "enabled" } else { "disabled" });
                }
            }
        }
        AccountCmd::Facets { cmd } => match cmd {
            FacetCmd::Add { name, origin } => {
                let a = accounts::get(&*store, &name).await?;
                let origin = origin.trim().trim_end_matches('/').to_string();
                if !(origin.starts_with("https://")
                    || origin.starts_with("http://")
                    || origin.starts_with("android:")
                    || origin.starts_with("ios:"))
                {
                    anyhow::bail!("a facet is an origin such as https://login.example.com");
                }
                store.add_facet(a.id, &origin).await?;
                println!("facet {origin} trusted for {name}");
            }
            FacetCmd::Remove { name, origin } => {
                let a = accounts::get(&*store, &name).await?;
                if !store.remove_facet(a.id, origin.trim().trim_end_matches('/')).await? {
                    anyhow::bail!("account {name} has no facet {origin}");
                }
                println!("facet {origin} removed from {name}");
            }
            FacetCmd::List { name, json } => {
                let a = accounts::get(&*store, &name).await?;
                for f in store.list_facets(a.id).await? {
                    if json {
                        println!("{}", json!({"account": name, "origin": f}));
                    } else {
                        println!("{f}");
                    }
                }
            }
        },
    }
    Ok(())
}

async fn audit(settings: &Settings, cmd: AuditCmd) -> anyhow::Result<()> {
    app::ensure_data_dir(&settings.data_dir)?;
    let key = app::load_master_key(settings)?;
    let store = app::open_store(settings, &key).await?;
    let account_id = |name: Option<String>| {
        let store = store.clone();
        async move {
            match name {
                Some(name) => Ok::<_, anyhow::Error>(Some(accounts::get(&*store, &name).await?.id)),
                None => Ok(None),
            }
        }
    };
    match cmd {
        AuditCmd::List { account, limit, json } => {
            for r in store.list_audit(account_id(account).await?, limit.clamp(1, 1_000_000)).await? {
                let at = tessera_core::service::sessions::rfc3339(r.at_ms / 1000);
                if json {
                    println!(
                        "{}",
                        json!({"id": r.id, "at": at, "atMs": r.at_ms, "account": r.account_name, "type": r.op, "username": r.username,
                               "psn": r.psn, "errorCode": r.code, "source": r.source, "durationUs": r.duration_us, "count": r.count})
                    );
                } else {
                    println!("{at}\t{}\t{}\t{}\t{}\t{}\t{}\t{}", r.account_name, r.op, r.username, r.psn, r.code, r.source, r.count);
                }
            }
        }
        AuditCmd::Verify { account } => {
            let names: std::collections::HashMap<i64, String> = store.list_accounts().await?.into_iter().map(|a| (a.id, a.name)).collect();
            let reports = audit::verify(&*store, &key.audit_chain_key(), account_id(account).await?).await?;
            let mut broken = Vec::new();
            for r in &reports {
                let name = names.get(&r.account_id).cloned().unwrap_or_else(|| format!("#{}", r.account_id));
                match &r.fault {
                    None => println!(
                        "{name}: intact ({} rows checked; head seq {} hash {})",
                        r.rows,
                        r.head.head_seq,
                        hex::encode(&r.head.head_hash)
                    ),
                    Some(fault) => {
                        println!("{name}: BROKEN: {fault}");
                        broken.push(format!("{name}: {fault}"));
                    }
                }
            }
            if !broken.is_empty() {
                anyhow::bail!("the audit trail was tampered with: {}", broken.join("; "));
            }
        }
        AuditCmd::Prune { before, older_than_days, account } => {
            let cutoff_ms = match (before, older_than_days) {
                (Some(date), _) => audit::parse_cutoff(&date).map_err(|e| anyhow::anyhow!(e))?,
                (None, Some(days)) => (now() - i64::from(days) * 86_400) * 1000,
                (None, None) => anyhow::bail!("give --before DATE or --older-than-days N"),
            };
            let n = store.prune_audit(account_id(account).await?, cutoff_ms).await?;
            println!("pruned {n} audit rows older than {}", tessera_core::service::sessions::rfc3339(cutoff_ms.div_euclid(1000)));
        }
    }
    Ok(())
}
