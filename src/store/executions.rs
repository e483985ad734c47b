//! The execution log: one row per refresh attempt or missed slot, and the
//! rejected rows each attempt kept.

use super::{parse_enum, parse_ts, ts, Store};
use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// What started an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Retry,
    #[default]
    Manual,
}

/// How an execution ended (or `Running` while it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    #[default]
    Running,
    Success,
    Unchanged,
    Failed,
    Missed,
}

crate::segment::text_enum!(Trigger, "trigger", Schedule => "schedule", Retry => "retry",
    Manual => "manual");
crate::segment::text_enum!(Outcome, "outcome", Running => "running", Success => "success",
    Unchanged => "unchanged", Failed => "failed", Missed => "missed");

impl Outcome {
    /// Whether the slot's work is done (success or unchanged).
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Unchanged)
    }
}

/// One execution, with the field names of the spec's JSON output.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Execution {
    pub id: i64,
    /// Segment name.
    pub segment: String,
    #[serde(skip)]
    pub segment_id: i64,
    #[serde(serialize_with = "crate::output::local_time_opt")]
    pub slot: Option<DateTime<Utc>>,
    pub trigger: Trigger,
    pub attempt: i64,
    #[serde(serialize_with = "crate::output::local_time")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::output::local_time_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub file: Option<String>,
    pub file_size: Option<i64>,
    #[serde(serialize_with = "crate::output::local_time_opt")]
    pub file_modified: Option<DateTime<Utc>>,
    pub sha256: Option<String>,
    pub rows_read: Option<i64>,
    pub rows_loaded: Option<i64>,
    pub rows_rejected: Option<i64>,
    pub added: Option<i64>,
    pub removed: Option<i64>,
    pub changed: Option<i64>,
    pub error: Option<String>,
    pub notes: Option<String>,
    pub notified: Option<String>,
}

/// A rejected row kept for the log and the email.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RejectedRow {
    pub line: u64,
    /// The header of the field at fault, when one field is.
    pub field: Option<String>,
    pub reason: String,
    /// The raw row, cut to 200 characters.
    pub content: Option<String>,
}

/// Filters for [`Store::executions`].
#[derive(Debug, Default, Clone)]
pub struct ExecutionFilter {
    pub segment_id: Option<i64>,
    pub failed_only: bool,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

const COLUMNS: &str = "e.id, s.name, e.segment_id, e.slot, e.trigger, e.attempt, e.started_at, \
     e.finished_at, e.outcome, e.file, e.file_size, e.file_modified, e.sha256, e.rows_read, \
     e.rows_loaded, e.rows_rejected, e.added, e.removed, e.changed, e.error, e.notes, e.notified";

fn opt_ts(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(&s)).transpose()
}

fn from_row(r: &Row) -> rusqlite::Result<Execution> {
    Ok(Execution {
        id: r.get(0)?,
        segment: r.get(1)?,
        segment_id: r.get(2)?,
        slot: opt_ts(r.get(3)?)?,
        trigger: parse_enum(r.get(4)?)?,
        attempt: r.get(5)?,
        started_at: parse_ts(&r.get::<_, String>(6)?)?,
        finished_at: opt_ts(r.get(7)?)?,
        outcome: parse_enum(r.get(8)?)?,
        file: r.get(9)?,
        file_size: r.get(10)?,
        file_modified: opt_ts(r.get(11)?)?,
        sha256: r.get(12)?,
        rows_read: r.get(13)?,
        rows_loaded: r.get(14)?,
        rows_rejected: r.get(15)?,
        added: r.get(16)?,
        removed: r.get(17)?,
        changed: r.get(18)?,
        error: r.get(19)?,
        notes: r.get(20)?,
        notified: r.get(21)?,
    })
}

/// Inserts an execution row and returns its id. Usable inside a
/// transaction (`conn` may be a `Transaction`).
pub fn insert_execution(conn: &Connection, e: &Execution) -> Result<i64> {
    conn.execute(
        "INSERT INTO execution (segment_id, slot, trigger, attempt, started_at, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            e.segment_id,
            e.slot.map(ts),
            e.trigger.as_str(),
            e.attempt,
            ts(e.started_at),
            e.outcome.as_str(),
        ],
    )?;
    let id = conn.last_insert_rowid();
    // The result columns are written the way a finished execution is.
    finish_execution(conn, &Execution { id, ..e.clone() })?;
    Ok(id)
}

/// Rewrites every result column of execution `e.id` (outcome, file, counts,
/// error, notes, notified, finished_at) and releases its claim. Usable
/// inside the transaction that writes the data.
pub fn finish_execution(conn: &Connection, e: &Execution) -> Result<()> {
    conn.execute(
        "UPDATE execution SET finished_at = ?2, outcome = ?3, file = ?4, file_size = ?5, \
         file_modified = ?6, sha256 = ?7, rows_read = ?8, rows_loaded = ?9, \
         rows_rejected = ?10, added = ?11, removed = ?12, changed = ?13, error = ?14, \
         notes = ?15, notified = ?16, claim_owner = NULL, lease_until = NULL
         WHERE id = ?1",
        params![
            e.id,
            e.finished_at.map(ts),
            e.outcome.as_str(),
            e.file,
            e.file_size,
            e.file_modified.map(ts),
            e.sha256,
            e.rows_read,
            e.rows_loaded,
            e.rows_rejected,
            e.added,
            e.removed,
            e.changed,
            e.error,
            e.notes,
            e.notified,
        ],
    )?;
    Ok(())
}

/// Stores the rejected rows of an execution (the caller keeps at most
/// 1,000).
pub fn insert_rejected_rows(
    conn: &Connection,
    execution_id: i64,
    rows: &[RejectedRow],
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO rejected_row (execution_id, line, field, reason, content)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for r in rows {
        stmt.execute(params![
            execution_id,
            r.line as i64,
            r.field,
            r.reason,
            r.content
        ])?;
    }
    Ok(())
}

impl Store {
    /// Executions matching `f`, newest first.
    pub fn executions(&self, f: &ExecutionFilter) -> Result<Vec<Execution>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM execution e JOIN segment s ON s.id = e.segment_id
             WHERE (?1 IS NULL OR e.segment_id = ?1)
               AND (?2 = 0 OR e.outcome = 'failed')
               AND (?3 IS NULL OR e.started_at >= ?3)
             ORDER BY e.id DESC LIMIT ?4"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let limit = f.limit.map(|l| l as i64).unwrap_or(-1);
        let rows = stmt.query_map(
            params![f.segment_id, f.failed_only, f.since.map(ts), limit],
            from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Execution `id`.
    pub fn execution(&self, id: i64) -> Result<Option<Execution>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM execution e JOIN segment s ON s.id = e.segment_id
             WHERE e.id = ?1"
        );
        Ok(self.conn.query_row(&sql, [id], from_row).optional()?)
    }

    /// All executions of one slot of a segment, oldest attempt first.
    pub fn slot_executions(&self, segment_id: i64, slot: DateTime<Utc>) -> Result<Vec<Execution>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM execution e JOIN segment s ON s.id = e.segment_id
             WHERE e.segment_id = ?1 AND e.slot = ?2 ORDER BY e.attempt"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![segment_id, ts(slot)], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The rejected rows kept for an execution, by line.
    pub fn rejected_rows(&self, execution_id: i64) -> Result<Vec<RejectedRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT line, field, reason, content FROM rejected_row WHERE execution_id = ?1
             ORDER BY line",
        )?;
        let rows = stmt.query_map([execution_id], |r| {
            Ok(RejectedRow {
                line: r.get::<_, i64>(0)? as u64,
                field: r.get(1)?,
                reason: r.get(2)?,
                content: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The successful execution that already loaded a file with this name,
    /// size and modification time into the segment, if any.
    pub fn already_loaded(
        &self,
        segment_id: i64,
        file: &str,
        size: i64,
        modified: DateTime<Utc>,
    ) -> Result<Option<Execution>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM execution e JOIN segment s ON s.id = e.segment_id
             WHERE e.segment_id = ?1 AND e.outcome = 'success' AND e.file = ?2
               AND e.file_size = ?3 AND e.file_modified = ?4
             ORDER BY e.id DESC LIMIT 1"
        );
        Ok(self
            .conn
            .query_row(
                &sql,
                params![segment_id, file, size, ts(modified)],
                from_row,
            )
            .optional()?)
    }

    /// Deletes an execution row that recorded nothing (a deferred manual
    /// refresh).
    pub fn delete_execution(&mut self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM execution WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Records who was notified about an execution (or why sending failed).
    pub fn set_notified(&mut self, execution_id: i64, notified: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE execution SET notified = ?2 WHERE id = ?1",
            params![execution_id, notified],
        )?;
        Ok(())
    }

    /// The newest execution of a segment, if any.
    pub fn last_execution(&self, segment_id: i64) -> Result<Option<Execution>> {
        Ok(self
            .executions(&ExecutionFilter {
                segment_id: Some(segment_id),
                limit: Some(1),
                ..Default::default()
            })?
            .into_iter()
            .next())
    }
}
