//! Loading files into a segment: every refusal and rejection of the CSV
//! rules, and the membership each load leaves (non-SCD replacement, SCD
//! history queried as of past moments). Fixtures are in tests/data/csv/.

mod common;

use chrono::{DateTime, Utc};
use rusqlite::TransactionBehavior;
use segsync::load::{self, Applied, FileRefused, LoadOptions, Prepared};
use segsync::segment::{IdType, Segment, SegmentType, Status};
use segsync::store::Store;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/csv")
        .join(name)
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Db {
    dir: tempfile::TempDir,
    store: Store,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("segments.db")).unwrap();
    Db { dir, store }
}

impl Db {
    fn segment(&mut self, name: &str, seg_type: SegmentType) -> Segment {
        let now = t("2024-01-01T00:00:00Z");
        let mut s = Segment::new_draft(name, Some(seg_type), now);
        s.status = Status::Active;
        s.id = self.store.insert_segment(&s).unwrap();
        s
    }

    fn opts(&self, ratio: f64) -> LoadOptions {
        LoadOptions {
            max_rejected_ratio: ratio,
            temp_dir: self.dir.path().to_path_buf(),
            max_decompressed_bytes: 100_000,
        }
    }

    fn prepare(&self, file: &str, ratio: f64) -> Result<Prepared, FileRefused> {
        load::prepare(&fixture(file), file, &self.opts(ratio))
    }

    /// Prepares and applies `file` in one transaction, as refresh does.
    fn load(&mut self, seg: &Segment, file: &str, at: &str, ratio: f64) -> anyhow::Result<Applied> {
        let prepared = self.prepare(file, ratio)?;
        let tx = self
            .store
            .conn()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied = load::apply(&tx, seg, prepared, t(at))?;
        tx.commit()?;
        Ok(applied)
    }

    fn members(&self, seg: &Segment) -> Vec<(String, String)> {
        self.store.members(seg.id, None).unwrap()
    }

    fn as_of(&self, seg: &Segment, at: &str) -> Vec<(String, String)> {
        self.store.members(seg.id, Some(t(at))).unwrap()
    }

    fn counts(&self, seg: &Segment) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = self
            .store
            .partitions(seg.id)
            .unwrap()
            .into_iter()
            .map(|p| (p.value, p.members))
            .collect();
        v.sort();
        v
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn base_members() -> Vec<(String, String)> {
    pairs(&[("1", "high"), ("2", "high"), ("3", "low"), ("4", "medium")])
}

/// Loads base.csv, then checks that `file` is refused with a message
/// containing every one of `expect`, and that the membership is unchanged.
#[track_caller]
fn refused(file: &str, ratio: f64, expect: &[&str]) -> FileRefused {
    let mut db = db();
    let seg = db.segment("s", SegmentType::Scd);
    db.load(&seg, "base.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    let err = db
        .load(&seg, file, "2024-01-02T02:00:00Z", ratio)
        .expect_err("the file should be refused");
    let msg = err.to_string();
    for e in expect {
        assert!(msg.contains(e), "`{msg}` should contain `{e}`");
    }
    assert_eq!(
        db.members(&seg),
        base_members(),
        "membership changed after {file}"
    );
    assert_eq!(db.as_of(&seg, "2024-01-03T00:00:00Z"), base_members());
    err.downcast::<FileRefused>().expect("a FileRefused")
}

#[test]
fn first_load_fills_segment_and_partitions() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    let a = db
        .load(&seg, "base.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    assert_eq!(
        a,
        Applied {
            rows_loaded: 4,
            added: 4,
            removed: 0,
            changed: 0
        }
    );
    assert_eq!(db.members(&seg), base_members());
    assert_eq!(
        db.counts(&seg),
        vec![("high".into(), 2), ("low".into(), 1), ("medium".into(), 1)]
    );
    let seg = db.store.segment("s").unwrap().unwrap();
    assert_eq!(seg.id_type, Some(IdType::UserId));
    assert_eq!(seg.partition_column.as_deref(), Some("segment"));
}

#[test]
fn bad_header_lists_accepted_names() {
    let r = refused(
        "bad_header.csv",
        0.05,
        &[
            "bad_header.csv",
            "line 1",
            "`userid`",
            "`user_id`, `mobile`, `email`, `external_id`",
        ],
    );
    assert_eq!(r.rows_read, 0);
}

#[test]
fn header_needs_a_partition_column() {
    refused(
        "one_column.csv",
        0.05,
        &["one_column.csv", "line 1", "partition"],
    );
}

#[test]
fn empty_file_and_header_only_are_refused() {
    refused("empty.csv", 0.05, &["empty.csv", "is empty", "header"]);
    refused(
        "header_only.csv",
        0.05,
        &["header_only.csv", "no data rows"],
    );
}

#[test]
fn invalid_utf8_names_line_and_field() {
    refused(
        "invalid_utf8.csv",
        0.05,
        &["invalid_utf8.csv", "line 3", "field 2 (`segment`)", "UTF-8"],
    );
}

#[test]
fn bom_is_ignored_plain_and_gzip() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    db.load(&seg, "bom.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    assert_eq!(db.members(&seg), pairs(&[("10", "a"), ("11", "b")]));
    db.load(&seg, "bom.csv.gz", "2024-01-02T02:00:00Z", 0.0)
        .unwrap();
    assert_eq!(db.members(&seg), pairs(&[("10", "a"), ("11", "b")]));
}

#[test]
fn crlf_quoted_fields_and_ignored_columns() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    let p = db.prepare("crlf_quoted.csv", 0.0).unwrap();
    assert_eq!(p.partition_column, "segment, name");
    assert_eq!(p.notes, vec!["ignored columns: extra, more".to_string()]);
    assert_eq!((p.rows_read, p.rows_rejected), (3, 0));
    db.load(&seg, "crlf_quoted.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    assert_eq!(
        db.members(&seg),
        pairs(&[
            ("20", "big, spender"),
            ("21", "say \"hi\""),
            ("22", "plain")
        ])
    );
}

#[test]
fn line_numbers_count_crlf_blank_lines_and_quoted_newlines() {
    let db = db();
    let p = db.prepare("crlf_lines.csv", 0.5).unwrap();
    assert_eq!((p.rows_read, p.rows_rejected), (3, 1));
    assert_eq!(p.rejected[0].line, 5);
    assert_eq!(p.rejected[0].content.as_deref(), Some("bad,a"));
}

#[test]
fn duplicates_count_once_and_conflicts_reject_the_later_row() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    let p = db.prepare("duplicates.csv", 0.5).unwrap();
    assert_eq!((p.rows_read, p.rows_rejected, p.rows_loaded()), (6, 1, 3));
    assert_eq!(p.rejected.len(), 1);
    let r = &p.rejected[0];
    assert_eq!(r.line, 5);
    assert_eq!(r.field.as_deref(), Some("segment"));
    assert!(
        r.reason.contains("`c`") && r.reason.contains("line 3"),
        "{}",
        r.reason
    );
    assert!(
        p.notes.iter().any(|n| n.contains("2 duplicate rows")),
        "{:?}",
        p.notes
    );
    db.load(&seg, "duplicates.csv", "2024-01-01T02:00:00Z", 0.5)
        .unwrap();
    assert_eq!(
        db.members(&seg),
        pairs(&[("30", "a"), ("31", "b"), ("32", "a")])
    );
}

#[test]
fn too_many_rejected_refuses_and_keeps_the_rows() {
    let r = refused(
        "too_many_rejected.csv",
        0.05,
        &[
            "too_many_rejected.csv",
            "3 of 5 rows",
            "60.00%",
            "max_rejected_ratio",
        ],
    );
    assert_eq!((r.rows_read, r.rows_rejected), (5, 3));
    let lines: Vec<u64> = r.rejected.iter().map(|x| x.line).collect();
    assert_eq!(lines, vec![3, 4, 5]);
    assert_eq!(r.rejected[0].field.as_deref(), Some("user_id"));
    assert!(r.rejected[0]
        .reason
        .contains("`x` is not a positive integer"));
    assert_eq!(r.rejected[0].content.as_deref(), Some("x,a"));
    assert_eq!(r.rejected[1].field.as_deref(), Some("segment"));
    assert!(r.rejected[1].reason.contains("partition value is empty"));
}

#[test]
fn rejected_rows_within_ratio_are_loaded_around() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    let p = db.prepare("too_many_rejected.csv", 0.6).unwrap();
    assert_eq!((p.rows_read, p.rows_rejected), (5, 3));
    db.load(&seg, "too_many_rejected.csv", "2024-01-01T02:00:00Z", 0.6)
        .unwrap();
    assert_eq!(db.members(&seg), pairs(&[("40", "a"), ("43", "a")]));
}

#[test]
fn no_valid_row_is_refused_even_when_ratio_allows() {
    let r = refused(
        "no_valid_row.csv",
        1.0,
        &["no_valid_row.csv", "no valid row", "line 2"],
    );
    assert_eq!((r.rows_read, r.rows_rejected), (2, 2));
}

#[test]
fn gzip_by_name_and_by_magic() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    let want = pairs(&[("50", "gz"), ("51", "gz"), ("52", "zip")]);
    db.load(&seg, "good.csv.gz", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    assert_eq!(db.members(&seg), want);
    db.load(&seg, "base.csv", "2024-01-02T02:00:00Z", 0.0)
        .unwrap();
    db.load(&seg, "gzip_without_suffix.csv", "2024-01-03T02:00:00Z", 0.0)
        .unwrap();
    assert_eq!(db.members(&seg), want);
}

#[test]
fn gzip_bomb_is_capped() {
    refused(
        "bomb.csv.gz",
        0.05,
        &["bomb.csv.gz", "decompresses to more than 100000 bytes"],
    );
}

#[test]
fn too_many_distinct_partitions_are_refused() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    db.load(&seg, "base.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    let mut csv = String::from("user_id,segment\n");
    for i in 1..=load::MAX_PARTITIONS + 1 {
        csv.push_str(&format!("{i},p{i}\n"));
    }
    let path = db.dir.path().join("wide.csv");
    std::fs::write(&path, csv).unwrap();
    let err = load::prepare(&path, "wide.csv", &db.opts(0.0)).unwrap_err();
    let line = format!("line {}", load::MAX_PARTITIONS + 2);
    assert!(err.message.contains("`wide.csv`"), "{}", err.message);
    assert!(err.message.contains(&line), "{}", err.message);
    assert!(
        err.message.contains("distinct partition values"),
        "{}",
        err.message
    );
    assert_eq!(db.members(&seg), base_members());
}

#[test]
fn corrupt_gzip_is_refused() {
    refused(
        "corrupt.csv.gz",
        0.05,
        &["corrupt.csv.gz", "not a valid gzip file"],
    );
}

#[test]
fn identifier_type_change_is_refused() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::Scd);
    db.load(&seg, "base.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    let prepared = db.prepare("emails.csv", 0.0).unwrap();
    let seg = db.store.segment("s").unwrap().unwrap();
    let early = load::check_segment(&seg, &prepared).unwrap_err();
    assert!(early.message.contains("`email`") && early.message.contains("`user_id`"));
    let err = db
        .load(&seg, "emails.csv", "2024-01-02T02:00:00Z", 0.0)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`emails.csv` identifies users by `email`"),
        "{msg}"
    );
    assert!(msg.contains("holds `user_id`"), "{msg}");
    assert!(err.downcast_ref::<FileRefused>().is_some());
    assert_eq!(db.members(&seg), base_members());
    let seg = db.store.segment("s").unwrap().unwrap();
    assert_eq!(seg.id_type, Some(IdType::UserId));
}

#[test]
fn emails_compare_case_insensitively() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    let p = db.prepare("emails.csv", 0.0).unwrap();
    assert_eq!((p.rows_read, p.rows_rejected, p.rows_loaded()), (3, 0, 2));
    db.load(&seg, "emails.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    assert_eq!(
        db.members(&seg),
        pairs(&[("ann@example.com", "gold"), ("bob@example.com", "silver")])
    );
}

#[test]
fn mobiles_and_external_ids() {
    let mut db = db();
    let seg = db.segment("m", SegmentType::NonScd);
    let p = db.prepare("mobiles.csv", 0.5).unwrap();
    assert_eq!(p.rows_rejected, 1);
    assert!(p.rejected[0].reason.contains('+'));
    db.load(&seg, "mobiles.csv", "2024-01-01T02:00:00Z", 0.5)
        .unwrap();
    assert_eq!(
        db.members(&seg),
        pairs(&[("14155552671", "west"), ("919972752991", "south")])
    );

    let seg = db.segment("x", SegmentType::NonScd);
    let p = db.prepare("external_ids.csv", 0.5).unwrap();
    assert_eq!(p.rows_rejected, 1);
    assert_eq!(p.rejected[0].line, 4);
    assert!(p.rejected[0].reason.contains("129 characters"));
    db.load(&seg, "external_ids.csv", "2024-01-01T02:00:00Z", 0.5)
        .unwrap();
    assert_eq!(db.members(&seg), pairs(&[("A-1", "x"), ("a-1", "y")]));
}

#[test]
fn non_scd_replaces_membership() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::NonScd);
    db.load(&seg, "base.csv", "2024-01-01T02:00:00Z", 0.0)
        .unwrap();
    let a = db
        .load(&seg, "scd_b.csv", "2024-01-02T02:00:00Z", 0.0)
        .unwrap();
    // base: 1 high, 2 high, 3 low, 4 medium; scd_b: 1 low, 3 low, 4 high.
    assert_eq!((a.added, a.removed, a.changed, a.rows_loaded), (0, 1, 2, 3));
    assert_eq!(
        db.members(&seg),
        pairs(&[("1", "low"), ("3", "low"), ("4", "high")])
    );
    assert_eq!(db.counts(&seg), vec![("high".into(), 1), ("low".into(), 2)]);
    let history: i64 = db
        .store
        .conn()
        .query_row("SELECT count(*) FROM member_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(history, 0, "non-SCD segments keep no history");
}

#[test]
fn scd_history_answers_as_of_any_moment() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::Scd);
    let t1 = "2024-01-01T02:00:00Z";
    let t2 = "2024-02-01T02:00:00Z";
    let t3 = "2024-03-01T02:00:00Z";
    db.load(&seg, "scd_a.csv", t1, 0.0).unwrap();
    let b = db.load(&seg, "scd_b.csv", t2, 0.0).unwrap();
    assert_eq!((b.added, b.removed, b.changed), (1, 1, 1));
    let c = db.load(&seg, "scd_c.csv", t3, 0.0).unwrap();
    assert_eq!((c.added, c.removed, c.changed), (1, 1, 1));

    let a_set = pairs(&[("1", "high"), ("2", "high"), ("3", "low")]);
    let b_set = pairs(&[("1", "low"), ("3", "low"), ("4", "high")]);
    let c_set = pairs(&[("1", "high"), ("4", "high"), ("5", "low")]);
    assert_eq!(db.as_of(&seg, "2023-12-31T00:00:00Z"), vec![]);
    assert_eq!(db.as_of(&seg, "2024-01-01T01:59:59Z"), vec![]);
    assert_eq!(db.as_of(&seg, t1), a_set);
    assert_eq!(db.as_of(&seg, "2024-01-15T00:00:00Z"), a_set);
    assert_eq!(db.as_of(&seg, "2024-02-01T01:59:59Z"), a_set);
    assert_eq!(db.as_of(&seg, t2), b_set);
    assert_eq!(db.as_of(&seg, "2024-02-29T23:00:00Z"), b_set);
    assert_eq!(db.as_of(&seg, t3), c_set);
    assert_eq!(db.as_of(&seg, "2030-01-01T00:00:00Z"), c_set);
    assert_eq!(db.members(&seg), c_set);
    assert_eq!(db.counts(&seg), vec![("high".into(), 2), ("low".into(), 1)]);

    let mut high = Vec::new();
    db.store
        .for_each_member(
            seg.id,
            Some("high"),
            Some(t("2024-01-15T00:00:00Z")),
            |k, _| {
                high.push(segsync::store::key_text(k)?);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(high, vec!["1", "2"]);
}

#[test]
fn scd_reload_in_the_same_slot_leaves_no_empty_history() {
    let mut db = db();
    let seg = db.segment("s", SegmentType::Scd);
    let t1 = "2024-01-01T02:00:00Z";
    db.load(&seg, "scd_a.csv", t1, 0.0).unwrap();
    db.load(&seg, "scd_b.csv", t1, 0.0).unwrap();
    db.load(&seg, "scd_c.csv", t1, 0.0).unwrap();
    let history: i64 = db
        .store
        .conn()
        .query_row("SELECT count(*) FROM member_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(history, 0);
    assert_eq!(
        db.as_of(&seg, t1),
        pairs(&[("1", "high"), ("4", "high"), ("5", "low")])
    );
}

/// `segsync members` on a database filled through the library.
mod members_command {
    use super::*;
    use common::Sandbox;

    fn sandbox() -> (Sandbox, Db) {
        let sb = Sandbox::new("database = \"segments.db\"\ntimezone = \"Asia/Kolkata\"\n");
        let store = Store::open(&sb.path().join("segments.db")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        (sb, Db { dir, store })
    }

    #[test]
    fn prints_a_valid_upload_file_in_key_order() {
        let (sb, mut db) = sandbox();
        let seg = db.segment("vip", SegmentType::Scd);
        // Slots at 02:00 IST = 20:30 UTC the day before.
        db.load(&seg, "scd_a.csv", "2023-12-31T20:30:00Z", 0.0)
            .unwrap();
        db.load(&seg, "scd_b.csv", "2024-01-31T20:30:00Z", 0.0)
            .unwrap();
        db.load(&seg, "crlf_quoted.csv", "2024-02-29T20:30:00Z", 0.0)
            .unwrap();

        let out = sb.run(&["members", "vip"]).expect(0);
        assert_eq!(
            out.stdout,
            "user_id,\"segment, name\"\n20,\"big, spender\"\n21,\"say \"\"hi\"\"\"\n22,plain\n"
        );
        // The output loads back as is.
        let again = sb.write("again.csv", &out.stdout);
        let p = load::prepare(&again, "again.csv", &db.opts(0.0)).unwrap();
        assert_eq!(
            (p.rows_read, p.rows_rejected, p.partition_column.as_str()),
            (3, 0, "segment, name")
        );

        // A date is the start of that day in the configured zone: on
        // 2024-02-01 IST the slot of 2024-02-01 02:00 IST has not come yet.
        let out = sb
            .run(&["members", "vip", "--as-of", "2024-02-01"])
            .expect(0);
        assert_eq!(
            out.stdout,
            "user_id,\"segment, name\"\n1,high\n2,high\n3,low\n"
        );
        let out = sb
            .run(&[
                "members",
                "vip",
                "--as-of",
                "2024-02-01T02:00:00+05:30",
                "--partition",
                "low",
            ])
            .expect(0);
        assert_eq!(out.stdout, "user_id,\"segment, name\"\n1,low\n3,low\n");

        let out = sb.run(&["members", "vip", "--partition", "gold"]).expect(2);
        assert!(out.stderr.contains("no partition `gold`"), "{}", out.stderr);
        assert!(out.stderr.contains("big, spender"), "{}", out.stderr);
        let out = sb
            .run(&["members", "vip", "--as-of", "yesterday"])
            .expect(2);
        assert!(out.stderr.contains("YYYY-MM-DD"), "{}", out.stderr);
    }

    #[test]
    fn refuses_as_of_for_non_scd_and_inactive_segments() {
        let (sb, mut db) = sandbox();
        let seg = db.segment("flat", SegmentType::NonScd);
        db.load(&seg, "base.csv", "2024-01-01T02:00:00Z", 0.0)
            .unwrap();
        let out = sb.run(&["members", "flat"]).expect(0);
        assert_eq!(
            out.stdout,
            "user_id,segment\n1,high\n2,high\n3,low\n4,medium\n"
        );
        let out = sb
            .run(&["members", "flat", "--as-of", "2024-01-01"])
            .expect(2);
        assert!(out.stderr.contains("non-scd"), "{}", out.stderr);
        assert!(out.stdout.is_empty());

        let mut seg = db.store.segment("flat").unwrap().unwrap();
        seg.status = Status::Inactive;
        db.store.update_segment(&seg).unwrap();
        let out = sb.run(&["members", "flat"]).expect(2);
        assert!(out.stderr.contains("is inactive"), "{}", out.stderr);
        assert!(out.stderr.contains("--activate"), "{}", out.stderr);

        let out = sb.run(&["members", "nope"]).expect(2);
        assert!(
            out.stderr.contains("no segment named `nope`"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn common_export_mistakes_get_a_hint() {
    refused(
        "semicolons.csv",
        0.05,
        &["semicolons.csv", "line 1", "separated by `;`", "commas"],
    );
    refused(
        "utf16.csv",
        0.05,
        &["utf16.csv", "UTF-16", "save the file as UTF-8"],
    );
    // 20 good rows and one whose quote is never closed: loaded, with the
    // reason on the rejected row.
    let db = db();
    let p = db.prepare("unclosed_quote.csv", 0.05).unwrap();
    assert_eq!(p.rows_rejected, 1);
    assert_eq!(p.rejected[0].line, 22);
    assert!(
        p.rejected[0].reason.contains("never closed"),
        "{}",
        p.rejected[0].reason
    );
}
