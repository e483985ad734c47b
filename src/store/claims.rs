//! Slot claims that keep overlapping `run-due` processes apart, and the
//! rows `run-due` writes for slots it does not run (missed, deferred until
//! too late, abandoned).
//!
//! # How two processes stay apart
//!
//! A slot is claimed by inserting its execution row with outcome `running`,
//! a `claim_owner` (`host:pid:random`) and a `lease_until`, inside a
//! `BEGIN IMMEDIATE` transaction that first re-reads the slot's rows and
//! lets the caller decide again on what it reads. `BEGIN IMMEDIATE` takes
//! SQLite's write lock at the start, so two processes cannot both read "no
//! claim" and both insert: the second one waits (busy timeout), then reads
//! the first one's row and backs off with `claimed-elsewhere`. The unique
//! index on `execution (segment_id, slot, attempt)` is a second guard.
//!
//! A claim whose lease has passed belongs to a process that stopped (killed,
//! machine rebooted): the next claimer marks that row `failed` and inserts
//! the next attempt as its own claim, both in one transaction. The lease is
//! never renewed, so it must outlast the longest refresh (see [`LEASE`]).
//!
//! The claimer finishes its row in the same transaction that writes the
//! data (`refresh`), so "data loaded" and "slot done" can never disagree.
//! Nothing here downloads or validates: no write transaction is open while
//! the network is used.

use super::{parse_enum, parse_ts, ts, Store};
use crate::segment::Segment;
use crate::store::{Execution, Outcome, Trigger};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// How long a claim is held before another process may take the slot over.
/// It must exceed the longest refresh: the download and load timeouts
/// together stay well below 30 minutes, and the lease is never renewed, so
/// a live process is never mistaken for a dead one.
pub const LEASE: chrono::Duration = chrono::Duration::minutes(30);

/// The error written on a claim whose process stopped.
pub const EXPIRED_CLAIM: &str = "claim expired: the process running it stopped";

/// One execution row of a slot, as claims and decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub id: i64,
    pub attempt: i64,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub claim_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// A slot whose newest file was still being written when last tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub slot: DateTime<Utc>,
    pub file: String,
    /// When the file will be old enough to load, if it does not change.
    pub ready_at: DateTime<Utc>,
    pub deferred_at: DateTime<Utc>,
}

/// Everything recorded about one slot of a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotState {
    /// Its execution rows, oldest attempt first.
    pub attempts: Vec<AttemptRow>,
    pub deferral: Option<Deferral>,
}

/// What a claimer wants to do after re-reading a slot under the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimPlan {
    /// Nothing (someone else got there first, or nothing is due).
    Skip,
    /// Insert attempt `attempt` as this process's claim, after marking the
    /// expired claim `expire` (a row id) failed, if any.
    Claim {
        attempt: i64,
        trigger: Trigger,
        expire: Option<i64>,
    },
    /// Only mark the expired claim `expire` failed: no attempt is left.
    Expire { expire: i64 },
}

/// What [`Store::claim_slot`] did.
#[derive(Debug, Clone)]
pub struct ClaimResult {
    /// The slot as read under the lock, before any change.
    pub state: SlotState,
    /// This process's new `running` row.
    pub claimed: Option<Execution>,
    /// The expired claim, now finished as failed.
    pub expired: Option<Execution>,
}

/// A row `run-due` writes for an older slot it will not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlderRow {
    pub slot: DateTime<Utc>,
    /// `Missed`, or `Failed` for a slot deferred until its next slot came.
    pub outcome: Outcome,
    pub error: Option<String>,
    pub notes: Option<String>,
}

const ATTEMPT_COLUMNS: &str =
    "id, attempt, outcome, started_at, finished_at, claim_owner, lease_until, error";

fn attempt_from_row(r: &rusqlite::Row) -> rusqlite::Result<AttemptRow> {
    let opt = |s: Option<String>| s.map(|s| parse_ts(&s)).transpose();
    Ok(AttemptRow {
        id: r.get(0)?,
        attempt: r.get(1)?,
        outcome: parse_enum(r.get(2)?)?,
        started_at: parse_ts(&r.get::<_, String>(3)?)?,
        finished_at: opt(r.get(4)?)?,
        claim_owner: r.get(5)?,
        lease_until: opt(r.get(6)?)?,
        error: r.get(7)?,
    })
}

fn read_slot(conn: &Connection, segment_id: i64, slot: DateTime<Utc>) -> Result<SlotState> {
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM execution WHERE segment_id = ?1 AND slot = ?2
         ORDER BY attempt"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let attempts = stmt
        .query_map(params![segment_id, ts(slot)], attempt_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let deferral = conn
        .query_row(
            "SELECT slot, file, ready_at, deferred_at FROM slot_deferral
             WHERE segment_id = ?1 AND slot = ?2",
            params![segment_id, ts(slot)],
            deferral_from_row,
        )
        .optional()?;
    Ok(SlotState { attempts, deferral })
}

fn deferral_from_row(r: &rusqlite::Row) -> rusqlite::Result<Deferral> {
    Ok(Deferral {
        slot: parse_ts(&r.get::<_, String>(0)?)?,
        file: r.get(1)?,
        ready_at: parse_ts(&r.get::<_, String>(2)?)?,
        deferred_at: parse_ts(&r.get::<_, String>(3)?)?,
    })
}

/// Marks running row `id` failed with `error` and returns it, or `None` if
/// it is no longer running.
fn fail_running(
    conn: &Connection,
    segment: &Segment,
    id: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Option<Execution>> {
    let changed = conn.execute(
        "UPDATE execution SET outcome = 'failed', finished_at = ?2, error = ?3,
             claim_owner = NULL, lease_until = NULL
         WHERE id = ?1 AND outcome = 'running'",
        params![id, ts(now), error],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    let (slot, trigger, attempt, started_at): (Option<String>, String, i64, String) = conn
        .query_row(
            "SELECT slot, trigger, attempt, started_at FROM execution WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    Ok(Some(Execution {
        id,
        segment: segment.name.clone(),
        segment_id: segment.id,
        slot: slot.map(|s| parse_ts(&s)).transpose()?,
        trigger: match trigger.as_str() {
            "retry" => Trigger::Retry,
            "manual" => Trigger::Manual,
            _ => Trigger::Schedule,
        },
        attempt,
        started_at: parse_ts(&started_at)?,
        finished_at: Some(now),
        outcome: Outcome::Failed,
        error: Some(error.to_string()),
        ..Default::default()
    }))
}

/// Checks, inside the transaction that is about to write a refresh's data,
/// that execution `id` is still this process's `running` claim. A refresh
/// that outlived its lease may have been taken over (its row marked failed,
/// the next attempt claimed by another process): its data must then not be
/// written, or the slot would be loaded twice.
pub fn ensure_claim_held(conn: &Connection, id: i64) -> Result<()> {
    let outcome: Option<String> = conn
        .query_row("SELECT outcome FROM execution WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match outcome.as_deref() {
        Some("running") => Ok(()),
        _ => anyhow::bail!(
            "execution {id} was taken over by another run-due after its claim lease ({} \
             minutes) expired; this refresh wrote nothing",
            LEASE.num_minutes()
        ),
    }
}

impl Store {
    /// The rows and deferral of one slot, read without any lock (for
    /// decisions that are checked again under the lock, and `--dry-run`).
    pub fn slot_state(&self, segment_id: i64, slot: DateTime<Utc>) -> Result<SlotState> {
        read_slot(&self.conn, segment_id, slot)
    }

    /// Claims a slot: under `BEGIN IMMEDIATE`, re-reads the slot, asks
    /// `plan` what to do with what it reads, and does it.
    pub fn claim_slot(
        &mut self,
        segment: &Segment,
        slot: DateTime<Utc>,
        owner: &str,
        now: DateTime<Utc>,
        plan: impl FnOnce(&SlotState) -> ClaimPlan,
    ) -> Result<ClaimResult> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("failed to lock the database to claim a slot")?;
        let state = read_slot(&tx, segment.id, slot)?;
        let mut result = ClaimResult {
            state: state.clone(),
            claimed: None,
            expired: None,
        };
        let (attempt, trigger, expire) = match plan(&state) {
            ClaimPlan::Skip => return Ok(result),
            ClaimPlan::Expire { expire } => (None, Trigger::Schedule, Some(expire)),
            ClaimPlan::Claim {
                attempt,
                trigger,
                expire,
            } => (Some(attempt), trigger, expire),
        };
        if let Some(id) = expire {
            result.expired = fail_running(&tx, segment, id, EXPIRED_CLAIM, now)?;
        }
        if let Some(attempt) = attempt {
            let lease_until = now + LEASE;
            tx.execute(
                "INSERT INTO execution (segment_id, slot, trigger, attempt, started_at, outcome,
                     claim_owner, lease_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7)",
                params![
                    segment.id,
                    ts(slot),
                    trigger.as_str(),
                    attempt,
                    ts(now),
                    owner,
                    ts(lease_until)
                ],
            )
            .with_context(|| {
                format!(
                    "failed to claim slot {} of segment `{}`",
                    ts(slot),
                    segment.name
                )
            })?;
            // A new attempt supersedes any earlier deferral of the slot; if
            // it defers again, it records a fresh one.
            tx.execute(
                "DELETE FROM slot_deferral WHERE segment_id = ?1 AND slot = ?2",
                params![segment.id, ts(slot)],
            )?;
            result.claimed = Some(Execution {
                id: tx.last_insert_rowid(),
                segment: segment.name.clone(),
                segment_id: segment.id,
                slot: Some(slot),
                trigger,
                attempt,
                started_at: now,
                outcome: Outcome::Running,
                ..Default::default()
            });
        }
        tx.commit().context("failed to commit a slot claim")?;
        Ok(result)
    }

    /// Gives a claim back because the slot's newest file is still being
    /// written: deletes the `running` row and records the deferral, so that
    /// the slot counts as deferred (not missed) if its next slot comes
    /// first.
    pub fn release_deferred(
        &mut self,
        exec: &Execution,
        file: &str,
        ready_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let slot = exec.slot.context("a deferred execution has a slot")?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM execution WHERE id = ?1 AND outcome = 'running'",
            [exec.id],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO slot_deferral (segment_id, slot, file, ready_at, deferred_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![exec.segment_id, ts(slot), file, ts(ready_at), ts(now)],
        )?;
        tx.commit()
            .with_context(|| format!("failed to release the claim of execution {}", exec.id))?;
        Ok(())
    }

    /// Finishes this process's own claim as failed, for when the refresh
    /// stopped on an error of segsync itself; returns the finished row.
    pub fn abandon_claim(
        &mut self,
        segment: &Segment,
        exec: &Execution,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Execution>> {
        fail_running(&self.conn, segment, exec.id, error, now)
    }

    /// The newest slot at or after `since` that has any execution row.
    pub fn last_recorded_slot(
        &self,
        segment_id: i64,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> = self.conn.query_row(
            "SELECT MAX(slot) FROM execution WHERE segment_id = ?1 AND slot >= ?2",
            params![segment_id, ts(since)],
            |r| r.get(0),
        )?;
        Ok(s.map(|s| parse_ts(&s)).transpose()?)
    }

    /// Deferrals of slots in `since..before`, oldest first.
    pub fn deferrals_between(
        &self,
        segment_id: i64,
        since: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> Result<Vec<Deferral>> {
        let mut stmt = self.conn.prepare(
            "SELECT slot, file, ready_at, deferred_at FROM slot_deferral
             WHERE segment_id = ?1 AND slot >= ?2 AND slot < ?3 ORDER BY slot",
        )?;
        let rows = stmt.query_map(
            params![segment_id, ts(since), ts(before)],
            deferral_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Claims in slots before `before` whose lease passed before `now`:
    /// their processes stopped and their slots can no longer be retried.
    pub fn expired_claims_before(
        &self,
        segment_id: i64,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, AttemptRow)>> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS}, slot FROM execution
             WHERE segment_id = ?1 AND outcome = 'running' AND slot < ?2 AND lease_until < ?3
             ORDER BY slot"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![segment_id, ts(before), ts(now)], |r| {
            // The slot comes after the attempt's columns.
            let slot = parse_ts(&r.get::<_, String>(8)?)?;
            Ok((slot, attempt_from_row(r)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes the rows of older slots that will not run, in one
    /// transaction: `missed` rows (attempt 1, skipped when another process
    /// wrote it first), final `failed` rows for slots deferred until their
    /// next slot came, and failures of expired claims (`expired`, row ids).
    /// Returns the rows this call wrote, so only one process reports them.
    pub fn record_older(
        &mut self,
        segment: &Segment,
        rows: &[OlderRow],
        expired: &[i64],
        now: DateTime<Utc>,
    ) -> Result<Vec<Execution>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("failed to lock the database to log missed slots")?;
        let mut written = Vec::new();
        for id in expired {
            if let Some(e) = fail_running(&tx, segment, *id, EXPIRED_CLAIM, now)? {
                written.push(e);
            }
        }
        for row in rows {
            let state = read_slot(&tx, segment.id, row.slot)?;
            let settled = state
                .attempts
                .iter()
                .any(|a| a.outcome.is_success() || a.outcome == Outcome::Running);
            if settled || (row.outcome == Outcome::Missed && !state.attempts.is_empty()) {
                continue;
            }
            let attempt = state.attempts.last().map_or(1, |a| a.attempt + 1);
            let e = Execution {
                segment: segment.name.clone(),
                segment_id: segment.id,
                slot: Some(row.slot),
                trigger: if attempt > 1 {
                    Trigger::Retry
                } else {
                    Trigger::Schedule
                },
                attempt,
                started_at: now,
                finished_at: Some(now),
                outcome: row.outcome,
                error: row.error.clone(),
                notes: row.notes.clone(),
                ..Default::default()
            };
            let id = super::insert_execution(&tx, &e)?;
            tx.execute(
                "DELETE FROM slot_deferral WHERE segment_id = ?1 AND slot = ?2",
                params![segment.id, ts(row.slot)],
            )?;
            written.push(Execution { id, ..e });
        }
        tx.commit().context("failed to log missed slots")?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{AlertState, DraftSettings, Frequency, Schedule, SegmentType, Status};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    pub(crate) fn segment(store: &mut Store, name: &str) -> Segment {
        let mut s = Segment {
            id: 0,
            name: name.into(),
            description: String::new(),
            seg_type: SegmentType::NonScd,
            status: Status::InProgress,
            schedule: Some(Schedule {
                ftp: "main".into(),
                path: "drops".into(),
                frequency: Frequency::Daily,
                from: "2026-01-01".parse().unwrap(),
                to: None,
            }),
            draft: DraftSettings::default(),
            recipients: vec![],
            id_type: None,
            partition_column: None,
            schedule_anchor: t("2026-01-01T00:00:00Z"),
            created_at: t("2026-01-01T00:00:00Z"),
            updated_at: t("2026-01-01T00:00:00Z"),
            alert_state: AlertState::Ok,
        };
        s.id = store.insert_segment(&s).unwrap();
        s
    }

    fn first_claim(state: &SlotState) -> ClaimPlan {
        if state.attempts.is_empty() {
            ClaimPlan::Claim {
                attempt: 1,
                trigger: Trigger::Schedule,
                expire: None,
            }
        } else {
            ClaimPlan::Skip
        }
    }

    const SLOT: &str = "2026-01-02T02:00:00Z";

    #[test]
    fn claim_inserts_a_running_row_with_a_lease() {
        let mut store = Store::open_in_memory().unwrap();
        let seg = segment(&mut store, "a");
        let now = t("2026-01-02T02:05:00Z");
        let r = store
            .claim_slot(&seg, t(SLOT), "me", now, first_claim)
            .unwrap();
        let e = r.claimed.unwrap();
        assert_eq!((e.attempt, e.outcome), (1, Outcome::Running));
        let state = store.slot_state(seg.id, t(SLOT)).unwrap();
        assert_eq!(state.attempts.len(), 1);
        assert_eq!(state.attempts[0].claim_owner.as_deref(), Some("me"));
        assert_eq!(state.attempts[0].lease_until, Some(now + LEASE));
        let again = store
            .claim_slot(&seg, t(SLOT), "me", now, first_claim)
            .unwrap();
        assert!(again.claimed.is_none() && again.state.attempts.len() == 1);
    }

    #[test]
    fn a_second_connection_sees_the_first_claim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.db");
        let mut a = Store::open(&path).unwrap();
        let mut b = Store::open(&path).unwrap();
        let seg = segment(&mut a, "a");
        let now = t("2026-01-02T02:05:00Z");
        // Both decided from an unlocked read that the slot is free...
        assert!(b.slot_state(seg.id, t(SLOT)).unwrap().attempts.is_empty());
        assert!(a
            .claim_slot(&seg, t(SLOT), "a", now, first_claim)
            .unwrap()
            .claimed
            .is_some());
        // ...but the second re-reads under the lock and backs off.
        let r = b.claim_slot(&seg, t(SLOT), "b", now, first_claim).unwrap();
        assert!(r.claimed.is_none());
        assert_eq!(r.state.attempts[0].claim_owner.as_deref(), Some("a"));
    }

    #[test]
    fn an_expired_claim_is_failed_and_taken_over_in_one_step() {
        let mut store = Store::open_in_memory().unwrap();
        let seg = segment(&mut store, "a");
        let now = t("2026-01-02T02:05:00Z");
        let dead = store
            .claim_slot(&seg, t(SLOT), "dead", now, first_claim)
            .unwrap();
        let dead_id = dead.claimed.unwrap().id;
        let later = now + LEASE + chrono::Duration::minutes(1);
        let r = store
            .claim_slot(&seg, t(SLOT), "alive", later, |_| ClaimPlan::Claim {
                attempt: 2,
                trigger: Trigger::Retry,
                expire: Some(dead_id),
            })
            .unwrap();
        assert_eq!(
            r.expired.as_ref().unwrap().error.as_deref(),
            Some(EXPIRED_CLAIM)
        );
        let state = store.slot_state(seg.id, t(SLOT)).unwrap();
        let outcomes: Vec<_> = state
            .attempts
            .iter()
            .map(|a| (a.attempt, a.outcome))
            .collect();
        assert_eq!(outcomes, vec![(1, Outcome::Failed), (2, Outcome::Running)]);
        assert_eq!(state.attempts[1].claim_owner.as_deref(), Some("alive"));
    }

    #[test]
    fn a_taken_over_claim_is_no_longer_held() {
        let mut store = Store::open_in_memory().unwrap();
        let seg = segment(&mut store, "a");
        let now = t("2026-01-02T02:05:00Z");
        let slow = store
            .claim_slot(&seg, t(SLOT), "slow", now, first_claim)
            .unwrap();
        let slow = slow.claimed.unwrap();
        assert!(ensure_claim_held(&store.conn, slow.id).is_ok());
        let later = now + LEASE + chrono::Duration::minutes(1);
        store
            .claim_slot(&seg, t(SLOT), "other", later, |_| ClaimPlan::Claim {
                attempt: 2,
                trigger: Trigger::Retry,
                expire: Some(slow.id),
            })
            .unwrap();
        let err = ensure_claim_held(&store.conn, slow.id)
            .unwrap_err()
            .to_string();
        assert!(err.contains("taken over"), "{err}");
    }

    #[test]
    fn the_unique_index_refuses_a_duplicate_attempt() {
        let mut store = Store::open_in_memory().unwrap();
        let seg = segment(&mut store, "a");
        let now = t("2026-01-02T02:05:00Z");
        let always = |_: &SlotState| ClaimPlan::Claim {
            attempt: 1,
            trigger: Trigger::Schedule,
            expire: None,
        };
        store.claim_slot(&seg, t(SLOT), "a", now, always).unwrap();
        assert!(store.claim_slot(&seg, t(SLOT), "b", now, always).is_err());
    }

    #[test]
    fn deferring_leaves_no_row_and_a_deferral() {
        let mut store = Store::open_in_memory().unwrap();
        let seg = segment(&mut store, "a");
        let now = t("2026-01-02T02:05:00Z");
        let e = store
            .claim_slot(&seg, t(SLOT), "a", now, first_claim)
            .unwrap()
            .claimed
            .unwrap();
        store
            .release_deferred(&e, "a__1.csv", now + chrono::Duration::minutes(2), now)
            .unwrap();
        let state = store.slot_state(seg.id, t(SLOT)).unwrap();
        assert!(state.attempts.is_empty());
        assert_eq!(state.deferral.as_ref().unwrap().file, "a__1.csv");
        // The deferral turns into a final failure once written as older.
        let rows = [OlderRow {
            slot: t(SLOT),
            outcome: Outcome::Failed,
            error: Some("still being written".into()),
            notes: None,
        }];
        let written = store.record_older(&seg, &rows, &[], now).unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(store.slot_state(seg.id, t(SLOT)).unwrap().deferral, None);
    }

    #[test]
    fn missed_rows_are_written_once() {
        let mut store = Store::open_in_memory().unwrap();
        let seg = segment(&mut store, "a");
        let now = t("2026-01-05T02:05:00Z");
        let rows: Vec<_> = ["2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"]
            .iter()
            .map(|s| OlderRow {
                slot: t(s),
                outcome: Outcome::Missed,
                error: None,
                notes: None,
            })
            .collect();
        assert_eq!(store.record_older(&seg, &rows, &[], now).unwrap().len(), 2);
        assert_eq!(store.record_older(&seg, &rows, &[], now).unwrap().len(), 0);
        assert_eq!(
            store
                .last_recorded_slot(seg.id, seg.schedule_anchor)
                .unwrap(),
            Some(t("2026-01-03T02:00:00Z"))
        );
    }
}
