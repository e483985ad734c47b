//! Helpers shared by the integration tests: a sandbox folder with a config
//! file, and a way to run the real `segsync` binary in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary folder holding `segments.toml` and the database.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl Sandbox {
    /// A sandbox whose `segments.toml` holds `config`.
    pub fn new(config: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("segments.toml"), config).expect("write config");
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file below the sandbox and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// A command for the binary, run in the sandbox with its config,
    /// a clean environment for segsync's own variables and no colour.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_segsync"));
        c.current_dir(self.dir.path())
            .args(args)
            .env_remove("SEGSYNC_CONFIG")
            .env_remove("SEGSYNC_LOG")
            .env("NO_COLOR", "1");
        c
    }

    /// Runs the binary with `args` and returns what it did.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run segsync"))
    }

    /// Runs with `--now` pinned to `now` (RFC 3339).
    pub fn run_at(&self, now: &str, args: &[&str]) -> Run {
        let mut all = vec!["--now", now];
        all.extend_from_slice(args);
        self.run(&all)
    }
}

pub mod ftpserver;
pub mod smtpserver;

/// Running the binary with the test password in its environment.
pub trait FtpSandbox {
    /// Like [`Sandbox::run`], with [`ftpserver::PASSWORD_ENV`] set for the child.
    fn run_ftp(&self, args: &[&str]) -> Run;
    /// Like [`Sandbox::run_at`], with [`ftpserver::PASSWORD_ENV`] set for the child.
    fn run_ftp_at(&self, now: &str, args: &[&str]) -> Run;
}

impl FtpSandbox for Sandbox {
    fn run_ftp(&self, args: &[&str]) -> Run {
        let out = self
            .cmd(args)
            .env(ftpserver::PASSWORD_ENV, ftpserver::PASSWORD)
            .output()
            .expect("run segsync");
        Run::from(out)
    }

    fn run_ftp_at(&self, now: &str, args: &[&str]) -> Run {
        let mut all = vec!["--now", now];
        all.extend_from_slice(args);
        self.run_ftp(&all)
    }
}
