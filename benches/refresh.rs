//! Refresh benchmark: a full load of a large `user_id` file, an SCD diff
//! against it, full loads of `email` and `mobile` files, side by side with
//! the sqlite3 shell importing the same `user_id` file and indexing it.
//!
//! Run: `cargo bench --bench refresh` (10M rows; set `SEGSYNC_BENCH_ROWS`
//! for another size and `SEGSYNC_BENCH_DIR` to keep the generated files
//! between runs). Each measurement runs in a child process of its own so
//! that its peak memory (max RSS) is its own.
//!
//! Two kinds of scenario:
//! - `segsync refresh` end to end: the release binary, as a user runs it,
//!   fetching the file from a real FTP server on loopback (libunftp, in this
//!   process) — listing, download with SHA-256, validation, sort, load,
//!   partitions and the execution row; first a full load, then the SCD diff;
//! - library phases (`prepare`, `apply`, `commit`) on local files, to show
//!   where the time goes, for `user_id`, `email` and `mobile` identifiers.

#[allow(dead_code)]
#[path = "../tests/common/ftpserver.rs"]
mod ftpserver;

use rusqlite::TransactionBehavior;
use segsync::load::{self, LoadOptions};
use segsync::segment::{Segment, SegmentType, Status};
use segsync::store::Store;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PARTITIONS: u64 = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1..]);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is expected.
    let rows: u64 = std::env::var("SEGSYNC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let keep = std::env::var_os("SEGSYNC_BENCH_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();

    let uid = dir.join(format!("uid_{rows}.csv"));
    let uid_next = dir.join(format!("uid_next_{rows}.csv"));
    let email = dir.join(format!("email_{rows}.csv"));
    let mobile = dir.join(format!("mobile_{rows}.csv"));
    let t = Instant::now();
    generate(&uid, rows, Kind::UserId, false);
    generate(&uid_next, rows, Kind::UserId, true);
    generate(&email, rows, Kind::Email, false);
    generate(&mobile, rows.min(99_999_999), Kind::Mobile, false);
    println!(
        "files for {rows} rows ready in {:.1}s in {}",
        secs(t.elapsed()),
        dir.display()
    );

    let db = dir.join("bench.db");
    let db_email = dir.join("bench_email.db");
    let db_mobile = dir.join("bench_mobile.db");
    let base = dir.join("baseline.db");
    for p in [&db, &db_email, &db_mobile, &base] {
        remove_db(p);
    }

    println!(
        "\n{:<34} {:>9} {:>12}  phases",
        "scenario", "seconds", "max RSS MiB"
    );
    let baseline = run_measured(
        "sqlite3 .import + unique index",
        Command::new("sqlite3").arg(&base).args([
            ".mode csv",
            &format!(".import {} t", uid.display()),
            "CREATE UNIQUE INDEX t_user_id ON t(user_id);",
        ]),
    );
    remove_db(&base);
    let (full, diff) = over_ftp(&dir, &uid, &uid_next);
    run_child("phases: full refresh (user_id)", "full", &db, &uid);
    run_child("phases: SCD diff (user_id)", "diff", &db, &uid_next);
    run_child("segsync full refresh (email)", "full", &db_email, &email);
    run_child("segsync full refresh (mobile)", "full", &db_mobile, &mobile);
    if let (Some(b), Some(f), Some(d)) = (baseline, full, diff) {
        println!(
            "\nsegsync refresh over FTP: {:.2}x the baseline's time; SCD diff over FTP: {:.2}x",
            f / b,
            d / b
        );
    }
    for p in [&db, &db_email, &db_mobile] {
        remove_db(p);
    }
}

/// `segsync refresh` over loopback FTP, as a user runs it: a full load of
/// `first`, then the SCD diff to `second`. Returns both wall times.
fn over_ftp(dir: &Path, first: &Path, second: &Path) -> (Option<f64>, Option<f64>) {
    let root = dir.join("ftp-root");
    let case = dir.join("ftp-case");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&case);
    std::fs::create_dir_all(root.join("seg")).unwrap();
    std::fs::create_dir_all(&case).unwrap();
    let server = ftpserver::FtpServer::start(&root);
    std::fs::write(
        case.join("segments.toml"),
        format!("min_file_age = \"0s\"\n{}", server.config("bench", "/")),
    )
    .unwrap();
    let segsync = |now: &str, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_segsync"));
        c.current_dir(&case)
            .env(ftpserver::PASSWORD_ENV, ftpserver::PASSWORD)
            .env("NO_COLOR", "1")
            .arg("--config")
            .arg(case.join("segments.toml"))
            .args(["--now", now, "-q"])
            .args(args);
        c
    };
    let created = segsync(
        "2024-01-01T00:00:00Z",
        &[
            "create",
            "bench",
            "--type",
            "scd",
            "--ftp",
            "bench",
            "--path",
            "seg",
            "--frequency",
            "daily",
        ],
    )
    .output()
    .unwrap();
    assert!(created.status.success(), "{created:?}");
    let place = |file: &Path, name: &str, at: &str| {
        let dest = root.join("seg").join(name);
        if std::fs::hard_link(file, &dest).is_err() {
            std::fs::copy(file, &dest).unwrap();
        }
        ftpserver::set_modified(&dest, ftpserver::at(at));
    };
    place(first, "bench__1.csv", "2023-12-31T23:00:00Z");
    let full = run_measured(
        "segsync refresh over FTP (user_id)",
        &mut segsync("2024-01-01T02:00:00Z", &["refresh", "bench"]),
    );
    place(second, "bench__2.csv", "2024-01-01T23:00:00Z");
    let diff = run_measured(
        "segsync SCD diff over FTP (user_id)",
        &mut segsync("2024-01-02T02:00:00Z", &["refresh", "bench"]),
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&case);
    (full, diff)
}

fn remove_db(p: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs this benchmark again as a child doing one scenario.
fn run_child(label: &str, mode: &str, db: &Path, file: &Path) -> Option<f64> {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.arg("--child").arg(mode).arg(db).arg(file);
    run_measured(label, &mut c)
}

/// Runs `cmd` under `/usr/bin/time` for its max RSS; prints one line and
/// returns the wall time in seconds.
fn run_measured(label: &str, cmd: &mut Command) -> Option<f64> {
    let timer = Path::new("/usr/bin/time").exists();
    let mut full = if timer {
        let mut t = Command::new("/usr/bin/time");
        t.args(["-f", "maxrss_kib=%M"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        t
    } else {
        let mut c = Command::new(cmd.get_program());
        c.args(cmd.get_args());
        c
    };
    // Keep what the caller set up besides the program and its arguments.
    if let Some(d) = cmd.get_current_dir() {
        full.current_dir(d);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => full.env(k, v),
            None => full.env_remove(k),
        };
    }
    let start = Instant::now();
    let out = match full.output() {
        Ok(o) => o,
        Err(e) => {
            println!("{label:<34} skipped: {e}");
            return None;
        }
    };
    let wall = secs(start.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        println!("{label:<34} failed: {stderr}");
        return None;
    }
    let rss = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("maxrss_kib="))
        .next_back()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|k| format!("{:.1}", k / 1024.0))
        .unwrap_or_else(|| "?".into());
    println!("{label:<34} {wall:>9.2} {rss:>12}  {}", stdout.trim());
    Some(wall)
}

/// Child side: `full DB FILE` (new SCD segment, first load) or
/// `diff DB FILE` (load into the segment `full` created).
fn child(args: &[String]) {
    let (mode, db, file) = (&args[0], Path::new(&args[1]), Path::new(&args[2]));
    let mut store = Store::open(db).expect("open db");
    let segment = match store.segment("bench").unwrap() {
        Some(s) => s,
        None => {
            assert_eq!(mode, "full");
            new_segment(&mut store)
        }
    };
    let stamp = if mode == "full" {
        "2024-01-01T02:00:00Z"
    } else {
        "2024-01-02T02:00:00Z"
    };
    let stamp = chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap()
        .to_utc();
    let temp = tempfile::tempdir_in(db.parent().unwrap()).unwrap();
    let phases = refresh_file(&mut store, &segment, file, temp.path(), stamp);
    let total: f64 = phases.iter().map(|(_, d)| secs(*d)).sum();
    let listed: Vec<String> = phases
        .iter()
        .map(|(n, d)| format!("{n} {:.2}s", secs(*d)))
        .collect();
    println!("{} (sum {total:.2}s)", listed.join(", "));
}

/// One refresh of a local file, as `refresh` does it after the download:
/// prepare with no transaction open, then apply and commit in one.
pub fn refresh_file(
    store: &mut Store,
    segment: &Segment,
    file: &Path,
    temp_dir: &Path,
    stamp: chrono::DateTime<chrono::Utc>,
) -> Vec<(&'static str, Duration)> {
    let opts = LoadOptions {
        max_rejected_ratio: 0.05,
        temp_dir: temp_dir.to_path_buf(),
        max_decompressed_bytes: 1 << 40,
    };
    let t = Instant::now();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let prepared = load::prepare(file, &name, &opts).expect("prepare");
    let prepare = t.elapsed();
    let t = Instant::now();
    let tx = store
        .conn()
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    let applied = load::apply(&tx, segment, prepared, stamp).expect("apply");
    let apply = t.elapsed();
    let t = Instant::now();
    tx.commit().unwrap();
    let commit = t.elapsed();
    eprintln!("{applied:?}");
    vec![("prepare", prepare), ("apply", apply), ("commit", commit)]
}

fn new_segment(store: &mut Store) -> Segment {
    let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let mut s = Segment::new_draft("bench", Some(SegmentType::Scd), now);
    s.status = Status::Active;
    s.id = store.insert_segment(&s).unwrap();
    s
}

#[derive(Clone, Copy)]
enum Kind {
    UserId,
    Email,
    Mobile,
}

/// A cheap integer hash (splitmix64 finaliser) to pick partitions and
/// changes deterministically.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// Users 1..=rows in a shuffled order: a full-period LCG over the next
/// power of two, skipping values out of range (no table in memory).
fn shuffled(rows: u64) -> impl Iterator<Item = u64> {
    let m = rows.next_power_of_two().max(4);
    let mut x = 0u64;
    (0..m)
        .map(move |_| {
            x = (x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407))
                & (m - 1);
            x
        })
        .filter(move |v| *v < rows)
        .map(|v| v + 1)
}

/// Writes a file of `rows` users (or, with `next`, the same users with 1%
/// moved to another partition, 0.5% gone and 0.5% new ones).
fn generate(path: &Path, rows: u64, kind: Kind, next: bool) {
    if path.exists() {
        return;
    }
    let part_path = path.with_extension("part");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&part_path).unwrap());
    let header = match kind {
        Kind::UserId => "user_id,segment",
        Kind::Email => "email,segment",
        Kind::Mobile => "mobile,segment",
    };
    writeln!(w, "{header}").unwrap();
    let line = |w: &mut BufWriter<File>, id: u64, part: u64| match kind {
        Kind::UserId => writeln!(w, "{id},tier_{part}").unwrap(),
        Kind::Email => writeln!(w, "User{id}@Example.com,tier_{part}").unwrap(),
        // Indian mobiles: 91, then 98 and eight digits.
        Kind::Mobile => writeln!(w, "9198{id:08},tier_{part}").unwrap(),
    };
    for id in shuffled(rows) {
        let h = mix(id);
        let mut part = h % PARTITIONS;
        if next {
            match (h >> 32) % 1000 {
                0..=9 => part = (part + 1) % PARTITIONS,
                10..=14 => continue,
                _ => {}
            }
        }
        line(&mut w, id, part);
    }
    if next {
        for id in rows + 1..=rows + rows / 200 {
            line(&mut w, id, mix(id) % PARTITIONS);
        }
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&part_path, path).unwrap();
}
