//! `segsync refresh` end to end against a real (in-process) FTP server:
//! loads, history, unchanged files, young files, and failures that leave
//! the segment exactly as it was.

mod common;

use common::ftpserver::{at, put_file, FtpServer};
use common::{FtpSandbox, Sandbox};

const DAY1: &str = "2026-12-01T03:00:00Z";
const DAY2: &str = "2026-12-02T03:00:00Z";
const DAY3: &str = "2026-12-03T03:00:00Z";

struct World {
    server: FtpServer,
    sb: Sandbox,
}

fn world(tls: bool) -> World {
    let root = tempfile::tempdir().unwrap().keep();
    let server = if tls {
        FtpServer::start_tls(&root)
    } else {
        FtpServer::start(&root)
    };
    let config = format!(
        "timezone = \"UTC\"\nmin_file_age = \"2m\"\n{}",
        server.config("main", "/exports")
    );
    let sb = Sandbox::new(&config);
    sb.run_at(
        "2026-11-30T12:00:00Z",
        &[
            "create",
            "hv",
            "--type",
            "scd",
            "--ftp",
            "main",
            "--path",
            "hv",
            "--frequency",
            "daily",
        ],
    )
    .expect(0);
    World { server, sb }
}

impl World {
    fn put(&self, name: &str, body: &str, modified: &str) {
        put_file(
            self.server.root(),
            &format!("exports/hv/{name}"),
            body.as_bytes(),
            at(modified),
        );
    }

    fn members(&self, extra: &[&str]) -> String {
        let mut args = vec!["members", "hv"];
        args.extend_from_slice(extra);
        self.sb.run_at(DAY3, &args).expect(0).stdout
    }

    fn last(&self) -> serde_json::Value {
        self.sb
            .run_at(DAY3, &["logs", "hv", "--json", "--limit", "1"])
            .expect(0)
            .json()[0]
            .clone()
    }
}

const V1: &str = "user_id,tier\n1,high\n2,low\n3,low\n";
const V2: &str = "user_id,tier\n1,low\n2,low\n4,high\n";

#[test]
fn loads_newest_file_and_keeps_history() {
    let w = world(false);
    w.put(
        "hv__old.csv",
        "user_id,tier\n9,high\n",
        "2026-11-20T00:00:00Z",
    );
    w.put("hv__20261201.csv", V1, "2026-12-01T01:00:00Z");
    w.put(
        "other__20261201.csv",
        "user_id,tier\n7,high\n",
        "2026-12-01T02:00:00Z",
    );
    let out = w.sb.run_ftp_at(DAY1, &["refresh", "hv"]).expect(0).stdout;
    assert!(
        out.contains("success") && out.contains("hv__20261201.csv"),
        "{out}"
    );
    assert_eq!(w.members(&[]), "user_id,tier\n1,high\n2,low\n3,low\n");
    let e = w.last();
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["trigger"], "manual");
    assert_eq!(e["file_size"], V1.len());
    assert_eq!(e["rows_loaded"], 3);
    assert_eq!(e["added"], 3);
    assert_eq!(e["sha256"].as_str().unwrap().len(), 64);
    let show =
        w.sb.run_at(DAY1, &["show", "hv", "--json"])
            .expect(0)
            .json();
    assert_eq!(show["status"], "active");
    assert_eq!(show["members"], 3);

    w.put("hv__20261202.csv", V2, "2026-12-02T01:00:00Z");
    w.sb.run_ftp_at(DAY2, &["refresh", "hv"]).expect(0);
    let e = w.last();
    assert_eq!(
        (
            e["added"].as_i64(),
            e["removed"].as_i64(),
            e["changed"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(w.members(&[]), "user_id,tier\n1,low\n2,low\n4,high\n");
    assert_eq!(
        w.members(&["--partition", "high"]),
        "user_id,tier\n4,high\n"
    );
    // SCD history: as of day 1 the first file's membership is back.
    assert_eq!(
        w.members(&["--as-of", "2026-12-01T12:00:00Z"]),
        "user_id,tier\n1,high\n2,low\n3,low\n"
    );
}

#[test]
fn same_file_again_is_unchanged() {
    let w = world(false);
    w.put("hv__a.csv", V1, "2026-12-01T01:00:00Z");
    w.sb.run_ftp_at(DAY1, &["refresh", "hv"]).expect(0);
    let first = w.last();
    w.sb.run_ftp_at(DAY2, &["refresh", "hv"]).expect(0);
    let e = w.last();
    assert_eq!(e["outcome"], "unchanged");
    assert_eq!(e["file"], "hv__a.csv");
    assert_eq!(e["sha256"], first["sha256"]);
    assert_eq!(w.members(&[]), "user_id,tier\n1,high\n2,low\n3,low\n");
}

#[test]
fn young_file_is_not_loaded_and_no_older_file_is_used() {
    let w = world(false);
    w.put("hv__a.csv", V1, "2026-12-01T01:00:00Z");
    w.sb.run_ftp_at(DAY1, &["refresh", "hv"]).expect(0);
    // Modified one minute before "now": still being written.
    w.put("hv__b.csv", V2, "2026-12-02T02:59:00Z");
    let r = w.sb.run_ftp_at(DAY2, &["refresh", "hv"]).expect(1);
    assert!(
        r.stderr.contains("hv__b.csv") && r.stderr.contains("min_file_age"),
        "{}",
        r.stderr
    );
    assert_eq!(w.members(&[]), "user_id,tier\n1,high\n2,low\n3,low\n");
    // The deferral leaves no execution row behind.
    let logs =
        w.sb.run_at(DAY3, &["logs", "hv", "--json"])
            .expect(0)
            .json();
    assert_eq!(logs.as_array().unwrap().len(), 1);
}

#[test]
fn bad_files_fail_and_leave_the_segment_as_it_was() {
    let w = world(false);
    w.put("hv__a.csv", V1, "2026-12-01T01:00:00Z");
    w.sb.run_ftp_at(DAY1, &["refresh", "hv"]).expect(0);
    let before =
        w.sb.run_at(DAY3, &["show", "hv", "--json"])
            .expect(0)
            .json();

    let cases = [
        ("hv__b.csv", "customer,tier\n1,high\n", "customer"),
        (
            "hv__c.csv",
            "email,tier\na@example.com,high\n",
            "holds `user_id`",
        ),
        (
            "hv__d.csv",
            "user_id,tier\nx,high\ny,low\n1,high\n",
            "rejected",
        ),
    ];
    for (i, (name, body, needle)) in cases.iter().enumerate() {
        w.put(name, body, &format!("2026-12-02T0{i}:00:00Z"));
        let r = w.sb.run_ftp_at(DAY2, &["refresh", "hv"]).expect(1);
        let e = w.last();
        assert_eq!(e["outcome"], "failed");
        assert!(
            e["error"].as_str().unwrap().contains(needle),
            "{name}: {}",
            e["error"]
        );
        assert!(r.stdout.contains("failed"), "{}", r.stdout);
        assert_eq!(
            w.members(&[]),
            "user_id,tier\n1,high\n2,low\n3,low\n",
            "{name}"
        );
        let now =
            w.sb.run_at(DAY3, &["show", "hv", "--json"])
                .expect(0)
                .json();
        assert_eq!(now["status"], "active");
        assert_eq!(now["partitions"], before["partitions"]);
    }
    // The refused file's rejected rows are counted on the execution.
    let e = w.last();
    assert_eq!(e["rows_read"], 3);
    assert_eq!(e["rows_rejected"], 2);
}

#[test]
fn missing_file_or_folder_is_named() {
    let w = world(false);
    let r = w.sb.run_ftp_at(DAY1, &["refresh", "hv"]).expect(1);
    let err = w.last()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("/exports/hv") && err.contains("`path`"),
        "{err}"
    );
    assert!(r.stdout.contains("failed"));

    w.put("other__a.csv", V1, "2026-12-01T01:00:00Z");
    w.sb.run_ftp_at(DAY1, &["refresh", "hv"]).expect(1);
    let err = w.last()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("hv__<suffix>.csv") && err.contains("/exports/hv"),
        "{err}"
    );
}

#[test]
fn ftps_refresh_with_private_ca() {
    let w = world(true);
    w.put("hv__a.csv", V1, "2026-12-01T01:00:00Z");
    w.sb.run_ftp_at(DAY1, &["refresh", "hv"]).expect(0);
    assert_eq!(w.members(&[]), "user_id,tier\n1,high\n2,low\n3,low\n");
}

#[test]
fn manual_segments_load_local_files() {
    let sb = Sandbox::new("timezone = \"UTC\"\n");
    sb.run_at(DAY1, &["create", "vip", "--type", "non-scd"])
        .expect(0);
    let r = sb.run_at(DAY1, &["refresh", "vip"]).expect(2);
    assert!(r.stderr.contains("--file"), "{}", r.stderr);
    // A mistyped path or a folder is a usage error and logs no execution.
    let r = sb
        .run_at(DAY1, &["refresh", "vip", "--file", "no-such.csv"])
        .expect(2);
    assert!(r.stderr.contains("--file"), "{}", r.stderr);
    assert!(r.stderr.contains("no-such.csv"), "{}", r.stderr);
    sb.run_at(DAY1, &["refresh", "vip", "--file", "."])
        .expect(2);
    assert_eq!(
        sb.run_at(DAY1, &["logs", "--json"]).expect(0).json(),
        serde_json::json!([])
    );
    // members refuses an inprogress segment: nothing has loaded yet.
    sb.run_at(DAY1, &["members", "vip"]).expect(2);
    let f = sb.write(
        "vip.csv",
        "email,level\nA@Example.com,gold\nb@example.com,silver\n",
    );
    sb.run_at(DAY1, &["refresh", "vip", "--file", f.to_str().unwrap()])
        .expect(0);
    let out = sb.run_at(DAY1, &["members", "vip"]).expect(0).stdout;
    assert_eq!(
        out,
        "email,level\na@example.com,gold\nb@example.com,silver\n"
    );
    let f = sb.write("vip2.csv", "email,level\nb@example.com,gold\n");
    sb.run_at(DAY2, &["refresh", "vip", "--file", f.to_str().unwrap()])
        .expect(0);
    assert_eq!(
        sb.run_at(DAY2, &["members", "vip"]).expect(0).stdout,
        "email,level\nb@example.com,gold\n"
    );
    // Non-SCD keeps no history.
    sb.run_at(DAY2, &["members", "vip", "--as-of", "2026-12-01"])
        .expect(2);
}

#[test]
fn logs_rejected_lists_the_kept_rejected_rows() {
    let sb = Sandbox::new("timezone = \"UTC\"\nmax_rejected_ratio = 0.5\n");
    sb.run_at(DAY1, &["create", "vip", "--type", "non-scd"])
        .expect(0);
    let f = sb.write(
        "vip.csv",
        "user_id,level\n1,gold\nabc,gold\n2,silver\n-4,gold\n",
    );
    sb.run_at(DAY1, &["refresh", "vip", "--file", f.to_str().unwrap()])
        .expect(0);
    // Without the option the log line has only the count.
    let plain = sb.run_at(DAY1, &["logs", "vip"]).expect(0).stdout;
    assert!(!plain.contains("line 3"), "{plain}");
    let out = sb
        .run_at(DAY1, &["logs", "vip", "--rejected"])
        .expect(0)
        .stdout;
    assert!(out.contains("line 3: user_id: "), "{out}");
    assert!(out.contains("[abc,gold]"), "{out}");
    assert!(out.contains("line 5: user_id: "), "{out}");
    let v = sb
        .run_at(DAY1, &["logs", "vip", "--rejected", "--json"])
        .expect(0)
        .json();
    let rejected = v[0]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["line"], 3);
    assert_eq!(rejected[0]["field"], "user_id");
    assert_eq!(v[0]["rows_rejected"], 2);
}

#[test]
fn members_as_json_keeps_the_file_header_names() {
    let sb = Sandbox::new("timezone = \"UTC\"\n");
    sb.run_at(DAY1, &["create", "ids", "--type", "scd"])
        .expect(0);
    let f = sb.write(
        "ids.csv",
        "user_id,tier\n7,high\n3,\"low, \"\"really\"\"\"\n",
    );
    sb.run_at(DAY1, &["refresh", "ids", "--file", f.to_str().unwrap()])
        .expect(0);
    let v = sb
        .run_at(DAY1, &["members", "ids", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        v,
        serde_json::json!([
            {"user_id": 3, "tier": "low, \"really\""},
            {"user_id": 7, "tier": "high"}
        ])
    );
    let none = sb
        .run_at(DAY1, &["members", "ids", "--json", "--as-of", "2020-01-01"])
        .expect(0);
    assert_eq!(none.json(), serde_json::json!([]));
}
