//! Runs the built `tessera` binary against a throw-away data directory (SQLite).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Cli {
    pub dir: tempfile::TempDir,
}

impl Cli {
    pub fn new() -> Cli {
        Cli { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `tessera ARGS` with only TESSERA_DATA_DIR (and a quiet log) from the TESSERA_* settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TESSERA_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("TESSERA_DATA_DIR", self.data_dir()).env("TESSERA_LOG__LEVEL", "error").args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run tessera")
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tessera {args:?} failed: {stderr}");
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs, asserts failure with exactly one line on stderr (and nothing on stdout); returns that line.
    pub fn fail(&self, args: &[&str]) -> String {
        fail_output(self.run(args), args)
    }

    /// stdout as one JSON value per line.
    pub fn json_lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        self.ok(args).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
    }

    /// Writes a file in the temp dir; returns its path as a string.
    pub fn write(&self, name: &str, contents: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).expect("write");
        p.to_string_lossy().into_owned()
    }
}

pub fn fail_output(out: Output, args: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "tessera {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(stderr.trim_end().lines().count(), 1, "want one error line, got: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout on failure: {}", String::from_utf8_lossy(&out.stdout));
    stderr.trim_end().to_string()
}

/// A sample under crates/core/tests/data.
pub fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data").join(name).to_string_lossy().into_owned()
}
