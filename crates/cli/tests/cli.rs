//! Black-box tests of the operator CLI: accounts, migrate, audit, configuration errors.

mod common;

use common::{fail_output, Cli};

#[test]
fn account_create_json_shape_and_duplicate() {
    let cli = Cli::new();
    let v: serde_json::Value = serde_json::from_str(cli.ok(&["account", "create", "acme", "--json"]).trim()).expect("json");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 2, "{v}");
    assert_eq!(v["spAccountLoginName"], "acme");
    let key = v["spAccountLoginKey"].as_str().expect("key");
    assert_eq!(key.len(), 43, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{key}");

    let e = cli.fail(&["account", "create", "acme", "--json"]);
    assert!(e.contains("account acme already exists"), "{e}");
    let e = cli.fail(&["account", "create", "bad name!"]);
    assert!(e.contains("account name may only contain"), "{e}");
}

#[test]
fn account_list_disable_enable() {
    let cli = Cli::new();
    assert_eq!(cli.ok(&["account", "list", "--json"]), "");
    cli.ok(&["account", "create", "acme"]);
    cli.ok(&["account", "create", "beta"]);
    let list = cli.json_lines(&["account", "list", "--json"]);
    let names: Vec<&str> = list.iter().map(|a| a["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["acme", "beta"]);
    assert!(list.iter().all(|a| a["enabled"] == true && a["createdAt"].as_i64().is_some_and(|t| t > 1_600_000_000)), "{list:?}");

    assert!(cli.ok(&["account", "disable", "beta"]).contains("disabled"));
    let list = cli.json_lines(&["account", "list", "--json"]);
    assert_eq!(list[1]["enabled"], false);
    cli.ok(&["account", "enable", "beta"]);
    assert_eq!(cli.json_lines(&["account", "list", "--json"])[1]["enabled"], true);

    assert!(cli.fail(&["account", "disable", "nobody"]).contains("no account named nobody"));
    assert!(cli.fail(&["account", "enable", "nobody"]).contains("no account named nobody"));
}

#[test]
fn rotate_key_returns_a_new_key_of_the_same_shape() {
    let cli = Cli::new();
    let first: serde_json::Value = serde_json::from_str(cli.ok(&["account", "create", "acme", "--json"]).trim()).expect("json");
    let second: serde_json::Value = serde_json::from_str(cli.ok(&["account", "rotate-key", "acme", "--json"]).trim()).expect("json");
    assert_eq!(second["spAccountLoginName"], "acme");
    let (k1, k2) = (first["spAccountLoginKey"].as_str().expect("k1"), second["spAccountLoginKey"].as_str().expect("k2"));
    assert_ne!(k1, k2);
    assert_eq!(k1.len(), k2.len());
    assert_eq!(second.as_object().map(|o| o.len()), Some(2));
    assert!(cli.fail(&["account", "rotate-key", "nobody", "--json"]).contains("no account named nobody"));
}

#[test]
fn migrate_and_empty_audit() {
    let cli = Cli::new();
    assert_eq!(cli.ok(&["migrate"]).trim(), "database is up to date");
    assert_eq!(cli.ok(&["migrate"]).trim(), "database is up to date");
    assert_eq!(cli.ok(&["audit", "list", "--json"]), "");
    assert!(cli.fail(&["audit", "list", "--account", "nobody"]).contains("no account named nobody"));
}

#[test]
fn invalid_master_key_is_refused() {
    let cli = Cli::new();
    let out = cli.command(&["account", "list"]).env("TESSERA_MASTER_KEY", "not-a-key").output().expect("run");
    let e = fail_output(out, &["account", "list"]);
    assert!(e.contains("TESSERA_MASTER_KEY") && e.contains("64 hex"), "{e}");
    assert!(!e.contains("not-a-key"), "the key must not be echoed: {e}");

    // A valid key that is not the one the database was created with.
    cli.ok(&["account", "create", "acme"]);
    let other = "ab".repeat(32);
    let out = cli.command(&["account", "list"]).env("TESSERA_MASTER_KEY", &other).output().expect("run");
    let e = fail_output(out, &["account", "list"]);
    assert!(e.contains("master key does not match"), "{e}");
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let cli = Cli::new();
    let missing = cli.dir.path().join("nope.toml");
    let missing = missing.to_string_lossy();
    let e = cli.fail(&["--config", &missing, "account", "list"]);
    assert!(e.contains("config file") && e.contains("nope.toml") && e.contains("does not exist"), "{e}");
    // Also accepted after the subcommand (a global option).
    let e = cli.fail(&["account", "list", "--config", &missing]);
    assert!(e.contains("does not exist"), "{e}");
    // A config file that is not valid TOML for the settings.
    let bad = cli.write("bad.toml", b"listen = 5\n");
    let e = cli.fail(&["--config", &bad, "migrate"]);
    assert!(e.contains("invalid configuration"), "{e}");
}
