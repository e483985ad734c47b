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
