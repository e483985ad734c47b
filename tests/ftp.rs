//! The FTP client, file choice and `segsync check` against real servers:
//! libunftp in-process (plain and FTPS) everywhere, and vsftpd and
//! pure-ftpd when `.ci/ftpd.sh start` has run (their tests print a note and
//! pass when the daemons are absent, as on a dev machine without them).

mod common;

use common::ftpserver::*;
use common::{FtpSandbox, Sandbox};
use segsync::config::FtpConn;
use segsync::fetch::{choose, Choice, RemoteFile};
use segsync::ftp::{FtpSession, ListingStyle, Timeouts};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// Mixed line ends: a transfer in ASCII mode would change them.
const CSV: &[u8] = b"user_id,tier\r\n1,high\n2,low\n";

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A folder with a typical segment upload area.
fn sample_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    put_file(
        r,
        "exports/high/high__2020-10-01.csv",
        b"old\n",
        at("2020-10-01T02:00:00Z"),
    );
    put_file(
        r,
        "exports/high/high__2020-10-02 final.csv",
        CSV,
        at("2020-10-02T01:30:07Z"),
    );
    put_file(
        r,
        "exports/high/notes.txt",
        b"n",
        at("2020-10-03T00:00:00Z"),
    );
    std::fs::create_dir_all(r.join("exports/high/archive")).unwrap();
    root
}

fn session(conn: &FtpConn) -> FtpSession {
    export_password();
    FtpSession::connect(conn, &Timeouts::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

fn names(files: &[RemoteFile]) -> Vec<&str> {
    let mut v: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    v.sort();
    v
}

/// Lists, chooses and downloads the newest file, checking every value.
fn list_choose_download(s: &mut FtpSession, dir: &str) {
    list_choose_download_with(s, dir, false)
}

fn list_choose_download_with(s: &mut FtpSession, dir: &str, progress: bool) {
    let files = s.list(dir).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        names(&files),
        [
            "high__2020-10-01.csv",
            "high__2020-10-02 final.csv",
            "notes.txt"
        ],
        "regular files only, no folders, no dot entries"
    );
    let newest = files
        .iter()
        .find(|f| f.name == "high__2020-10-02 final.csv")
        .unwrap();
    assert_eq!(newest.size, CSV.len() as u64);
    assert_eq!(
        newest.modified,
        at("2020-10-02T01:30:07Z"),
        "exact time, seconds included"
    );

    let now = at("2020-10-05T00:00:00Z");
    let Choice::Ready(file) = choose("high", &files, now, Duration::from_secs(120)) else {
        panic!("expected a ready file");
    };
    assert_eq!(&file, newest);

    let dest = tempfile::tempdir().unwrap();
    let path = dest.path().join("download.tmp");
    let got = s
        .download(dir, &file, &path, progress)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(got.bytes, CSV.len() as u64);
    assert_eq!(got.sha256, sha_hex(CSV));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        CSV,
        "bytes unchanged (binary mode)"
    );
}

#[test]
fn plain_ftp_lists_chooses_and_downloads_with_mlsd() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let mut s = session(&server.conn("main", "/exports"));
    list_choose_download(&mut s, "/exports/high");
    assert_eq!(s.listing_style(), Some(ListingStyle::Mlsd));
    s.quit();
}

#[test]
fn the_list_fallback_gets_exact_times_from_mdtm() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let mut s = session(&server.conn("main", "/exports"));
    s.use_listing(ListingStyle::List);
    list_choose_download(&mut s, "/exports/high");
    s.quit();
}

#[test]
fn ftps_with_the_ca_file_trusted() {
    let root = sample_root();
    let server = FtpServer::start_tls(root.path());
    let conn = server.conn("secure", "/exports");
    assert!(conn.secure && conn.ca_file.is_some());
    let mut s = session(&conn);
    // With a progress bar asked for: stderr is not a terminal here, so it
    // draws nothing, but the download goes through it.
    list_choose_download_with(&mut s, "/exports/high", true);
    s.quit();
}

#[test]
fn ftps_refuses_an_untrusted_certificate() {
    let root = sample_root();
    let server = FtpServer::start_tls(root.path());
    let mut conn = server.conn("secure", "/exports");
    conn.ca_file = None;
    export_password();
    let err = FtpSession::connect(&conn, &Timeouts::default())
        .err()
        .expect("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("failed to connect to ftp `secure`"), "{msg}");
    assert!(
        msg.contains("not trusted") && msg.contains("ca_file"),
        "{msg}"
    );
}

#[test]
fn ftps_never_falls_back_to_plain_text() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let mut conn = server.conn("main", "/exports");
    conn.secure = true;
    export_password();
    let err = FtpSession::connect(&conn, &Timeouts::default())
        .err()
        .expect("must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("AUTH TLS") && msg.contains("never falls back"),
        "{msg}"
    );
}

#[test]
fn a_wrong_password_is_reported_without_the_password() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let mut conn = server.conn("main", "/");
    conn.password_env = Some("SEGSYNC_TEST_WRONG_PASSWORD".into());
    std::env::set_var("SEGSYNC_TEST_WRONG_PASSWORD", "not-the-Zq7-password");
    let err = FtpSession::connect(&conn, &Timeouts::default())
        .err()
        .expect("must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("login refused for user `segsync-test`"),
        "{msg}"
    );
    assert!(msg.contains("SEGSYNC_TEST_WRONG_PASSWORD"), "{msg}");
    assert!(!msg.contains("not-the-Zq7-password"), "{msg}");
}

#[test]
fn a_pasv_reply_with_another_address_is_ignored() {
    let root = sample_root();
    // 192.0.2.1 is TEST-NET-1: nothing answers there, so following the
    // PASV address would time out.
    let opts = Options {
        passive_ip: Some("192.0.2.1".parse().unwrap()),
        ..Options::default()
    };
    let server = FtpServer::start_with(root.path(), opts);
    export_password();
    let t = Timeouts {
        connect: Duration::from_secs(3),
        io: Duration::from_secs(10),
    };
    let mut s = FtpSession::connect(&server.conn("nat", "/"), &t).unwrap();
    list_choose_download(&mut s, "/exports/high");
}

#[test]
fn ipv6_uses_epsv() {
    let root = sample_root();
    let opts = Options {
        ipv6: true,
        ..Options::default()
    };
    let server = FtpServer::start_with(root.path(), opts);
    let conn = server.conn("v6", "/");
    assert_eq!(conn.url(), format!("ftp://[::1]:{}", server.port()));
    let mut s = session(&conn);
    list_choose_download(&mut s, "/exports/high");
}

#[test]
fn a_file_that_changes_size_during_the_download_is_refused() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let mut s = session(&server.conn("main", "/"));
    let files = s.list("/exports/high").unwrap();
    let file = files
        .iter()
        .find(|f| f.name.ends_with("final.csv"))
        .unwrap();
    // The upload goes on after the listing.
    let p = root.path().join("exports/high/high__2020-10-02 final.csv");
    std::fs::write(&p, [CSV, b"3,mid\r\n"].concat()).unwrap();

    let dest = tempfile::tempdir().unwrap();
    let err = s
        .download("/exports/high", file, &dest.path().join("f"), false)
        .expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with(
            "failed to download `high__2020-10-02 final.csv` from ftp `main` (ftp://127.0.0.1:"
        ),
        "{msg}"
    );
    let (got, listed) = (CSV.len() + 7, CSV.len());
    assert!(
        msg.contains(&format!(
            "received {got} bytes but the server listed {listed} bytes"
        )),
        "{msg}"
    );
    // The control connection is still usable afterwards.
    assert_eq!(s.list("/exports/high").unwrap().len(), 3);
}

#[test]
fn a_missing_folder_names_the_folder_and_the_fix() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let mut s = session(&server.conn("main", "/"));
    let msg = format!("{:#}", s.list("/exports/nope").expect_err("must fail"));
    assert!(
        msg.contains("failed to list `/exports/nope` on ftp `main`"),
        "{msg}"
    );
    assert!(msg.contains("`root`") && msg.contains("`path`"), "{msg}");
}

#[test]
fn a_silent_server_times_out_instead_of_hanging() {
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let _conns: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(5));
    });
    let toml = format!("[[ftp]]\nname = \"mute\"\nurl = \"ftp://127.0.0.1:{port}\"\n");
    let cfg = segsync::config::Config::parse(&toml, Path::new("/tmp/x.toml")).unwrap();
    let t = Timeouts {
        connect: Duration::from_secs(1),
        io: Duration::from_secs(1),
    };
    let msg = format!(
        "{:#}",
        FtpSession::connect(&cfg.ftp[0], &t)
            .err()
            .expect("must fail")
    );
    assert!(msg.contains("failed to connect to ftp `mute`"), "{msg}");
    assert!(msg.contains("timed out after 1s"), "{msg}");
}

// ---------------------------------------------------------------------------
// `segsync check`, through the binary.

#[test]
fn check_reports_each_connection_and_fails_when_one_fails() {
    let root = sample_root();
    let plain = FtpServer::start(root.path());
    let tls = FtpServer::start_tls(root.path());
    let config = format!(
        "{}{}[[ftp]]\nname = \"down\"\nurl = \"ftp://127.0.0.1:1\"\n",
        plain.config("plain", "/exports"),
        tls.config("secure", "/exports/high")
    );
    let sb = Sandbox::new(&config);

    let run = sb.run_ftp(&["check"]).expect(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    // Three connections, then the note that no [smtp] is configured.
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(lines[3].contains("no [smtp] section"), "{}", lines[3]);
    assert!(
        lines[0].starts_with("ok   ftp `plain` (ftp://127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("root `/exports` lists 0 files (MLSD)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("ok   ftp `secure` (ftps://127.0.0.1:"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("TLS verified") && lines[1].contains("lists 3 files"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("FAIL failed to connect to ftp `down` (ftp://127.0.0.1:1)"));
    assert!(lines[2].contains("connection refused"), "{}", lines[2]);
    assert!(
        run.stderr.contains("1 of 3 connections failed"),
        "{}",
        run.stderr
    );

    let run = sb.run_ftp(&["check", "--json"]).expect(1);
    let v = run.json();
    let arr = v.as_array().expect("an array");
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0]["name"], "plain");
    assert_eq!(arr[0]["kind"], "ftp");
    assert_eq!(arr[0]["ok"], true);
    assert_eq!(arr[2]["ok"], false);
    assert!(arr[2]["error"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
}

#[test]
fn check_passes_when_all_connections_work() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let sb = Sandbox::new(&server.config("main", "/exports/high"));
    let run = sb.run_ftp(&["check"]).expect(0);
    assert!(run.stdout.contains("ok   ftp `main`"), "{}", run.stdout);
}

#[test]
fn check_without_the_password_variable_says_which_to_set() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let sb = Sandbox::new(&server.config("main", "/"));
    // Other tests in this process export the variable; the child must not
    // inherit it.
    let out = sb
        .cmd(&["check"])
        .env_remove(PASSWORD_ENV)
        .output()
        .unwrap();
    let run = Run2::new(out);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains(PASSWORD_ENV), "{}", run.stdout);
}

#[test]
fn the_password_is_never_printed_even_at_trace_level() {
    let root = sample_root();
    let server = FtpServer::start(root.path());
    let tls = FtpServer::start_tls(root.path());
    let config = format!(
        "{}{}",
        server.config("plain", "/exports"),
        tls.config("secure", "/exports")
    );
    let sb = Sandbox::new(&config);

    let from = |r: common::Run| Run2 {
        code: r.code,
        stdout: r.stdout,
        stderr: r.stderr,
    };
    let runs = [
        from(sb.run_ftp(&["-vv", "check"])),
        from(sb.run_ftp(&["-vv", "--json", "check"])),
        Run2::new(
            sb.cmd(&["check"])
                .env(PASSWORD_ENV, PASSWORD)
                .env("SEGSYNC_LOG", "trace,suppaftp=trace,rustls=trace")
                .output()
                .unwrap(),
        ),
    ];
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            !run.stdout.contains(PASSWORD),
            "password on stdout:\n{}",
            run.stdout
        );
        assert!(
            !run.stderr.contains(PASSWORD),
            "password on stderr:\n{}",
            run.stderr
        );
    }
    // suppaftp's own `log` records (it logs PASS at trace) never reach the
    // output: segsync installs no `log` backend, and caps the target too.
    for run in &runs {
        assert!(
            !run.stderr.contains("Signin in with user"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("CC OUT"), "{}", run.stderr);
    }
    // The trace runs did log something, so the level was really on.
    assert!(
        runs[0].stderr.contains("checking ftp `plain`"),
        "{}",
        runs[0].stderr
    );
    assert!(
        runs[2].stderr.contains("checking ftp `secure`"),
        "{}",
        runs[2].stderr
    );

    // A refused password is not echoed either.
    let wrong = "Wrong-pw-9f3c-never-shown";
    let run = Run2::new(
        sb.cmd(&["-vv", "check"])
            .env(PASSWORD_ENV, wrong)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("login refused"), "{}", run.stdout);
    assert!(
        !run.stdout.contains(wrong) && !run.stderr.contains(wrong),
        "{run:?}"
    );
}

/// A finished run for commands built by hand with extra environment.
#[derive(Debug)]
struct Run2 {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run2 {
    fn new(out: std::process::Output) -> Run2 {
        Run2 {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

// ---------------------------------------------------------------------------
// Real daemons started by `.ci/ftpd.sh start`, which exports their
// addresses; without them these tests say so and pass.

/// A daemon's connection from the environment, or `None` with a note.
fn daemon(var: &str, secure: bool) -> Option<(FtpConn, std::path::PathBuf)> {
    let Ok(addr) = std::env::var(var) else {
        // CI must not skip these silently.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {var} is not: run `.ci/ftpd.sh start` and source \
             /tmp/segsync-ci/ftpd.env before `cargo test`"
        );
        eprintln!(
            "note: {var} is not set, test skipped; run `.ci/ftpd.sh start` and source \
             /tmp/segsync-ci/ftpd.env to test against the real daemon"
        );
        return None;
    };
    let user = std::env::var("SEGSYNC_TEST_FTPD_USER").expect("SEGSYNC_TEST_FTPD_USER");
    let root = std::env::var("SEGSYNC_TEST_FTPD_DIR").expect("SEGSYNC_TEST_FTPD_DIR");
    let scheme = if secure { "ftps" } else { "ftp" };
    let mut toml = format!(
        "[[ftp]]\nname = \"daemon\"\nurl = \"{scheme}://{addr}\"\nroot = \"/\"\nuser = \"{user}\"\n\
         password_env = \"SEGSYNC_TEST_FTPD_PASSWORD\"\n"
    );
    if secure {
        let ca = std::env::var("SEGSYNC_TEST_FTPD_CA").expect("SEGSYNC_TEST_FTPD_CA");
        toml.push_str(&format!("ca_file = {ca:?}\n"));
    }
    let cfg = segsync::config::Config::parse(&toml, Path::new("/tmp/x.toml")).unwrap();
    Some((cfg.ftp[0].clone(), root.into()))
}

/// Fills the daemon's folder (as the test user sees it) with the sample
/// files, in a sub-folder of its own so that tests do not collide.
fn fill(dir: &Path, sub: &str) -> String {
    let base = dir.join(sub);
    let _ = std::fs::remove_dir_all(&base);
    put_file(
        &base,
        "high/high__2020-10-01.csv",
        b"old\n",
        at("2020-10-01T02:00:00Z"),
    );
    put_file(
        &base,
        "high/high__2020-10-02 final.csv",
        CSV,
        at("2020-10-02T01:30:07Z"),
    );
    put_file(&base, "high/notes.txt", b"n", at("2020-10-03T00:00:00Z"));
    std::fs::create_dir_all(base.join("high/archive")).unwrap();
    // The daemons run as another user: let it read everything.
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&base)
        .status();
    format!("/{sub}/high")
}

fn daemon_session(conn: &FtpConn) -> FtpSession {
    let t = Timeouts {
        connect: Duration::from_secs(5),
        io: Duration::from_secs(20),
    };
    FtpSession::connect(conn, &t).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn vsftpd_list_only_with_a_foreign_pasv_address() {
    let Some((conn, dir)) = daemon("SEGSYNC_TEST_VSFTPD", false) else {
        return;
    };
    let remote = fill(&dir, "vsftpd");
    let mut s = daemon_session(&conn);
    list_choose_download(&mut s, &remote);
    assert_eq!(
        s.listing_style(),
        Some(ListingStyle::List),
        "vsftpd has no MLSD"
    );
    s.quit();
}

#[test]
fn vsftpd_over_explicit_tls_with_session_reuse_required() {
    let Some((conn, dir)) = daemon("SEGSYNC_TEST_VSFTPD", true) else {
        return;
    };
    let remote = fill(&dir, "vsftpd-tls");
    let mut s = daemon_session(&conn);
    list_choose_download(&mut s, &remote);
    s.quit();
}

#[test]
fn pureftpd_with_mlsd() {
    let Some((conn, dir)) = daemon("SEGSYNC_TEST_PUREFTPD", false) else {
        return;
    };
    let remote = fill(&dir, "pure");
    let mut s = daemon_session(&conn);
    list_choose_download(&mut s, &remote);
    assert_eq!(s.listing_style(), Some(ListingStyle::Mlsd));
    s.quit();
}

#[test]
fn pureftpd_list_path_with_dot_entries() {
    let Some((conn, dir)) = daemon("SEGSYNC_TEST_PUREFTPD", false) else {
        return;
    };
    let remote = fill(&dir, "pure-list");
    let mut s = daemon_session(&conn);
    s.use_listing(ListingStyle::List);
    list_choose_download(&mut s, &remote);
    s.quit();
}

#[test]
fn pureftpd_over_explicit_tls() {
    let Some((conn, dir)) = daemon("SEGSYNC_TEST_PUREFTPD", true) else {
        return;
    };
    let remote = fill(&dir, "pure-tls");
    let mut s = daemon_session(&conn);
    list_choose_download(&mut s, &remote);
    s.quit();
}

#[test]
fn check_against_the_daemons() {
    let (Some((v, _)), Some((p, _))) = (
        daemon("SEGSYNC_TEST_VSFTPD", false),
        daemon("SEGSYNC_TEST_PUREFTPD", true),
    ) else {
        return;
    };
    let t = Timeouts::default();
    let a = segsync::ftp::check(&v, &t).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(a.contains("(LIST)"), "{a}");
    let b = segsync::ftp::check(&p, &t).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(b.contains("TLS verified") && b.contains("(MLSD)"), "{b}");
}
