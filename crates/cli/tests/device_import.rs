//! Black-box tests of `tessera device import` / `tessera device list`: PSKC and CSV files go into
//! the account's unassigned inventory whole, or not at all.

mod common;

use common::{sample, Cli};
use serde_json::Value;

const RFC_PSK: &str = "12345678901234567890123456789012";
const PY_PSK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn with_account() -> Cli {
    let cli = Cli::new();
    cli.ok(&["account", "create", "acme", "--json"]);
    cli
}

fn devices(cli: &Cli, unassigned: bool) -> Vec<Value> {
    let mut args = vec!["device", "list", "--account", "acme", "--json"];
    if unassigned {
        args.push("--unassigned");
    }
    cli.json_lines(&args)
}

fn psns(cli: &Cli) -> Vec<String> {
    devices(cli, false).iter().map(|d| d["psn"].as_str().expect("psn").to_string()).collect()
}

#[test]
fn csv_import_lands_unassigned() {
    let cli = with_account();
    let out: Value =
        serde_json::from_str(cli.ok(&["device", "import", "--account", "acme", &sample("tokens.csv"), "--json"]).trim()).expect("json");
    assert_eq!(out["account"], "acme");
    assert_eq!(out["imported"], 4);
    assert_eq!(out["psns"], serde_json::json!(["CSV-HOTP-1", "CSV-HOTP-2", "CSV-TOTP-3", "CSV-TOTP-4"]));

    let list = devices(&cli, false);
    assert_eq!(list.len(), 4);
    for (d, otp_type) in list.iter().zip([1, 1, 2, 2]) {
        assert_eq!(d["deviceType"], 14, "{d}");
        assert_eq!(d["otpType"], otp_type, "{d}");
        assert_eq!(d["userId"], Value::Null, "{d}");
        assert_eq!(d["username"], Value::Null, "{d}");
        assert_eq!(d["status"], 0, "{d}");
        assert_eq!(d["activated"], true, "{d}");
    }
    assert_eq!(devices(&cli, true), list);
    let text = cli.ok(&["device", "list", "--account", "acme"]);
    assert!(text.lines().next().is_some_and(|l| l == "CSV-HOTP-1\thardware\thotp\t-\tenabled"), "{text}");

    // Seeds are sealed at rest: the RFC 4226 seed appears nowhere in the database files.
    for entry in std::fs::read_dir(cli.data_dir()).expect("data dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(!bytes.windows(20).any(|w| w == b"12345678901234567890"), "plain seed stored");
    }
}

#[test]
fn pskc_plain_and_encrypted_import() {
    let cli = with_account();
    cli.ok(&["device", "import", "--account", "acme", &sample("totp_plain.xml")]);
    cli.ok(&["device", "import", "--account", "acme", &sample("pskc_aes256_python.xml"), "--psk", PY_PSK, "--json"]);
    let psk_file = cli.write("rfc.psk", format!("{RFC_PSK}\n").as_bytes());
    let out = cli.ok(&[
        "device",
        "import",
        "--account",
        "acme",
        "--format",
        "pskc",
        &sample("rfc6030_psk_aes128_hmac_sha1.xml"),
        "--psk-file",
        &psk_file,
    ]);
    assert!(out.contains("imported 1 hardware token"), "{out}");
    assert_eq!(psns(&cli), ["TOTP-0001", "TOTP-0002", "PY-HOTP-1", "PY-TOTP-2", "987654321"]);
    let otp_types: Vec<i64> = devices(&cli, true).iter().map(|d| d["otpType"].as_i64().expect("otpType")).collect();
    assert_eq!(otp_types, [2, 2, 1, 2, 1]);
}

#[test]
fn malformed_files_are_refused_whole() {
    let cli = with_account();
    cli.ok(&["device", "import", "--account", "acme", &sample("totp_plain.xml")]);
    let before = psns(&cli);

    let csv = cli.write(
        "bad.csv",
        b"# two good lines, then a bad one\nNEW-1,3132333435363738393031323334353637383930,hotp,6,0\nNEW-2,3132333435363738393031323334353637383930,totp,6,30\nNEW-3,31323334353637383930313233343536373839zz,hotp,6,0\n",
    );
    let e = cli.fail(&["device", "import", "--account", "acme", &csv]);
    assert!(e.contains("bad.csv: line 4:") && e.contains("hexadecimal") && e.contains("nothing was imported"), "{e}");
    assert!(!e.contains("313233343536"), "seed echoed: {e}");

    let fig2 = std::fs::read_to_string(sample("rfc6030_figure2_hotp.xml")).expect("sample");
    let second = fig2
        .replace("987654321", "NEW-9")
        .replace("12345678", "KEY-9")
        .replace("<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=\n                    </PlainValue>", "");
    let start = second.find("<KeyPackage>").expect("package");
    let end = second.find("</KeyPackage>").expect("package") + "</KeyPackage>".len();
    let two = fig2.replace("</KeyPackage>", &format!("</KeyPackage>{}", &second[start..end]));
    let xml = cli.write("bad.xml", two.as_bytes());
    let e = cli.fail(&["device", "import", "--account", "acme", &xml]);
    assert!(e.contains("Key \"KEY-9\" (KeyPackage 2") && e.contains("neither PlainValue nor EncryptedValue"), "{e}");

    let broken = cli.write("broken.xml", fig2.replace("</Secret>", "</Secrets>").as_bytes());
    let e = cli.fail(&["device", "import", "--account", "acme", &broken]);
    assert!(e.contains("line 24") && e.contains("malformed XML"), "{e}");

    let bomb = cli.write("bomb.xml", b"<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY a \"aaaa\">]>\n<KeyContainer/>\n");
    assert!(cli.fail(&["device", "import", "--account", "acme", &bomb]).contains("line 2: a DOCTYPE is not allowed"));

    // Forcing CSV on an XML file: refused, naming line 1.
    let e = cli.fail(&["device", "import", "--account", "acme", "--format", "csv", &sample("rfc6030_figure2_hotp.xml")]);
    assert!(e.contains(": line 1:"), "{e}");

    assert_eq!(psns(&cli), before, "nothing half-imported");
}

#[test]
fn duplicate_psns_are_refused_whole() {
    let cli = with_account();
    cli.ok(&["device", "import", "--account", "acme", &sample("tokens.csv")]);
    let csv = cli.write(
        "dup.csv",
        b"FRESH-1,3132333435363738393031323334353637383930,hotp,6,0\nCSV-TOTP-3,3132333435363738393031323334353637383930,totp,6,30\n",
    );
    let e = cli.fail(&["device", "import", "--account", "acme", &csv]);
    assert!(e.contains("line 2") && e.contains("\"CSV-TOTP-3\" already exists in account acme"), "{e}");

    let twice = cli.write(
        "twice.csv",
        b"FRESH-1,3132333435363738393031323334353637383930,hotp,6,0\nFRESH-1,3132333435363738393031323334353637383930,hotp,6,0\n",
    );
    let e = cli.fail(&["device", "import", "--account", "acme", &twice]);
    assert!(e.contains("line 2") && e.contains("\"FRESH-1\" appears twice in the file (first at line 1)"), "{e}");
    assert_eq!(psns(&cli), ["CSV-HOTP-1", "CSV-HOTP-2", "CSV-TOTP-3", "CSV-TOTP-4"]);

    // Another account may hold the same psns.
    cli.ok(&["account", "create", "beta"]);
    cli.ok(&["device", "import", "--account", "beta", &sample("tokens.csv")]);
    assert_eq!(cli.json_lines(&["device", "list", "--account", "beta", "--json"]).len(), 4);
}

#[test]
fn wrong_or_missing_psk_is_refused() {
    let cli = with_account();
    let file = sample("rfc6030_psk_aes128_hmac_sha1.xml");
    let e = cli.fail(&["device", "import", "--account", "acme", &file]);
    assert!(e.contains("Key \"12345678\"") && e.contains("Pre-shared-key") && e.contains("--psk"), "{e}");
    let e = cli.fail(&["device", "import", "--account", "acme", &file, "--psk", "12345678901234567890123456789013"]);
    assert!(e.contains("MACKey") || e.contains("ValueMAC does not match"), "{e}");
    let e = cli.fail(&["device", "import", "--account", "acme", &sample("pskc_aes256_python.xml"), "--psk", RFC_PSK]);
    assert!(e.contains("needs 32"), "{e}");
    let e = cli.fail(&["device", "import", "--account", "acme", &file, "--psk", "xyz"]);
    assert!(e.contains("hexadecimal"), "{e}");
    assert!(!e.contains("xyz"), "{e}");
    assert!(psns(&cli).is_empty());
}

#[test]
fn unknown_account_and_missing_file() {
    let cli = with_account();
    assert!(cli.fail(&["device", "import", "--account", "nobody", &sample("tokens.csv")]).contains("no account named nobody"));
    assert!(cli.fail(&["device", "list", "--account", "nobody"]).contains("no account named nobody"));
    let missing = cli.dir.path().join("missing.csv");
    assert!(cli.fail(&["device", "import", "--account", "acme", &missing.to_string_lossy()]).contains("cannot read"));
    let empty = cli.write("empty.csv", b"# nothing\n");
    assert!(cli.fail(&["device", "import", "--account", "acme", &empty]).contains("holds no token"));
    assert!(psns(&cli).is_empty());
}
