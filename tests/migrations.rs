//! Opening databases written by earlier versions of segsync.
//!
//! `tests/data/db_v1.sql` is a dump of a database at schema version 1 with
//! segments in every status, SCD history and executions. It must never be
//! regenerated: it stands for the databases already in the field, and each
//! new migration has to carry them forward.

mod common;

use common::Sandbox;

fn old_database(sb: &Sandbox) {
    let conn = rusqlite::Connection::open(sb.path().join("segments.db")).unwrap();
    // The dump lists tables by name, children before parents.
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    conn.execute_batch(include_str!("data/db_v1.sql")).unwrap();
}

#[test]
fn a_version_1_database_opens_and_keeps_its_data() {
    let sb = Sandbox::new(
        "timezone = \"Asia/Kolkata\"\n[[ftp]]\nname = \"apac\"\nurl = \"ftp://127.0.0.1:2121\"\n",
    );
    old_database(&sb);

    let list = sb.run(&["list", "--json"]).expect(0).json();
    let statuses: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("churn".to_string(), "inprogress".to_string()),
            ("hv".into(), "active".into()),
            ("old".into(), "inactive".into()),
            ("wip".into(), "draft".into()),
        ]
    );
    let hv = sb.run(&["show", "hv", "--json"]).expect(0).json();
    assert_eq!(hv["members"], 30);
    assert_eq!(hv["last_execution"]["rows_rejected"], 1);
    // SCD history written by version 1 still answers.
    let then = sb
        .run(&[
            "members",
            "hv",
            "--as-of",
            "2026-12-01T12:00:00Z",
            "--partition",
            "high",
        ])
        .expect(0)
        .stdout;
    assert_eq!(then.lines().count(), 1 + 15, "{then}");
    assert_eq!(
        sb.run(&["logs", "hv", "--json"])
            .expect(0)
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // And the migrated database takes new loads.
    let f = sb.write("d4.csv", "user_id,tier\n1001,high\n");
    sb.run(&[
        "--now",
        "2026-12-04T00:00:00Z",
        "refresh",
        "hv",
        "--file",
        f.to_str().unwrap(),
    ])
    .expect(0);
    assert_eq!(
        sb.run(&["members", "hv"]).expect(0).stdout,
        "user_id,tier\n1001,high\n"
    );
}

#[test]
fn a_database_from_a_newer_segsync_is_refused_untouched() {
    let sb = Sandbox::new("");
    old_database(&sb);
    let conn = rusqlite::Connection::open(sb.path().join("segments.db")).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let r = sb.run(&["list"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("newer"), "{}", r.stderr);
    let conn = rusqlite::Connection::open(sb.path().join("segments.db")).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 999);
}
