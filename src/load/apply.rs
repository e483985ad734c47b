//! Writing a prepared file into the database: the sorted merge of the new
//! membership against the current one, inside the caller's transaction.
//!
//! The current members are read in key order in fixed-size batches (a
//! range query per batch, closed before any write), and the prepared run
//! is walked alongside. Only differences are written: users who joined are
//! inserted many rows to a statement, in key order (what the b-tree likes
//! best); users who left are deleted; users who changed partition are
//! updated. For SCD segments the closed record of a user who left or
//! changed is copied to `member_history` first, `valid_to` being the stamp.
//!
//! Trap: no statement reading `member` is open while `member` is written.
//! SQLite allows it, but a cursor may then see rows inserted ahead of it.
//! Reading a batch fully before writing, and starting the next batch after
//! the last key seen, keeps the walk exact.

use super::sort::{FinalReader, SortKey, TextKey};
use super::{FileRefused, Prepared};
use crate::segment::{IdType, Segment, SegmentType};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Rows per multi-row INSERT or DELETE statement (tiny under unit tests
/// so that full and partial batches are both exercised).
const WRITE_BATCH: usize = if cfg!(test) { 5 } else { 256 };

/// Current members read per query (tiny under unit tests so that batch
/// boundaries fall everywhere).
const READ_BATCH: usize = if cfg!(test) { 7 } else { 16 * 1024 };

/// What a load changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Members the segment has now.
    pub rows_loaded: u64,
    /// Users who joined.
    pub added: u64,
    /// Users who left.
    pub removed: u64,
    /// Users who moved to another partition.
    pub changed: u64,
}

/// Makes `prepared` the membership of `segment`, stamped `stamp` (the
/// slot's time). Runs inside `tx` and commits nothing; on error the caller
/// rolls back and nothing changed. A file whose identifier type differs
/// from the segment's comes back as an error holding a [`FileRefused`].
pub fn apply(
    tx: &Transaction,
    segment: &Segment,
    prepared: Prepared,
    stamp: DateTime<Utc>,
) -> Result<Applied> {
    let held: Option<String> = tx
        .query_row(
            "SELECT id_type FROM segment WHERE id = ?1",
            [segment.id],
            |r| r.get(0),
        )
        .optional()?
        .with_context(|| format!("segment `{}` is not in the database", segment.name))?;
    if let Some(held) = held.and_then(|h| h.parse::<IdType>().ok()) {
        if held != prepared.id_type {
            return Err(FileRefused::new(super::id_type_change(
                &segment.name,
                held,
                prepared.id_type,
                &prepared.file,
            ))
            .into());
        }
    }

    // A bigger page cache for the walk (the sort's memory is free by now):
    // fewer dirty pages spilled mid-transaction. Put back afterwards, as
    // the connection may go on serving other work.
    let cache: i64 = tx.pragma_query_value(None, "cache_size", |r| r.get(0))?;
    tx.pragma_update(None, "cache_size", APPLY_CACHE_KIB)?;
    let result = write(tx, segment, prepared, stamp);
    tx.pragma_update(None, "cache_size", cache)?;
    result
}

/// Page cache while applying, in the negative-KiB form of `cache_size`.
const APPLY_CACHE_KIB: i64 = -32 * 1024;

fn write(
    tx: &Transaction,
    segment: &Segment,
    prepared: Prepared,
    stamp: DateTime<Utc>,
) -> Result<Applied> {
    let part_ids = partition_ids(tx, segment.id, &prepared.partitions)?;
    let mut ctx = Ctx {
        tx,
        segment_id: segment.id,
        stamp: stamp.timestamp(),
        scd: segment.seg_type == SegmentType::Scd,
        part_ids: &part_ids,
        applied: Applied {
            rows_loaded: prepared.rows_loaded,
            ..Applied::default()
        },
    };
    let run = prepared
        .run
        .try_clone()
        .context("failed to reopen the sorted run")?;
    if prepared.id_type.is_numeric() {
        merge::<i64>(&mut ctx, FinalReader::new(run))?;
    } else {
        merge::<TextKey>(&mut ctx, FinalReader::new(run))?;
    }
    let applied = ctx.applied;

    tx.execute(
        "UPDATE partition SET members = 0 WHERE segment_id = ?1 AND members <> 0",
        [segment.id],
    )?;
    let mut set = tx.prepare_cached("UPDATE partition SET members = ?2 WHERE id = ?1")?;
    for (id, n) in part_ids.iter().zip(&prepared.counts) {
        set.execute(params![id, *n as i64])?;
    }
    tx.execute(
        "UPDATE segment SET id_type = ?2, partition_column = ?3 WHERE id = ?1",
        params![
            segment.id,
            prepared.id_type.as_str(),
            prepared.partition_column
        ],
    )?;
    tracing::debug!(segment = %segment.name, ?applied, "membership applied");
    Ok(applied)
}

/// The `partition.id` of each partition value, creating missing ones.
fn partition_ids(tx: &Transaction, segment_id: i64, values: &[String]) -> Result<Vec<i64>> {
    let mut existing: HashMap<String, i64> = HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT value, id FROM partition WHERE segment_id = ?1")?;
        let rows = stmt.query_map([segment_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            let (v, id) = row?;
            existing.insert(v, id);
        }
    }
    let mut insert =
        tx.prepare_cached("INSERT INTO partition (segment_id, value, members) VALUES (?1, ?2, 0)")?;
    values
        .iter()
        .map(|v| match existing.get(v) {
            Some(id) => Ok(*id),
            None => {
                insert.execute(params![segment_id, v])?;
                Ok(tx.last_insert_rowid())
            }
        })
        .collect()
}

struct Ctx<'a> {
    tx: &'a Transaction<'a>,
    segment_id: i64,
    stamp: i64,
    scd: bool,
    part_ids: &'a [i64],
    applied: Applied,
}

/// Pending writes, flushed [`WRITE_BATCH`] rows at a time.
struct Pending<K> {
    inserts: Vec<(K, i64)>,
    deletes: Vec<K>,
    /// Closed records: key, partition id, valid_from.
    history: Vec<(K, i64, i64)>,
}

fn merge<K: SortKey>(ctx: &mut Ctx, mut file: FinalReader<K>) -> Result<()> {
    let mut pending = Pending {
        inserts: Vec::with_capacity(WRITE_BATCH),
        deletes: Vec::with_capacity(WRITE_BATCH),
        history: Vec::with_capacity(WRITE_BATCH),
    };
    let mut next_file = file.next_row().context("failed to read the sorted run")?;
    let mut after: Option<K> = None;
    loop {
        let batch = read_batch::<K>(ctx, after.as_ref())?;
        let full = batch.len() == READ_BATCH;
        // Keys of this batch cover the range up to its last key; file rows
        // beyond it wait for the next batch (unless this is the last one).
        let upper = if full {
            batch.last().map(|(k, _, _)| k.clone())
        } else {
            None
        };
        let mut current = batch.into_iter().peekable();
        loop {
            let file_in_range = match (&next_file, &upper) {
                (Some((k, _)), Some(u)) => k <= u,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let order = match (file_in_range, current.peek()) {
                (false, None) => break,
                (true, None) => Ordering::Less,
                (false, Some(_)) => Ordering::Greater,
                (true, Some((ck, _, _))) => {
                    let (fk, _) = next_file.as_ref().expect("in range");
                    fk.cmp(ck)
                }
            };
            match order {
                Ordering::Less => {
                    let (key, part) = next_file.take().expect("in range");
                    ctx.applied.added += 1;
                    pending.inserts.push((key, ctx.part_ids[part as usize]));
                    if pending.inserts.len() == WRITE_BATCH {
                        flush_inserts(ctx, &mut pending.inserts)?;
                    }
                    next_file = file.next_row().context("failed to read the sorted run")?;
                }
                Ordering::Greater => {
                    let (key, part_id, since) = current.next().expect("peeked");
                    ctx.applied.removed += 1;
                    close(ctx, &mut pending, &key, part_id, since)?;
                    pending.deletes.push(key);
                    if pending.deletes.len() == WRITE_BATCH {
                        flush_deletes(ctx, &mut pending.deletes)?;
                    }
                }
                Ordering::Equal => {
                    let (key, part) = next_file.take().expect("in range");
                    let (_, old_part, since) = current.next().expect("peeked");
                    let new_part = ctx.part_ids[part as usize];
                    if new_part != old_part {
                        ctx.applied.changed += 1;
                        close(ctx, &mut pending, &key, old_part, since)?;
                        let mut up = ctx.tx.prepare_cached(
                            "UPDATE member SET partition_id = ?3, since = ?4
                             WHERE segment_id = ?1 AND key = ?2",
                        )?;
                        up.execute(params![ctx.segment_id, key, new_part, ctx.stamp])?;
                    }
                    next_file = file.next_row().context("failed to read the sorted run")?;
                }
            }
        }
        if !full {
            break;
        }
        after = upper;
    }
    flush_inserts(ctx, &mut pending.inserts)?;
    flush_deletes(ctx, &mut pending.deletes)?;
    flush_history(ctx, &mut pending.history)?;
    Ok(())
}

/// Records the end of a user's current record, for SCD segments. A record
/// that would last no time at all (opened at this very stamp, e.g. two
/// loads in one slot) is not history: nobody could have seen it.
fn close<K: SortKey>(
    ctx: &Ctx,
    pending: &mut Pending<K>,
    key: &K,
    part_id: i64,
    since: i64,
) -> Result<()> {
    if ctx.scd && since < ctx.stamp {
        pending.history.push((key.clone(), part_id, since));
        if pending.history.len() == WRITE_BATCH {
            flush_history(ctx, &mut pending.history)?;
        }
    }
    Ok(())
}

fn read_batch<K: SortKey>(ctx: &Ctx, after: Option<&K>) -> Result<Vec<(K, i64, i64)>> {
    let mut stmt = match after {
        None => ctx.tx.prepare_cached(
            "SELECT key, partition_id, since FROM member WHERE segment_id = ?1
             ORDER BY key LIMIT ?2",
        )?,
        Some(_) => ctx.tx.prepare_cached(
            "SELECT key, partition_id, since FROM member WHERE segment_id = ?1 AND key > ?3
             ORDER BY key LIMIT ?2",
        )?,
    };
    stmt.raw_bind_parameter(1, ctx.segment_id)?;
    stmt.raw_bind_parameter(2, READ_BATCH as i64)?;
    if let Some(a) = after {
        stmt.raw_bind_parameter(3, a)?;
    }
    let mut rows = stmt.raw_query();
    let mut out = Vec::with_capacity(READ_BATCH);
    while let Some(r) = rows.next()? {
        out.push((K::from_sql(r.get_ref(0)?)?, r.get(1)?, r.get(2)?));
    }
    Ok(out)
}

/// `(?1, ?3, ?4, ?2), (?1, ?5, ?6, ?2), ...`: the segment and the stamp
/// bound once, then the columns of each row.
fn values_sql(rows: usize, per_row: usize, row: impl Fn(&[usize]) -> String) -> String {
    let mut sql = String::with_capacity(rows * 24);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        let cols: Vec<usize> = (0..per_row).map(|c| 3 + i * per_row + c).collect();
        sql.push_str(&row(&cols));
    }
    sql
}

/// The SQL of a full batch, built once (rebuilding it for every batch of a
/// ten-million-row load showed in profiles).
static INSERT_SQL: OnceLock<String> = OnceLock::new();
static HISTORY_SQL: OnceLock<String> = OnceLock::new();
static DELETE_SQL: OnceLock<String> = OnceLock::new();

/// The cached statement for `rows` rows; `sql` writes its text.
fn batch_statement<'a>(
    ctx: &'a Ctx,
    full: &OnceLock<String>,
    rows: usize,
    sql: impl Fn(usize) -> String,
) -> rusqlite::Result<rusqlite::CachedStatement<'a>> {
    if rows == WRITE_BATCH {
        ctx.tx.prepare_cached(full.get_or_init(|| sql(WRITE_BATCH)))
    } else {
        ctx.tx.prepare_cached(&sql(rows))
    }
}

fn flush_inserts<K: SortKey>(ctx: &Ctx, rows: &mut Vec<(K, i64)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = |n: usize| {
        format!(
            "INSERT OR IGNORE INTO member (segment_id, key, partition_id, since) VALUES {}",
            values_sql(n, 2, |c| format!("(?1,?{},?{},?2)", c[0], c[1]))
        )
    };
    let mut stmt = batch_statement(ctx, &INSERT_SQL, rows.len(), sql)?;
    stmt.raw_bind_parameter(1, ctx.segment_id)?;
    stmt.raw_bind_parameter(2, ctx.stamp)?;
    for (i, (k, p)) in rows.iter().enumerate() {
        stmt.raw_bind_parameter(3 + 2 * i, k)?;
        stmt.raw_bind_parameter(4 + 2 * i, p)?;
    }
    // OR IGNORE, with the count checked instead: a statement that may abort
    // halfway makes SQLite copy every page it touches that existed before
    // it to a statement journal first, which for a load into a growing
    // b-tree nearly doubled the writing. The merge only inserts keys it did
    // not find, so an ignored row means a broken invariant: the caller
    // rolls the whole transaction back, as a failed INSERT would.
    let inserted = stmt.raw_execute()?;
    anyhow::ensure!(
        inserted == rows.len(),
        "segment {}: {} of {} new members were already in the member table; nothing was \
         loaded",
        ctx.segment_id,
        rows.len() - inserted,
        rows.len()
    );
    rows.clear();
    Ok(())
}

fn flush_history<K: SortKey>(ctx: &Ctx, rows: &mut Vec<(K, i64, i64)>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // OR REPLACE: a clock set back could close two records opened at the
    // same moment; the later close wins instead of failing the load.
    let sql = |n: usize| {
        format!(
            "INSERT OR REPLACE INTO member_history (segment_id, key, partition_id, valid_from, \
             valid_to) VALUES {}",
            values_sql(n, 3, |c| format!("(?1,?{},?{},?{},?2)", c[0], c[1], c[2]))
        )
    };
    let mut stmt = batch_statement(ctx, &HISTORY_SQL, rows.len(), sql)?;
    stmt.raw_bind_parameter(1, ctx.segment_id)?;
    stmt.raw_bind_parameter(2, ctx.stamp)?;
    for (i, (k, p, from)) in rows.iter().enumerate() {
        stmt.raw_bind_parameter(3 + 3 * i, k)?;
        stmt.raw_bind_parameter(4 + 3 * i, p)?;
        stmt.raw_bind_parameter(5 + 3 * i, from)?;
    }
    stmt.raw_execute()?;
    rows.clear();
    Ok(())
}

fn flush_deletes<K: SortKey>(ctx: &Ctx, keys: &mut Vec<K>) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let sql = |n: usize| {
        let list: Vec<String> = (0..n).map(|i| format!("?{}", i + 2)).collect();
        format!(
            "DELETE FROM member WHERE segment_id = ?1 AND key IN ({})",
            list.join(",")
        )
    };
    let mut stmt = batch_statement(ctx, &DELETE_SQL, keys.len(), sql)?;
    stmt.raw_bind_parameter(1, ctx.segment_id)?;
    for (i, k) in keys.iter().enumerate() {
        stmt.raw_bind_parameter(2 + i, k)?;
    }
    stmt.raw_execute()?;
    keys.clear();
    Ok(())
}
