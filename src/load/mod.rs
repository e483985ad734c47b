//! Streaming validation, external sort and the membership merge.
//!
//! A load has two halves, and the split is the point of this module:
//!
//! 1. [`prepare`] reads the file once, streaming (plain or gzip), checks
//!    the header and every row with the rules of `validate`, and feeds the
//!    valid rows to an external sort (`sort`): bounded-memory chunks spilled
//!    to temporary files in `LoadOptions::temp_dir`, then a k-way merge that
//!    drops duplicates and rejects conflicting rows. The result is one
//!    sorted, deduplicated run on disk plus the final counts and rejected
//!    rows. No database access, no transaction: this is the slow part.
//! 2. [`apply`] runs inside the caller's write transaction and walks that
//!    run side by side with the segment's current members, read in key
//!    order, writing only the differences (module `apply`).
//!
//! Memory stays flat whatever the file's size: the sort chunk has a fixed
//! budget, the merge holds one entry per run, and `apply` reads the
//! database in fixed-size batches. What can grow is the set of distinct
//! partition values, so it is capped ([`MAX_PARTITIONS`]).

mod apply;
mod input;
mod sort;

pub use apply::{apply, Applied};

use crate::segment::{IdType, Segment};
use crate::store::RejectedRow;
use crate::validate::{self, Key};
use sort::{Dedupe, FinalWriter, RawVerdict, SortKey, Sorter, TextKey};
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Rejected rows kept per execution (all are counted).
pub const MAX_KEPT_REJECTED: usize = 1000;

/// Most distinct partition values a file may have. Partitions are a
/// handful of labels (`high`, `medium`, `low`); tens of thousands mean the
/// wrong column was exported, and their table must stay in memory.
pub const MAX_PARTITIONS: usize = 100_000;

/// Memory the sort's two chunks may hold together (one filling while the
/// other is sorted and spilled to disk; a few entries under unit tests, so
/// that they merge several runs).
const SORT_BUDGET: usize = if cfg!(test) { 600 } else { 48 * 1024 * 1024 };

/// Longest raw row kept in a rejected row, in characters.
const MAX_CONTENT_CHARS: usize = 200;

/// Settings of one load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Share of rejected rows (rejected / rows read) above which the whole
    /// file is refused.
    pub max_rejected_ratio: f64,
    /// Where sort runs go; they are deleted when the load is done.
    pub temp_dir: PathBuf,
    /// A gzip file that decompresses to more than this is refused.
    pub max_decompressed_bytes: u64,
}

/// A validated, sorted and deduplicated file, ready for [`apply`].
#[derive(Debug)]
pub struct Prepared {
    pub id_type: IdType,
    /// The second header, trimmed.
    pub partition_column: String,
    /// Data rows read (the header not counted).
    pub rows_read: u64,
    /// Rows rejected, all of them.
    pub rows_rejected: u64,
    /// The first [`MAX_KEPT_REJECTED`] rejected rows, by line.
    pub rejected: Vec<RejectedRow>,
    /// Remarks for the execution log (ignored columns, duplicates).
    pub notes: Vec<String>,
    /// The file's display name, for messages.
    file: String,
    /// Distinct users to load.
    rows_loaded: u64,
    /// Partition values by index, as used in the run.
    partitions: Vec<String>,
    /// Members per partition index.
    counts: Vec<u64>,
    /// The final run: sorted by key, one entry per user.
    run: File,
}

impl Prepared {
    /// Distinct users the file holds: what the segment will have.
    pub fn rows_loaded(&self) -> u64 {
        self.rows_loaded
    }

    /// Partition values with their member counts, by value.
    pub fn partitions(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .partitions
            .iter()
            .cloned()
            .zip(self.counts.iter().copied())
            .collect();
        v.sort();
        v
    }
}

/// Why a file was refused, worded for the person who fixes it: the file,
/// the line and field, and what to do. Nothing was loaded.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct FileRefused {
    pub message: String,
    /// Rows read before the refusal (all of them when refused for too many
    /// rejected rows).
    pub rows_read: u64,
    pub rows_rejected: u64,
    /// The first rejected rows, by line, when the refusal is about them.
    pub rejected: Vec<RejectedRow>,
}

impl FileRefused {
    fn new(message: String) -> Self {
        FileRefused {
            message,
            rows_read: 0,
            rows_rejected: 0,
            rejected: Vec::new(),
        }
    }
}

/// Refuses a file whose identifier type differs from the one the segment
/// already holds (a `user_id` segment cannot take emails). The caller may
/// run this before opening its transaction; [`apply`] checks again.
pub fn check_segment(segment: &Segment, prepared: &Prepared) -> Result<(), FileRefused> {
    match segment.id_type {
        Some(t) if t != prepared.id_type => Err(FileRefused::new(id_type_change(
            &segment.name,
            t,
            prepared.id_type,
            &prepared.file,
        ))),
        _ => Ok(()),
    }
}

fn id_type_change(segment: &str, held: IdType, file_type: IdType, file: &str) -> String {
    format!(
        "`{file}` identifies users by `{file_type}` but segment `{segment}` holds `{held}` \
         identifiers: upload a file whose first header is `{held}`, or create a new segment \
         for `{file_type}` data"
    )
}

/// A hint for a first header such as `user_id;segment`: the file is
/// separated by something other than commas.
fn separator_hint(first: &str) -> String {
    for sep in [';', '\t', '|'] {
        if let Some((head, _)) = first.split_once(sep) {
            if validate::parse_id_type(head).is_some() {
                let shown = if sep == '\t' {
                    "tabs".to_string()
                } else {
                    format!("`{sep}`")
                };
                return format!(
                    "; the file seems separated by {shown}: segsync reads comma-separated \
                     files, so export it with commas"
                );
            }
        }
    }
    String::new()
}

/// A hint for a one-column row whose only field holds a comma or a line
/// break: it can only have come from a quote that was never closed.
fn unclosed_quote_hint(field: &str) -> &'static str {
    if field.contains(',') || field.contains('\n') {
        " (a quote `\"` opened on this line is never closed, so the rest became one field)"
    } else {
        ""
    }
}

/// Reads, validates, sorts and deduplicates the CSV at `path`.
/// `display_name` names the file in messages (the remote name for a
/// download). Touches no database.
pub fn prepare(
    path: &Path,
    display_name: &str,
    opts: &LoadOptions,
) -> Result<Prepared, FileRefused> {
    let name = display_name;
    let mut file = input::open_file(path)
        .map_err(|e| FileRefused::new(format!("failed to open `{name}`: {e}")))?;
    let gzip = input::is_gzip(name, &mut file)
        .map_err(|e| FileRefused::new(format!("failed to read `{name}`: {e}")))?
        || path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    let (reader, over_cap, lines) = input::open(file, gzip, opts.max_decompressed_bytes);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(reader);
    let mut scan = Scan {
        name,
        gzip,
        over_cap,
        cap: opts.max_decompressed_bytes,
        record: csv::ByteRecord::new(),
        lines,
        line: 0,
    };

    if !scan.next_record(&mut csv)? {
        return Err(FileRefused::new(format!(
            "`{name}` is empty: the first row must be a header such as `user_id,segment`"
        )));
    }
    let header = scan.header()?;
    if header.id_type.is_numeric() {
        read_rows::<i64>(&mut scan, &mut csv, header, opts)
    } else {
        read_rows::<TextKey>(&mut scan, &mut csv, header, opts)
    }
}

/// The parsed header row.
struct Header {
    id_type: IdType,
    id_column: String,
    partition_column: String,
    notes: Vec<String>,
}

/// The reading state shared by the header and the rows.
struct Scan<'a> {
    name: &'a str,
    gzip: bool,
    over_cap: std::rc::Rc<std::cell::Cell<bool>>,
    cap: u64,
    record: csv::ByteRecord,
    lines: std::rc::Rc<std::cell::RefCell<input::LineIndex>>,
    /// Line the current record starts on.
    line: u64,
}

impl Scan<'_> {
    /// Reads the next record; `false` at the end of the file.
    fn next_record<R: std::io::Read>(
        &mut self,
        csv: &mut csv::Reader<R>,
    ) -> Result<bool, FileRefused> {
        match csv.read_byte_record(&mut self.record) {
            Ok(more) => {
                if more {
                    let byte = self.record.position().map_or(0, |p| p.byte());
                    self.line = self.lines.borrow_mut().record_line(byte);
                }
                Ok(more)
            }
            Err(e) => Err(FileRefused::new(self.read_error(e))),
        }
    }

    fn read_error(&self, e: csv::Error) -> String {
        let name = self.name;
        if self.over_cap.get() {
            return format!(
                "`{name}` decompresses to more than {} bytes, the limit for a compressed file: \
                 split the export or upload it uncompressed",
                self.cap
            );
        }
        let line = e
            .position()
            .map(|p| format!(" near line {}", p.line()))
            .unwrap_or_default();
        if self.gzip {
            format!("`{name}` is not a valid gzip file or is truncated{line}: {e}")
        } else {
            format!("failed to read `{name}`{line}: {e}")
        }
    }

    fn line(&self) -> u64 {
        self.line
    }

    /// Refuses the file when the current record is not UTF-8, naming the
    /// line and the field.
    fn check_utf8(&self, headers: Option<&[String]>) -> Result<(), FileRefused> {
        if std::str::from_utf8(self.record.as_slice()).is_ok() {
            return Ok(());
        }
        for (i, field) in self.record.iter().enumerate() {
            if let Err(e) = std::str::from_utf8(field) {
                let what = match headers.and_then(|h| h.get(i)) {
                    Some(h) => format!("field {} (`{h}`)", i + 1),
                    None => format!("field {}", i + 1),
                };
                let utf16 = self.line() == 1
                    && i == 0
                    && e.valid_up_to() == 0
                    && matches!(field, [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..]);
                if utf16 {
                    return Err(FileRefused::new(format!(
                        "`{}` is UTF-16 text (it starts with a UTF-16 byte order mark): save \
                         the file as UTF-8",
                        self.name
                    )));
                }
                return Err(FileRefused::new(format!(
                    "`{}` line {}, {what}: invalid UTF-8 (byte 0x{:02X} at position {}): save \
                     the file as UTF-8",
                    self.name,
                    self.line(),
                    field[e.valid_up_to()],
                    e.valid_up_to() + 1
                )));
            }
        }
        Ok(())
    }

    fn field(&self, i: usize) -> &str {
        // Checked by `check_utf8` before any field is read.
        std::str::from_utf8(self.record.get(i).unwrap_or_default()).unwrap_or_default()
    }

    fn header(&self) -> Result<Header, FileRefused> {
        let name = self.name;
        self.check_utf8(None)?;
        let first = self.field(0).trim();
        let Some(id_type) = validate::parse_id_type(first) else {
            return Err(FileRefused::new(format!(
                "`{name}` line {}, column 1: the first header is `{first}`, which is not an \
                 identifier type: name the identifier column one of {}{}",
                self.line(),
                IdType::NAMES
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                separator_hint(first)
            )));
        };
        if self.record.len() < 2 {
            return Err(FileRefused::new(format!(
                "`{name}` line {}: the header has one column: add a second column naming the \
                 partition (e.g. `{id_type},segment`)",
                self.line()
            )));
        }
        let partition_column = self.field(1).trim().to_string();
        if partition_column.is_empty() {
            return Err(FileRefused::new(format!(
                "`{name}` line {}, column 2: the partition column has no name: give the second \
                 header a name such as `segment`",
                self.line()
            )));
        }
        let mut notes = Vec::new();
        if self.record.len() > 2 {
            let ignored: Vec<String> = (2..self.record.len())
                .map(|i| self.field(i).trim().to_string())
                .collect();
            notes.push(format!("ignored columns: {}", ignored.join(", ")));
        }
        Ok(Header {
            id_type,
            id_column: first.to_string(),
            partition_column,
            notes,
        })
    }

    /// The current record as text for the log, cut to 200 characters.
    fn content(&self) -> String {
        let mut s = String::new();
        for (i, f) in self.record.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&String::from_utf8_lossy(f));
            if s.len() > MAX_CONTENT_CHARS * 4 {
                break;
            }
        }
        cut(&s, MAX_CONTENT_CHARS)
    }
}

fn cut(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// The rejected rows: all counted, the first [`MAX_KEPT_REJECTED`] by line
/// kept. Rows rejected by the merge arrive in key order, so the kept set
/// is a max-heap on line that drops its latest line when full.
#[derive(Default)]
struct Rejections {
    count: u64,
    kept: BinaryHeap<ByLine>,
}

struct ByLine(RejectedRow);

impl PartialEq for ByLine {
    fn eq(&self, o: &Self) -> bool {
        self.0.line == o.0.line
    }
}
impl Eq for ByLine {}
impl PartialOrd for ByLine {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByLine {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.line.cmp(&o.0.line)
    }
}

impl Rejections {
    /// Counts a rejection at `line`; builds the row only if it is kept.
    fn add(&mut self, line: u64, row: impl FnOnce() -> RejectedRow) {
        self.count += 1;
        if self.kept.len() < MAX_KEPT_REJECTED {
            self.kept.push(ByLine(row()));
        } else if self.kept.peek().is_some_and(|top| line < top.0.line) {
            self.kept.pop();
            self.kept.push(ByLine(row()));
        }
    }

    fn into_sorted(self) -> Vec<RejectedRow> {
        self.kept
            .into_sorted_vec()
            .into_iter()
            .map(|b| b.0)
            .collect()
    }
}

/// A key the sort carries, made from a checked identifier.
trait FromKey: SortKey {
    /// Appends the sort bytes of `k` to `out`.
    fn encode_key(k: Key, out: &mut Vec<u8>);
}

impl FromKey for i64 {
    fn encode_key(k: Key, out: &mut Vec<u8>) {
        match k {
            Key::Int(i) => i.encode(out),
            Key::Text(_) => unreachable!("numeric identifier types give integer keys"),
        }
    }
}

impl FromKey for TextKey {
    fn encode_key(k: Key, out: &mut Vec<u8>) {
        match k {
            Key::Text(s) => out.extend_from_slice(s.as_bytes()),
            Key::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        }
    }
}

fn io_refused<'a>(name: &'a str, dir: &'a Path) -> impl Fn(std::io::Error) -> FileRefused + 'a {
    move |e| {
        FileRefused::new(format!(
            "failed to sort `{name}` in temporary folder `{}`: {e}",
            dir.display()
        ))
    }
}

fn read_rows<K: FromKey>(
    scan: &mut Scan,
    csv: &mut csv::Reader<impl std::io::Read>,
    header: Header,
    opts: &LoadOptions,
) -> Result<Prepared, FileRefused> {
    let name = scan.name;
    let io_err = io_refused(name, &opts.temp_dir);
    let headers = [header.id_column.clone(), header.partition_column.clone()];
    let mut sorter = Sorter::<K>::new(&opts.temp_dir, SORT_BUDGET);
    let mut rejections = Rejections::default();
    let mut partitions: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut rows_read = 0u64;
    // Reused for every row: normalising and sorting allocate nothing per row.
    let mut key_bytes: Vec<u8> = Vec::with_capacity(64);
    let mut email = String::with_capacity(64);

    while scan.next_record(csv)? {
        rows_read += 1;
        scan.check_utf8(Some(&headers))?;
        let line = scan.line();
        if scan.record.len() < 2 {
            rejections.add(line, || RejectedRow {
                line,
                field: None,
                reason: format!(
                    "the row has {} column; expected the {} and the {}{}",
                    scan.record.len(),
                    headers[0],
                    headers[1],
                    unclosed_quote_hint(scan.field(0))
                ),
                content: Some(scan.content()),
            });
            continue;
        }
        key_bytes.clear();
        let checked = if header.id_type == IdType::Email {
            validate::check_email_into(scan.field(0), &mut email)
                .map(|()| key_bytes.extend_from_slice(email.as_bytes()))
        } else {
            validate::check_id(header.id_type, scan.field(0))
                .map(|k| K::encode_key(k, &mut key_bytes))
        };
        match checked {
            Ok(()) => {}
            Err(reason) => {
                rejections.add(line, || RejectedRow {
                    line,
                    field: Some(headers[0].clone()),
                    reason,
                    content: Some(scan.content()),
                });
                continue;
            }
        };
        let part = match validate::check_partition(scan.field(1)) {
            Ok(p) => p,
            Err(reason) => {
                rejections.add(line, || RejectedRow {
                    line,
                    field: Some(headers[1].clone()),
                    reason,
                    content: Some(scan.content()),
                });
                continue;
            }
        };
        let part = match index.get(part) {
            Some(&i) => i,
            None => {
                if partitions.len() >= MAX_PARTITIONS {
                    return Err(FileRefused::new(format!(
                        "`{name}` line {line}, column 2 (`{}`): more than {MAX_PARTITIONS} \
                         distinct partition values: is the second column really the partition?",
                        headers[1]
                    )));
                }
                let i = partitions.len() as u32;
                partitions.push(part.to_string());
                index.insert(part.to_string(), i);
                i
            }
        };
        sorter
            .push_encoded(&key_bytes, line, part)
            .map_err(&io_err)?;
    }
    drop(index);
    tracing::debug!(
        file = name,
        rows_read,
        spills = sorter.spills(),
        "read and sorted"
    );

    let mut dedupe = Dedupe::new(sorter.finish().map_err(&io_err)?);
    let mut out = FinalWriter::<K>::new(&opts.temp_dir).map_err(&io_err)?;
    let mut counts = vec![0u64; partitions.len()];
    let mut rows_loaded = 0u64;
    let mut duplicates = 0u64;
    while let Some(v) = dedupe.next_raw().map_err(&io_err)? {
        match v {
            RawVerdict::Keep { key, part, .. } => {
                out.write_encoded(key, part).map_err(&io_err)?;
                counts[part as usize] += 1;
                rows_loaded += 1;
            }
            RawVerdict::Duplicate => duplicates += 1,
            RawVerdict::Conflict {
                key,
                later_line,
                later_part,
                first_line,
                first_part,
            } => {
                let line = later_line;
                rejections.add(line, || {
                    let key = K::show_encoded(key);
                    let (was, now) = (
                        &partitions[first_part as usize],
                        &partitions[later_part as usize],
                    );
                    RejectedRow {
                        line,
                        field: Some(headers[1].clone()),
                        reason: format!(
                            "{} {key} is listed again with partition `{now}`; line {first_line} \
                             already put it in `{was}`",
                            header.id_type
                        ),
                        content: Some(cut(&format!("{key},{now}"), MAX_CONTENT_CHARS)),
                    }
                });
            }
        }
    }
    let run = out.finish().map_err(&io_err)?;

    let rows_rejected = rejections.count;
    let rejected = rejections.into_sorted();
    let refuse = |message: String| FileRefused {
        message,
        rows_read,
        rows_rejected,
        rejected: rejected.clone(),
    };
    if rows_read == 0 {
        return Err(refuse(format!(
            "`{name}` has a header but no data rows: nothing to load"
        )));
    }
    let first = rejected
        .first()
        .map(|r| format!(" (first: line {}: {})", r.line, r.reason))
        .unwrap_or_default();
    if rows_loaded == 0 {
        return Err(refuse(format!(
            "`{name}` has no valid row: all {rows_read} rows were rejected{first}; fix the rows \
             and upload the file again"
        )));
    }
    let ratio = rows_rejected as f64 / rows_read as f64;
    if ratio > opts.max_rejected_ratio {
        return Err(refuse(format!(
            "`{name}`: {rows_rejected} of {rows_read} rows were rejected ({:.2}%), more than \
             max_rejected_ratio allows ({:.2}%){first}; fix the rows and upload the file again, \
             or raise max_rejected_ratio in the configuration",
            ratio * 100.0,
            opts.max_rejected_ratio * 100.0
        )));
    }

    let mut notes = header.notes;
    if duplicates > 0 {
        notes.push(format!(
            "{duplicates} duplicate rows (same user, same partition) counted once"
        ));
    }
    Ok(Prepared {
        id_type: header.id_type,
        partition_column: header.partition_column,
        rows_read,
        rows_rejected,
        rejected,
        notes,
        file: name.to_string(),
        rows_loaded,
        partitions,
        counts,
        run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{SegmentType, Status};
    use crate::store::Store;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn segment(store: &mut Store, seg_type: SegmentType) -> Segment {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let mut s = Segment::new_draft("p", Some(seg_type), now);
        s.status = Status::Active;
        s.id = store.insert_segment(&s).unwrap();
        s
    }

    /// Text keys whose byte order differs from their numeric order.
    fn test_key(n: i64, text: bool) -> Key {
        if text {
            Key::Text(format!("k{n}"))
        } else {
            Key::Int(n)
        }
    }

    fn listed(m: &BTreeMap<Key, String>) -> Vec<(String, String)> {
        m.iter().map(|(k, p)| (k.to_string(), p.clone())).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Sequences of loads (with duplicates and conflicts, spilled into
        /// several sort runs and merged in tiny read batches) leave the
        /// membership, counts and history a plain map predicts.
        #[test]
        fn loads_match_a_reference_map(
            loads in prop::collection::vec(
                prop::collection::vec((1i64..60, 0u8..4), 0..90), 1..4),
            scd in any::<bool>(),
            text in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open_in_memory().unwrap();
            let seg_type = if scd { SegmentType::Scd } else { SegmentType::NonScd };
            let seg = segment(&mut store, seg_type);
            let opts = LoadOptions {
                max_rejected_ratio: 1.0,
                temp_dir: dir.path().to_path_buf(),
                max_decompressed_bytes: 1 << 20,
            };
            let header = if text { "external_id,segment" } else { "user_id,segment" };
            let mut snapshots: Vec<(i64, BTreeMap<Key, String>)> = Vec::new();
            let mut current: BTreeMap<Key, String> = BTreeMap::new();
            for (i, rows) in loads.iter().enumerate() {
                let stamp = 1_700_000_000 + 1000 * i as i64;
                let mut csv = format!("{header}\n");
                let mut want: BTreeMap<Key, String> = BTreeMap::new();
                let mut conflicts = 0u64;
                for (k, p) in rows {
                    let key = test_key(*k, text);
                    let part = format!("p{p}");
                    csv.push_str(&format!("{key},{part}\n"));
                    match want.get(&key) {
                        Some(first) if *first != part => conflicts += 1,
                        Some(_) => {}
                        None => { want.insert(key, part); }
                    }
                }
                let path = dir.path().join(format!("f{i}.csv"));
                std::fs::write(&path, csv).unwrap();
                let prepared = match prepare(&path, "f.csv", &opts) {
                    Ok(p) => p,
                    Err(e) => {
                        prop_assert!(rows.is_empty(), "refused: {e}");
                        continue;
                    }
                };
                prop_assert_eq!(prepared.rows_rejected, conflicts);
                prop_assert_eq!(prepared.rows_loaded(), want.len() as u64);
                let tx = store.conn().transaction().unwrap();
                let stamp_t = DateTime::<Utc>::from_timestamp(stamp, 0).unwrap();
                let applied = apply(&tx, &seg, prepared, stamp_t).unwrap();
                tx.commit().unwrap();
                let added = want.keys().filter(|k| !current.contains_key(*k)).count() as u64;
                let removed = current.keys().filter(|k| !want.contains_key(*k)).count() as u64;
                let changed = want
                    .iter()
                    .filter(|(k, p)| current.get(*k).is_some_and(|old| old != *p))
                    .count() as u64;
                prop_assert_eq!(
                    (applied.added, applied.removed, applied.changed),
                    (added, removed, changed)
                );
                current = want.clone();
                snapshots.push((stamp, want));
            }
            prop_assert_eq!(store.members(seg.id, None).unwrap(), listed(&current));
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for p in current.values() {
                *counts.entry(p.clone()).or_default() += 1;
            }
            let stored: BTreeMap<String, i64> = store
                .partitions(seg.id)
                .unwrap()
                .into_iter()
                .map(|p| (p.value, p.members))
                .collect();
            prop_assert_eq!(stored, counts);
            if scd {
                let mut before: BTreeMap<Key, String> = BTreeMap::new();
                for (stamp, snap) in &snapshots {
                    let at = |s: i64| {
                        store
                            .members(seg.id, DateTime::<Utc>::from_timestamp(s, 0))
                            .unwrap()
                    };
                    let prev = listed(&before);
                    let now = listed(snap);
                    prop_assert_eq!(at(stamp - 1), prev);
                    prop_assert_eq!(at(*stamp), now.clone());
                    prop_assert_eq!(at(stamp + 999), now);
                    before = snap.clone();
                }
            }
        }
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_still_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.csv");
        std::fs::write(&path, "user_id,seg\n\n1,a\n\r\nx,b\n").unwrap();
        let opts = LoadOptions {
            max_rejected_ratio: 1.0,
            temp_dir: dir.path().to_path_buf(),
            max_decompressed_bytes: 1 << 20,
        };
        let p = prepare(&path, "b.csv", &opts).unwrap();
        assert_eq!((p.rows_read, p.rows_loaded(), p.rows_rejected), (2, 1, 1));
        assert_eq!(p.rejected[0].line, 5);
    }

    #[test]
    fn kept_rejections_are_the_first_lines() {
        let mut r = Rejections::default();
        for line in (2..3000u64).rev() {
            r.add(line, || RejectedRow {
                line,
                field: None,
                reason: String::new(),
                content: None,
            });
        }
        assert_eq!(r.count, 2998);
        let kept = r.into_sorted();
        assert_eq!(kept.len(), MAX_KEPT_REJECTED);
        assert_eq!(kept.first().unwrap().line, 2);
        assert_eq!(kept.last().unwrap().line, 1001);
    }
}
