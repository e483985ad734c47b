//! `segsync run-due` against the real binary: what is due, missed slots
//! after downtime, retries and their limit, claims held by other (or dead)
//! processes, deferred slots, `--dry-run` and the exit code.
//!
//! These tests point the segment at an FTP address where nothing listens,
//! so every refresh they run fails: they check the scheduling, not the
//! loading (the FTP tests below the divider do that with a real server).

mod common;

use chrono::{DateTime, Utc};
use common::Sandbox;
use segsync::segment::Segment;
use segsync::store::{ClaimPlan, Store, Trigger};
use serde_json::Value;

const CONFIG: &str = r#"
database = "seg.db"
timezone = "UTC"
sync_time = "02:00"
[retry]
max_attempts = 3
backoff = "30m"
[[ftp]]
name = "main"
url = "ftp://127.0.0.1:9"
root = "/"
"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn create(sb: &Sandbox, now: &str, name: &str, frequency: &str, extra: &[&str]) {
    let mut args = vec![
        "create",
        name,
        "--type",
        "non-scd",
        "--ftp",
        "main",
        "--path",
        "drops",
        "--frequency",
        frequency,
    ];
    args.extend_from_slice(extra);
    sb.run_at(now, &args).expect(0);
}

/// `run-due --json` at `now`, expecting exit `code`.
fn run_due(sb: &Sandbox, now: &str, extra: &[&str], code: i32) -> Vec<Value> {
    let mut args = vec!["run-due", "--json"];
    args.extend_from_slice(extra);
    let v = sb.run_at(now, &args).expect(code).json();
    v.as_array().expect("an array").clone()
}

/// Every execution, oldest first.
fn logs(sb: &Sandbox) -> Vec<Value> {
    let v = sb
        .run(&["logs", "--json", "--limit", "10000"])
        .expect(0)
        .json();
    let mut all = v.as_array().unwrap().clone();
    all.reverse();
    all
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string `{k}` in {v}"))
}

fn store(sb: &Sandbox) -> Store {
    Store::open(&sb.path().join("seg.db")).unwrap()
}

fn segment(store: &Store, name: &str) -> Segment {
    store.segment(name).unwrap().unwrap()
}

#[test]
fn before_the_first_slot_nothing_is_due() {
    let sb = Sandbox::new(CONFIG);
    // Created Thursday 2026-03-05: the first weekly slot is Monday 2026-03-09.
    create(&sb, "2026-03-05T10:00:00Z", "wk", "weekly", &[]);
    let out = run_due(&sb, "2026-03-08T10:00:00Z", &[], 0);
    assert_eq!(out.len(), 1);
    assert_eq!(field(&out[0], "action"), "none");
    assert!(out[0]["slot"].is_null());
    assert!(
        field(&out[0], "reason").contains("first slot 2026-03-09 02:00"),
        "{}",
        out[0]
    );
    assert!(logs(&sb).is_empty());
}

#[test]
fn dry_run_prints_the_decisions_and_writes_nothing() {
    let sb = Sandbox::new(CONFIG);
    create(&sb, "2026-03-01T10:00:00Z", "daily", "daily", &[]);
    let out = run_due(&sb, "2026-03-05T03:00:00Z", &["--dry-run"], 0);
    let got: Vec<(&str, &str)> = out
        .iter()
        .map(|r| (field(r, "slot"), field(r, "action")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2026-03-02T02:00:00Z", "missed"),
            ("2026-03-03T02:00:00Z", "missed"),
            ("2026-03-04T02:00:00Z", "missed"),
            ("2026-03-05T02:00:00Z", "run"),
        ]
    );
    assert!(out.iter().all(|r| r.get("execution").is_none()));
    assert!(logs(&sb).is_empty(), "a dry run wrote executions");

    let text = sb
        .run_at("2026-03-05T03:00:00Z", &["run-due", "--dry-run"])
        .expect(0)
        .stdout;
    assert!(
        text.contains("2026-03-05 02:00 +00:00") && text.contains("dry run"),
        "{text}"
    );
    assert!(logs(&sb).is_empty());
}

#[test]
fn after_downtime_older_slots_are_missed_and_the_latest_runs() {
    let sb = Sandbox::new(CONFIG);
    create(&sb, "2026-03-01T10:00:00Z", "daily", "daily", &[]);
    // The refresh fails (no FTP server), so the exit code is 1.
    let out = run_due(&sb, "2026-03-05T03:00:00Z", &[], 1);
    let actions: Vec<&str> = out.iter().map(|r| field(r, "action")).collect();
    assert_eq!(actions, vec!["missed", "missed", "missed", "run"]);
    let run = &out[3]["execution"];
    assert_eq!(field(run, "outcome"), "failed");
    assert_eq!(run["attempt"], 1);
    assert!(!field(run, "error").is_empty());

    let log = logs(&sb);
    let rows: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (field(e, "slot"), field(e, "outcome")))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("2026-03-02T02:00:00Z", "missed"),
            ("2026-03-03T02:00:00Z", "missed"),
            ("2026-03-04T02:00:00Z", "missed"),
            ("2026-03-05T02:00:00Z", "failed"),
        ]
    );

    // A second run does not log the missed slots again.
    let out = run_due(&sb, "2026-03-05T03:05:00Z", &[], 0);
    assert_eq!(out.len(), 1);
    assert_eq!(field(&out[0], "action"), "wait");
    assert_eq!(logs(&sb).len(), 4);
}

#[test]
fn a_long_downtime_logs_a_bounded_number_of_missed_slots() {
    let sb = Sandbox::new(CONFIG);
    create(&sb, "2026-01-01T10:00:00Z", "daily", "daily", &[]);
    let out = run_due(&sb, "2027-06-01T03:00:00Z", &[], 1);
    let missed: Vec<&Value> = out
        .iter()
        .filter(|r| field(r, "action") == "missed")
        .collect();
    assert_eq!(missed.len(), 100);
    assert!(
        field(missed[0], "reason").contains("earlier slots were missed too"),
        "{}",
        missed[0]
    );
    let log = logs(&sb);
    assert_eq!(
        log.iter()
            .filter(|e| field(e, "outcome") == "missed")
            .count(),
        100
    );
    assert_eq!(field(log.last().unwrap(), "slot"), "2027-06-01T02:00:00Z");
}

#[test]
fn retries_follow_the_backoff_and_stop_at_max_attempts() {
    let sb = Sandbox::new(CONFIG);
    create(&sb, "2026-03-04T10:00:00Z", "daily", "daily", &[]);
    let step = |now: &str, code: i32| -> (String, String) {
        let out = run_due(&sb, now, &[], code);
        assert_eq!(out.len(), 1, "{out:?}");
        (
            field(&out[0], "action").to_string(),
            field(&out[0], "reason").to_string(),
        )
    };
    assert_eq!(step("2026-03-05T02:01:00Z", 1).0, "run");
    let (action, reason) = step("2026-03-05T02:20:00Z", 0);
    assert_eq!(action, "wait");
    assert!(
        reason.contains("attempt 2 from 2026-03-05 02:31"),
        "{reason}"
    );
    assert_eq!(step("2026-03-05T02:32:00Z", 1).0, "retry");
    assert_eq!(step("2026-03-05T03:03:00Z", 1).0, "retry");
    let (action, reason) = step("2026-03-05T09:00:00Z", 0);
    assert_eq!(action, "none");
    assert!(reason.contains("3 of 3"), "{reason}");
    let log = logs(&sb);
    let attempts: Vec<(i64, &str)> = log
        .iter()
        .map(|e| (e["attempt"].as_i64().unwrap(), field(e, "trigger")))
        .collect();
    assert_eq!(attempts, vec![(1, "schedule"), (2, "retry"), (3, "retry")]);
    // The next slot starts afresh.
    assert_eq!(step("2026-03-06T02:01:00Z", 1).0, "run");
}

#[test]
fn a_live_claim_is_left_alone_and_an_expired_one_is_taken_over() {
    let sb = Sandbox::new(CONFIG);
    create(&sb, "2026-03-04T10:00:00Z", "daily", "daily", &[]);
    let slot = t("2026-03-05T02:00:00Z");
    {
        let mut s = store(&sb);
        let seg = segment(&s, "daily");
        let claim = s
            .claim_slot(
                &seg,
                slot,
                "otherhost:42:dead",
                t("2026-03-05T02:01:00Z"),
                |_| ClaimPlan::Claim {
                    attempt: 1,
                    trigger: Trigger::Schedule,
                    expire: None,
                },
            )
            .unwrap();
        assert!(claim.claimed.is_some());
    }
    let out = run_due(&sb, "2026-03-05T02:10:00Z", &[], 0);
    assert_eq!(field(&out[0], "action"), "claimed-elsewhere");
    assert!(field(&out[0], "reason").contains("otherhost:42:dead"));

    // 30 minutes after the claim, its process is taken for dead.
    let out = run_due(&sb, "2026-03-05T02:40:00Z", &[], 1);
    assert_eq!(field(&out[0], "action"), "retry");
    assert!(
        field(&out[0], "reason").contains("taking over"),
        "{}",
        out[0]
    );
    assert_eq!(out[0]["execution"]["attempt"], 2);
    let log = logs(&sb);
    assert_eq!(field(&log[0], "outcome"), "failed");
    assert!(
        field(&log[0], "error").contains("claim expired"),
        "{}",
        log[0]
    );
    assert_eq!(log.len(), 2);
}

#[test]
fn a_slot_deferred_until_its_next_slot_comes_fails() {
    let sb = Sandbox::new(CONFIG);
    create(&sb, "2026-03-04T10:00:00Z", "daily", "daily", &[]);
    let slot = t("2026-03-05T02:00:00Z");
    let deferred_at = t("2026-03-05T02:01:00Z");
    {
        let mut s = store(&sb);
        let seg = segment(&s, "daily");
        let claim = s
            .claim_slot(&seg, slot, "me", deferred_at, |_| ClaimPlan::Claim {
                attempt: 1,
                trigger: Trigger::Schedule,
                expire: None,
            })
            .unwrap();
        let exec = claim.claimed.unwrap();
        s.release_deferred(
            &exec,
            "daily__big.csv",
            t("2026-03-05T02:03:00Z"),
            deferred_at,
        )
        .unwrap();
    }
    let out = run_due(&sb, "2026-03-05T02:02:00Z", &["--dry-run"], 0);
    assert_eq!(field(&out[0], "action"), "deferred");
    assert!(field(&out[0], "reason").contains("daily__big.csv"));

    let out = run_due(&sb, "2026-03-06T02:01:00Z", &[], 1);
    assert_eq!(field(&out[0], "slot"), "2026-03-05T02:00:00Z");
    assert_eq!(field(&out[0], "action"), "missed");
    assert_eq!(field(&out[0]["execution"], "outcome"), "failed");
    assert!(field(&out[0]["execution"], "error").contains("still being written"));
    assert_eq!(field(&out[1], "action"), "run");
}

#[test]
fn slots_show_in_the_configured_zone_and_inactive_segments_are_skipped() {
    let sb = Sandbox::new(&CONFIG.replace("\"UTC\"", "\"Asia/Kolkata\""));
    create(&sb, "2026-03-01T10:00:00Z", "monthly", "monthly", &[]);
    create(&sb, "2026-03-01T10:00:00Z", "gone", "daily", &[]);
    sb.run_at("2026-03-01T10:00:00Z", &["deactivate", "gone"])
        .expect(0);
    let out = run_due(&sb, "2026-04-01T00:00:00Z", &["--dry-run"], 0);
    assert_eq!(out.len(), 1, "{out:?}");
    // 02:00 in Kolkata on April 1st is 2026-03-31T20:30Z.
    assert_eq!(field(&out[0], "slot"), "2026-04-01T02:00:00+05:30");
    assert_eq!(field(&out[0], "action"), "run");

    // A real run: the execution's times carry the same offset as the slot,
    // in run-due's output and in the log, so scripts can compare them.
    let out = run_due(&sb, "2026-04-01T00:00:00Z", &["--segment", "monthly"], 1);
    assert_eq!(
        field(&out[0]["execution"], "slot"),
        "2026-04-01T02:00:00+05:30"
    );
    assert_eq!(
        field(&out[0]["execution"], "started_at"),
        "2026-04-01T05:30:00+05:30"
    );
    let log = logs(&sb);
    assert_eq!(field(&log[0], "slot"), field(&out[0], "slot"));

    let out = run_due(
        &sb,
        "2026-04-01T00:00:00Z",
        &["--dry-run", "--segment", "gone"],
        0,
    );
    assert_eq!(field(&out[0], "action"), "none");
    assert!(field(&out[0], "reason").contains("inactive"));

    let r = sb
        .run_at("2026-04-01T00:00:00Z", &["run-due", "--segment", "nope"])
        .expect(2);
    assert!(r.stderr.contains("no segment named `nope`"), "{}", r.stderr);
}

#[test]
fn an_ended_schedule_runs_its_last_slot_once_then_nothing() {
    let sb = Sandbox::new(CONFIG);
    create(
        &sb,
        "2026-03-01T10:00:00Z",
        "short",
        "daily",
        &["--to", "2026-03-03"],
    );
    let out = run_due(&sb, "2026-04-01T00:00:00Z", &["--dry-run"], 0);
    let got: Vec<(&str, &str)> = out
        .iter()
        .map(|r| (field(r, "slot"), field(r, "action")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2026-03-02T02:00:00Z", "missed"),
            ("2026-03-03T02:00:00Z", "run")
        ]
    );
}

// ---------------------------------------------------------------------
// With a real FTP server (tests/common/ftpserver.rs): refreshes that load.

use common::ftpserver::{at, put_file, FtpServer, PASSWORD, PASSWORD_ENV};
use common::FtpSandbox;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct World {
    _root: tempfile::TempDir,
    server: FtpServer,
    sb: Sandbox,
}

fn world(created: &str) -> World {
    let root = tempfile::tempdir().unwrap();
    let server = FtpServer::start(root.path());
    let config = format!(
        "database = \"seg.db\"\ntimezone = \"UTC\"\nsync_time = \"02:00\"\nmin_file_age = \"2m\"\n\
         [retry]\nmax_attempts = 3\nbackoff = \"30m\"\n{}",
        server.config("main", "/exports")
    );
    let sb = Sandbox::new(&config);
    create(&sb, created, "seg", "daily", &[]);
    World {
        _root: root,
        server,
        sb,
    }
}

impl World {
    fn put(&self, name: &str, body: &[u8], modified: &str) {
        put_file(
            self.server.root(),
            &format!("exports/drops/{name}"),
            body,
            at(modified),
        );
    }

    fn run_due(&self, now: &str, extra: &[&str], code: i32) -> Vec<Value> {
        let mut args = vec!["run-due", "--json"];
        args.extend_from_slice(extra);
        let v = self.sb.run_ftp_at(now, &args).expect(code).json();
        v.as_array().expect("an array").clone()
    }

    fn spawn_run_due(&self, now: &str) -> Child {
        self.sb
            .cmd(&["--now", now, "run-due", "--json"])
            .env(PASSWORD_ENV, PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn segsync")
    }

    fn members(&self) -> i64 {
        let v = self.sb.run(&["show", "seg", "--json"]).expect(0).json();
        v["members"].as_i64().unwrap()
    }
}

fn csv(rows: usize) -> Vec<u8> {
    let mut s = String::from("user_id,tier\n");
    for i in 1..=rows {
        s.push_str(&format!("{i},{}\n", ["high", "mid", "low"][i % 3]));
    }
    s.into_bytes()
}

#[test]
fn ftp_after_downtime_one_run_loads_and_the_rest_are_missed() {
    let w = world("2026-03-01T10:00:00Z");
    w.put("seg__0305.csv", &csv(3), "2026-03-05T01:00:00Z");
    let out = w.run_due("2026-03-05T03:00:00Z", &[], 0);
    let actions: Vec<&str> = out.iter().map(|r| field(r, "action")).collect();
    assert_eq!(actions, vec!["missed", "missed", "missed", "run"]);
    let exec = &out[3]["execution"];
    assert_eq!(field(exec, "outcome"), "success");
    assert_eq!(field(exec, "file"), "seg__0305.csv");
    assert_eq!(exec["rows_loaded"], 3);
    assert_eq!(w.members(), 3);

    let out = w.run_due("2026-03-05T03:10:00Z", &[], 0);
    assert_eq!(out.len(), 1);
    assert_eq!(field(&out[0], "action"), "none");
    assert!(field(&out[0], "reason").contains("slot done"), "{}", out[0]);
    assert_eq!(logs(&w.sb).len(), 4);
}

#[test]
fn ftp_a_failed_slot_is_retried_after_the_backoff() {
    let w = world("2026-03-04T10:00:00Z");
    // No file yet: the first attempt fails, and the exit code says so.
    let out = w.run_due("2026-03-05T02:05:00Z", &[], 1);
    assert_eq!(field(&out[0]["execution"], "outcome"), "failed");
    w.put("seg__late.csv", &csv(5), "2026-03-05T02:10:00Z");
    let out = w.run_due("2026-03-05T02:20:00Z", &[], 0);
    assert_eq!(field(&out[0], "action"), "wait");
    let out = w.run_due("2026-03-05T02:36:00Z", &[], 0);
    assert_eq!(field(&out[0], "action"), "retry");
    assert_eq!(field(&out[0]["execution"], "outcome"), "success");
    assert_eq!(out[0]["execution"]["attempt"], 2);
    assert_eq!(w.members(), 5);
    let log = logs(&w.sb);
    let got: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (field(e, "trigger"), field(e, "outcome")))
        .collect();
    assert_eq!(got, vec![("schedule", "failed"), ("retry", "success")]);
}

#[test]
fn ftp_a_young_file_defers_the_slot_and_fails_it_when_the_next_slot_comes() {
    let w = world("2026-03-04T10:00:00Z");
    w.put("seg__0305.csv", &csv(4), "2026-03-05T02:59:00Z");
    let out = w.run_due("2026-03-05T03:00:00Z", &[], 0);
    assert_eq!(field(&out[0], "action"), "deferred");
    assert!(
        field(&out[0], "reason").contains("seg__0305.csv"),
        "{}",
        out[0]
    );
    assert!(
        logs(&w.sb).is_empty(),
        "a deferred slot leaves no execution"
    );

    // The upload never settled before the next slot: the slot fails, and
    // the next slot loads the (by then finished) file.
    w.put("seg__0305.csv", &csv(4), "2026-03-06T01:59:00Z");
    let out = w.run_due("2026-03-06T02:01:00Z", &[], 1);
    let got: Vec<(&str, &str)> = out
        .iter()
        .map(|r| (field(r, "slot"), field(r, "action")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2026-03-05T02:00:00Z", "missed"),
            ("2026-03-06T02:00:00Z", "run")
        ]
    );
    assert_eq!(field(&out[0]["execution"], "outcome"), "failed");
    assert!(field(&out[0]["execution"], "error").contains("still being written"));
    assert_eq!(field(&out[1]["execution"], "outcome"), "success");
    assert_eq!(w.members(), 4);
}

#[test]
fn ftp_eight_processes_at_once_run_each_due_slot_once() {
    let w = world("2026-03-01T10:00:00Z");
    w.put("seg__0305.csv", &csv(2000), "2026-03-05T01:00:00Z");
    let children: Vec<Child> = (0..8)
        .map(|_| w.spawn_run_due("2026-03-05T03:00:00Z"))
        .collect();
    let mut reports = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(&stdout).unwrap();
        reports.extend(v.as_array().unwrap().clone());
    }
    let ran: Vec<&Value> = reports
        .iter()
        .filter(|r| r.get("execution").is_some())
        .collect();
    let runs = ran.iter().filter(|r| field(r, "action") == "run").count();
    let missed = ran
        .iter()
        .filter(|r| field(r, "action") == "missed")
        .count();
    assert_eq!((runs, missed), (1, 3), "{reports:#?}");
    for r in reports.iter().filter(|r| r.get("execution").is_none()) {
        assert!(
            matches!(field(r, "action"), "claimed-elsewhere" | "none"),
            "unexpected {r}"
        );
    }
    let log = logs(&w.sb);
    let got: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (field(e, "slot"), field(e, "outcome")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2026-03-02T02:00:00Z", "missed"),
            ("2026-03-03T02:00:00Z", "missed"),
            ("2026-03-04T02:00:00Z", "missed"),
            ("2026-03-05T02:00:00Z", "success"),
        ]
    );
    assert_eq!(w.members(), 2000);
}

/// Whether another connection holds the database's write lock now.
fn write_locked(db: &std::path::Path) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::ZERO).unwrap();
    match conn.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => {
            conn.execute_batch("ROLLBACK").unwrap();
            false
        }
        Err(_) => true,
    }
}

#[test]
fn ftp_a_run_due_killed_mid_load_keeps_the_old_data_and_is_taken_over() {
    let w = world("2026-03-04T10:00:00Z");
    w.put("seg__0305.csv", &csv(3), "2026-03-05T01:00:00Z");
    w.run_due("2026-03-05T03:00:00Z", &[], 0);
    assert_eq!(w.members(), 3);

    const BIG: usize = 800_000;
    w.put("seg__0306.csv", &csv(BIG), "2026-03-06T01:00:00Z");
    let db = w.sb.path().join("seg.db");
    let slot = t("2026-03-06T02:00:00Z");
    let mut child = w.spawn_run_due("2026-03-06T03:00:00Z");
    let started = Instant::now();
    // Wait for the claim, then for the load transaction's write lock, and
    // kill the process inside it.
    let mut claimed = false;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "run-due finished ({status}) before it could be killed mid-load: use a bigger file"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "run-due never started loading"
        );
        if !claimed {
            let s = store(&w.sb);
            let seg = segment(&s, "seg");
            claimed = !s.slot_state(seg.id, slot).unwrap().attempts.is_empty();
        } else if write_locked(&db) {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    assert_eq!(w.members(), 3, "a killed load changed the data");
    let out = w.run_due("2026-03-06T03:10:00Z", &[], 0);
    assert_eq!(field(&out[0], "action"), "claimed-elsewhere");

    // After the lease, the next run-due takes the slot over and finishes it.
    let out = w.run_due("2026-03-06T03:31:00Z", &[], 0);
    assert_eq!(field(&out[0], "action"), "retry", "{}", out[0]);
    assert_eq!(field(&out[0]["execution"], "outcome"), "success");
    assert_eq!(w.members(), BIG as i64);
    let out = w.run_due("2026-03-06T03:40:00Z", &[], 0);
    assert_eq!(field(&out[0], "action"), "none");

    let s = store(&w.sb);
    let seg = segment(&s, "seg");
    let state = s.slot_state(seg.id, slot).unwrap();
    let got: Vec<_> = state
        .attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str()))
        .collect();
    assert_eq!(got, vec![(1, "failed"), (2, "success")]);
    assert_eq!(
        state.attempts[0].error.as_deref(),
        Some(segsync::store::EXPIRED_CLAIM)
    );
}

#[test]
fn ftp_one_email_when_a_slot_finally_fails_and_one_when_it_recovers() {
    use common::smtpserver::{Options, Security, SmtpServer};
    let smtp = SmtpServer::start(Options::new(Security::Plain));
    let w = mail_world(&smtp);
    // No file: attempt 1 fails (a retry will come: no email), attempt 2
    // fails (the last one: one email).
    w.run_due("2026-03-05T02:05:00Z", &[], 1);
    assert_eq!(smtp.messages().len(), 0);
    w.run_due("2026-03-05T02:40:00Z", &[], 1);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(smtp.messages()[0].to, vec!["crm@example.com".to_string()]);
    // The next slot loads: one recovery email.
    w.put("seg__0306.csv", &csv(3), "2026-03-06T01:00:00Z");
    let out = w.run_due("2026-03-06T02:05:00Z", &[], 0);
    assert_eq!(field(&out[0]["execution"], "outcome"), "success");
    assert_eq!(smtp.messages().len(), 2);
}

#[test]
fn ftp_a_slot_left_failing_by_downtime_is_announced_once_then_recovers() {
    use common::smtpserver::{Options, Security, SmtpServer};
    let smtp = SmtpServer::start(Options::new(Security::Plain));
    let w = mail_world(&smtp);
    // Attempt 1 fails with a retry to come: no email yet.
    w.run_due("2026-03-05T02:05:00Z", &[], 1);
    assert_eq!(smtp.messages().len(), 0);
    // Downtime: no run-due until the next slot, which loads. The first
    // slot ended in failure when its next slot came: one failure email,
    // then the recovery.
    w.put("seg__0306.csv", &csv(3), "2026-03-06T01:00:00Z");
    let out = w.run_due("2026-03-06T02:05:00Z", &[], 0);
    assert_eq!(field(&out[0]["execution"], "outcome"), "success");
    let subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].contains("refresh failed for the"),
        "{subjects:?}"
    );
    assert!(subjects[1].contains("succeeded again"), "{subjects:?}");
    // Later runs do not announce it again.
    w.run_due("2026-03-06T03:05:00Z", &[], 0);
    assert_eq!(smtp.messages().len(), 2);
}

/// A segment `seg` (daily, UTC, 2 attempts 30m apart) over a real FTP
/// server, emailing crm@example.com through `smtp`.
fn mail_world(smtp: &common::smtpserver::SmtpServer) -> World {
    let root = tempfile::tempdir().unwrap();
    let server = FtpServer::start(root.path());
    let config = format!(
        "database = \"seg.db\"\ntimezone = \"UTC\"\nsync_time = \"02:00\"\n\
         [retry]\nmax_attempts = 2\nbackoff = \"30m\"\n\
         [smtp]\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"segsync@example.com\"\ntls = \"none\"\n{}",
        smtp.port,
        server.config("main", "/exports")
    );
    let sb = Sandbox::new(&config);
    create(
        &sb,
        "2026-03-04T10:00:00Z",
        "seg",
        "daily",
        &["--recipient", "crm@example.com"],
    );
    World {
        _root: root,
        server,
        sb,
    }
}
