//! What `run-due` decides and does.
//!
//! For each inprogress or active segment with a schedule, the latest slot
//! that has come (slot <= now) is looked at; older slots since the anchor
//! that never ran are logged as `missed` (at most [`MAX_MISSED_ROWS`] per
//! segment and run, so a long downtime cannot flood the log).
//!
//! The decisions are pure functions ([`decide`], [`older_rows`]) of the
//! slots, what the store recorded about them, `now` and the retry settings;
//! [`run_due`] reads the store, decides, then claims (deciding again under
//! the database lock, see `store::claims`), runs the refresh, and reports.
//! `--dry-run` stops after deciding.
//!
//! Traps: a deferred attempt (newest file still being uploaded) leaves no
//! execution row, only a deferral record; that record is what makes the slot
//! `failed` rather than `missed` when its next slot comes first. A retry is
//! never made once the slot's next slot has come: the next slot supersedes
//! it.

use crate::app::App;
use crate::config::Retry;
use crate::error::{RefreshFailed, UsageError};
use crate::notify::Outlook;
use crate::refresh::{Source, Step};
use crate::schedule::Plan;
use crate::segment::{Segment, Status};
use crate::store::{
    AttemptRow, ClaimPlan, Deferral, Execution, OlderRow, Outcome, SegmentFilter, SlotState,
    Trigger,
};
use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tracing::{debug, error, info, warn};

/// The most `missed` rows one `run-due` writes for one segment. After a
/// long downtime the newest ones are written and the oldest of them says
/// how many earlier slots were not listed.
pub const MAX_MISSED_ROWS: usize = 100;

/// What `run-due` does (or, with `--dry-run`, would do) with a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// First attempt at the slot.
    Run,
    /// A later attempt after a failure (or after a stopped process).
    Retry,
    /// An older slot that will never run; logged as missed (or as failed
    /// when it had been deferred).
    Missed,
    /// The newest file is still being written; the next `run-due` looks
    /// again.
    Deferred,
    /// The last attempt failed and the backoff has not passed.
    Wait,
    /// Another process holds an unexpired claim on the slot.
    ClaimedElsewhere,
    /// Nothing to do: done, out of attempts, before the first slot or
    /// after the last.
    None,
}

impl Action {
    /// The spelling of the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Retry => "retry",
            Action::Missed => "missed",
            Action::Deferred => "deferred",
            Action::Wait => "wait",
            Action::ClaimedElsewhere => "claimed-elsewhere",
            Action::None => "none",
        }
    }
}

/// The decision about the latest slot of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub reason: String,
    /// The attempt number to claim, for `run` and `retry`.
    pub attempt: i64,
    /// A `running` row whose lease passed: its process stopped, and the
    /// claimer marks it failed.
    pub expire: Option<i64>,
}

impl Decision {
    fn new(action: Action, reason: String) -> Decision {
        Decision {
            action,
            reason,
            attempt: 0,
            expire: None,
        }
    }

    /// What to ask of the store's claim, if anything.
    pub fn claim_plan(&self) -> ClaimPlan {
        match self.action {
            Action::Run | Action::Retry => ClaimPlan::Claim {
                attempt: self.attempt,
                trigger: if self.attempt > 1 {
                    Trigger::Retry
                } else {
                    Trigger::Schedule
                },
                expire: self.expire,
            },
            _ => match self.expire {
                Some(expire) => ClaimPlan::Expire { expire },
                None => ClaimPlan::Skip,
            },
        }
    }
}

/// Time formatting for reasons: in the configured zone.
#[derive(Debug, Clone, Copy)]
pub struct Fmt(pub Tz);

impl Fmt {
    fn t(self, t: DateTime<Utc>) -> String {
        crate::schedule::display_in(self.0, t)
    }
}

fn backoff(retry: &Retry) -> chrono::Duration {
    chrono::Duration::from_std(retry.backoff).unwrap_or(chrono::Duration::MAX)
}

/// Decides about `slot`, the latest slot at or before `now`, given what the
/// store recorded about it (`state`) and the slot after it (`next`, later
/// than `now`, `None` when the schedule ends with this slot).
pub fn decide(
    slot: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    state: &SlotState,
    now: DateTime<Utc>,
    retry: &Retry,
    fmt: Fmt,
) -> Decision {
    let after = match next {
        Some(n) => format!("next slot {}", fmt.t(n)),
        None => "the schedule has no later slot".to_string(),
    };
    if let Some(done) = state.attempts.iter().find(|a| a.outcome.is_success()) {
        let when = done.finished_at.map(|t| fmt.t(t)).unwrap_or_default();
        return Decision::new(
            Action::None,
            format!(
                "slot done: attempt {} {} at {when}; {after}",
                done.attempt,
                done.outcome.as_str()
            ),
        );
    }
    let deferred = |d: &Deferral| {
        Decision::new(
            Action::Deferred,
            format!(
                "newest file `{}` is still being written; it can be loaded from {}",
                d.file,
                fmt.t(d.ready_at)
            ),
        )
    };
    let Some(last) = state.attempts.last() else {
        if let Some(d) = state.deferral.as_ref().filter(|d| d.ready_at > now) {
            return deferred(d);
        }
        let mut d = Decision::new(
            Action::Run,
            format!("slot {} has come and has not run", fmt.t(slot)),
        );
        d.attempt = 1;
        return d;
    };
    match last.outcome {
        Outcome::Running => running(last, now, retry, fmt),
        Outcome::Missed => {
            Decision::new(Action::None, format!("slot was logged as missed; {after}"))
        }
        _ => {
            if last.attempt >= i64::from(retry.max_attempts) {
                return Decision::new(
                    Action::None,
                    format!(
                        "failed: attempt {} of {} failed, no attempts left; {after}",
                        last.attempt, retry.max_attempts
                    ),
                );
            }
            let failed_at = last.finished_at.unwrap_or(last.started_at);
            let retry_at = failed_at + backoff(retry);
            if next.is_some_and(|n| retry_at >= n) {
                return Decision::new(
                    Action::None,
                    format!(
                        "failed: attempt {} failed at {}, and the {after} comes before a retry \
                         would ({})",
                        last.attempt,
                        fmt.t(failed_at),
                        fmt.t(retry_at)
                    ),
                );
            }
            if retry_at > now {
                return Decision::new(
                    Action::Wait,
                    format!(
                        "attempt {} failed at {}; attempt {} from {}",
                        last.attempt,
                        fmt.t(failed_at),
                        last.attempt + 1,
                        fmt.t(retry_at)
                    ),
                );
            }
            if let Some(d) = state.deferral.as_ref().filter(|d| d.ready_at > now) {
                return deferred(d);
            }
            let mut d = Decision::new(
                Action::Retry,
                format!(
                    "attempt {} failed at {}; backoff passed (its error: `segsync logs --failed`)",
                    last.attempt,
                    fmt.t(failed_at),
                ),
            );
            d.attempt = last.attempt + 1;
            d
        }
    }
}

/// The decision about a slot whose newest row is `running`.
fn running(last: &AttemptRow, now: DateTime<Utc>, retry: &Retry, fmt: Fmt) -> Decision {
    let owner = last.claim_owner.as_deref().unwrap_or("another process");
    match last.lease_until {
        Some(lease) if lease > now => Decision::new(
            Action::ClaimedElsewhere,
            format!(
                "attempt {} is running in {owner} (claim held until {})",
                last.attempt,
                fmt.t(lease)
            ),
        ),
        lease => {
            let since = lease.map(|l| fmt.t(l)).unwrap_or_else(|| "unknown".into());
            let mut d = if last.attempt >= i64::from(retry.max_attempts) {
                Decision::new(
                    Action::None,
                    format!(
                        "attempt {} of {} stopped without finishing (claim of {owner} expired \
                         at {since}); no attempts left",
                        last.attempt, retry.max_attempts
                    ),
                )
            } else {
                let mut d = Decision::new(
                    Action::Retry,
                    format!(
                        "attempt {} stopped without finishing (claim of {owner} expired at \
                         {since}); taking over",
                        last.attempt
                    ),
                );
                d.attempt = last.attempt + 1;
                d
            };
            d.expire = Some(last.id);
            d
        }
    }
}

/// Why there is no slot to look at: before the first slot, or after the
/// last one.
pub fn no_slot_reason(plan: &Plan, now: DateTime<Utc>, fmt: Fmt) -> String {
    match plan.first_at_or_after(now) {
        Some(first) => format!("no slot has come yet; first slot {}", fmt.t(first)),
        None => "the schedule has no slot: its validity window ended before the segment's \
                 anchor (creation, edit or re-activation)"
            .to_string(),
    }
}

/// Older slots that will not run, newest first, and how many more there
/// were beyond the cap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Older {
    pub rows: Vec<OlderRow>,
    /// Slots not written because of [`MAX_MISSED_ROWS`].
    pub not_listed: usize,
}

/// The rows for the slots before `latest` that never ran: every slot after
/// `since` (the newest slot with a row, or the anchor) is `missed`, except
/// the deferred ones, which become `failed`. At most `cap` missed rows.
pub fn older_rows(
    plan: &Plan,
    since: DateTime<Utc>,
    latest: DateTime<Utc>,
    deferrals: &[Deferral],
    cap: usize,
    fmt: Fmt,
) -> Older {
    let mut out = Older::default();
    let mut missed: Vec<DateTime<Utc>> = Vec::new();
    for slot in plan.between_newest_first(since, latest) {
        if deferrals.iter().any(|d| d.slot == slot) {
            continue;
        }
        if missed.len() < cap {
            missed.push(slot);
        } else {
            out.not_listed += 1;
        }
    }
    for d in deferrals.iter().filter(|d| d.slot < latest) {
        out.rows.push(OlderRow {
            slot: d.slot,
            outcome: Outcome::Failed,
            error: Some(format!(
                "the newest file `{}` was still being written (it could be loaded from {}) \
                 when the next slot came; this slot was not loaded",
                d.file,
                fmt.t(d.ready_at)
            )),
            notes: None,
        });
    }
    let oldest = missed.last().copied();
    for slot in missed {
        let mut notes = "not run: no run-due ran between this slot and the next".to_string();
        if Some(slot) == oldest && out.not_listed > 0 {
            notes.push_str(&format!(
                "; {} earlier slots were missed too and are not listed (at most \
                 {MAX_MISSED_ROWS} missed slots are logged per run)",
                out.not_listed
            ));
        }
        out.rows.push(OlderRow {
            slot,
            outcome: Outcome::Missed,
            error: None,
            notes: Some(notes),
        });
    }
    out.rows.sort_by_key(|r| r.slot);
    out
}

/// One line of `run-due` output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub segment: String,
    /// RFC 3339 with the configured zone's offset; null when the segment
    /// has no slot to look at.
    pub slot: Option<String>,
    pub action: Action,
    pub reason: String,
    /// The execution written by this run, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    /// Whether this line is a refresh that failed in this run.
    #[serde(skip)]
    pub failed: bool,
    #[serde(skip)]
    pub slot_at: Option<DateTime<Utc>>,
}

/// What `run-due` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    pub segment: Option<String>,
}

/// The owner name written on claims: `host:pid:random`.
pub fn claim_owner() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    // RandomState is seeded from the OS: enough to tell two processes with
    // the same pid apart (containers).
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{host}:{}:{:08x}", std::process::id(), h.finish() as u32)
}

/// Runs (or with `dry_run` only decides) every due refresh. Returns the
/// reports; the caller prints them and turns failures into the exit code
/// with [`failure`].
pub fn run_due(app: &mut App, opts: &Options) -> Result<Vec<Report>> {
    run_due_with(app, opts, &mut |app, segment, exec| {
        crate::refresh::execute(app, segment, &Source::Ftp, exec)
    })
}

/// Runs a claimed execution: `refresh::execute` from the segment's FTP
/// folder, or a stand-in in tests.
pub type Executor<'a> = dyn FnMut(&mut App, &Segment, Execution) -> Result<Step> + 'a;

/// [`run_due`] with the refresh itself supplied by the caller.
pub fn run_due_with(
    app: &mut App,
    opts: &Options,
    execute: &mut Executor<'_>,
) -> Result<Vec<Report>> {
    let segments = match &opts.segment {
        Some(name) => match app.store()?.segment(name)? {
            Some(s) => vec![s],
            None => {
                return Err(UsageError(format!(
                    "no segment named `{name}` (option --segment); `segsync list` shows them"
                ))
                .into())
            }
        },
        None => app
            .store()?
            .list_segments(&SegmentFilter::default())?
            .into_iter()
            .filter(Segment::is_schedulable)
            .collect(),
    };
    let owner = claim_owner();
    let mut reports = Vec::new();
    for segment in &segments {
        let fmt = Fmt(app.config.timezone);
        if !segment.is_schedulable() {
            let why = match segment.status {
                Status::Draft | Status::Inactive => {
                    format!("segment is {}: never scheduled", segment.status)
                }
                _ => "manual upload segment: never scheduled".to_string(),
            };
            reports.push(report(segment, None, fmt, Action::None, why));
            continue;
        }
        let before = reports.len();
        // One segment's trouble (a locked or damaged database row, say)
        // must not keep the others from their refreshes.
        if let Err(err) = segment_due(app, segment, opts.dry_run, &owner, execute, &mut reports) {
            let message = crate::output::error_chain(&err);
            error!(segment = %segment.name, "run-due failed for this segment: {message}");
            let mut r = report(
                segment,
                None,
                fmt,
                Action::None,
                format!("error: {message}"),
            );
            r.failed = true;
            reports.push(r);
        }
        for r in &reports[before..] {
            debug!(
                segment = %r.segment,
                slot = r.slot.as_deref().unwrap_or("-"),
                action = r.action.as_str(),
                "{}",
                r.reason
            );
        }
    }
    Ok(reports)
}

/// The error to return when any refresh of `reports` failed.
pub fn failure(reports: &[Report]) -> Option<RefreshFailed> {
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.failed)
        .map(|r| {
            format!(
                "`{}` ({})",
                r.segment,
                r.slot.as_deref().unwrap_or("no slot")
            )
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(RefreshFailed(format!(
        "{} refresh{} failed: {}; see `segsync logs --failed`",
        failed.len(),
        if failed.len() == 1 { "" } else { "es" },
        failed.join(", ")
    )))
}

fn report(
    segment: &Segment,
    slot: Option<DateTime<Utc>>,
    fmt: Fmt,
    action: Action,
    reason: String,
) -> Report {
    Report {
        segment: segment.name.clone(),
        slot: slot.map(|s| crate::schedule::rfc3339_in(fmt.0, s)),
        action,
        reason,
        execution: None,
        failed: false,
        slot_at: slot,
    }
}

/// Decides and acts for one schedulable segment.
fn segment_due(
    app: &mut App,
    segment: &Segment,
    dry_run: bool,
    owner: &str,
    execute: &mut Executor<'_>,
    reports: &mut Vec<Report>,
) -> Result<()> {
    let schedule = segment.schedule.as_ref().expect("schedulable");
    let plan = Plan::new(&app.config, schedule, segment.schedule_anchor);
    let fmt = Fmt(app.config.timezone);
    let retry = app.config.retry;
    let now = app.clock.now();

    let Some(latest) = plan.latest_at_or_before(now) else {
        reports.push(report(
            segment,
            None,
            fmt,
            Action::None,
            no_slot_reason(&plan, now, fmt),
        ));
        return Ok(());
    };
    let next = plan.after(latest);

    // Older slots first, so that the log reads in slot order.
    let store = app.store()?;
    let anchor = segment.schedule_anchor;
    let since = store
        .last_recorded_slot(segment.id, anchor)?
        .unwrap_or(anchor - chrono::Duration::seconds(1));
    let deferrals = store.deferrals_between(segment.id, anchor, latest)?;
    let expired = store.expired_claims_before(segment.id, latest, now)?;
    let older = older_rows(&plan, since, latest, &deferrals, MAX_MISSED_ROWS, fmt);
    if older.not_listed > 0 {
        warn!(
            segment = %segment.name,
            "{} missed slots before the {MAX_MISSED_ROWS} newest are not logged one by one",
            older.not_listed
        );
    }
    if dry_run {
        for row in &older.rows {
            reports.push(older_report(segment, row, fmt, None));
        }
        for (slot, row) in &expired {
            let reason = format!(
                "attempt {} stopped without finishing and the next slot has come: would be \
                 logged as failed",
                row.attempt
            );
            reports.push(report(segment, Some(*slot), fmt, Action::Missed, reason));
        }
    } else if !older.rows.is_empty() || !expired.is_empty() {
        let ids: Vec<i64> = expired.iter().map(|(_, r)| r.id).collect();
        let written = store.record_older(segment, &older.rows, &ids, now)?;
        for exec in written {
            let row = older.rows.iter().find(|r| Some(r.slot) == exec.slot);
            let mut r = match row {
                Some(row) => older_report(segment, row, fmt, Some(exec.clone())),
                None => report(
                    segment,
                    exec.slot,
                    fmt,
                    Action::Missed,
                    format!(
                        "attempt {} stopped without finishing and the next slot has come",
                        exec.attempt
                    ),
                ),
            };
            if exec.outcome == Outcome::Failed {
                r.failed = true;
                error!(segment = %segment.name, slot = ?exec.slot, "slot failed: {}", r.reason);
                let outlook = Outlook {
                    final_failure: true,
                    next_attempt: None,
                    next_slot: exec.slot.and_then(|s| plan.after(s)),
                };
                notify(app, segment, &exec, &outlook);
            }
            reports.push(r);
        }
    }

    if !dry_run && since < latest {
        announce_abandoned_slot(app, segment, &plan, since)?;
    }

    let state = app.store()?.slot_state(segment.id, latest)?;
    let decision = decide(latest, next, &state, now, &retry, fmt);
    if dry_run || decision.claim_plan() == ClaimPlan::Skip {
        reports.push(report(
            segment,
            Some(latest),
            fmt,
            decision.action,
            decision.reason,
        ));
        return Ok(());
    }

    // Decide again under the lock: another process may have moved first.
    let mut under_lock = None;
    let claim = app
        .store()?
        .claim_slot(segment, latest, owner, now, |state| {
            let d = decide(latest, next, state, now, &retry, fmt);
            let plan = d.claim_plan();
            under_lock = Some(d);
            plan
        })?;
    let decision = under_lock.expect("decided under the lock");

    if let Some(dead) = &claim.expired {
        warn!(segment = %segment.name, slot = %fmt.t(latest), "{}", decision.reason);
        if claim.claimed.is_none() {
            let mut r = report(segment, Some(latest), fmt, decision.action, decision.reason);
            r.failed = true;
            r.execution = Some(dead.clone());
            let outlook = Outlook {
                final_failure: true,
                next_attempt: None,
                next_slot: next,
            };
            notify(app, segment, dead, &outlook);
            reports.push(r);
            return Ok(());
        }
    }
    let Some(exec) = claim.claimed else {
        reports.push(report(
            segment,
            Some(latest),
            fmt,
            decision.action,
            decision.reason,
        ));
        return Ok(());
    };

    let mut r = report(segment, Some(latest), fmt, decision.action, decision.reason);
    match execute(app, segment, exec.clone()) {
        Ok(Step::Deferred { file, ready_at }) => {
            let now = app.clock.now();
            app.store()?.release_deferred(&exec, &file, ready_at, now)?;
            r.action = Action::Deferred;
            r.reason = format!(
                "newest file `{file}` is still being written; it can be loaded from {}",
                fmt.t(ready_at)
            );
            info!(segment = %segment.name, slot = %fmt.t(latest), "deferred: {}", r.reason);
        }
        Ok(Step::Finished(done)) => {
            finished(app, segment, &plan, &done, &mut r);
        }
        Err(err) => {
            let message = crate::output::error_chain(&err);
            let now = app.clock.now();
            let done = app
                .store()?
                .abandon_claim(segment, &exec, &message, now)?
                .unwrap_or_else(|| Execution {
                    outcome: Outcome::Failed,
                    error: Some(message.clone()),
                    finished_at: Some(now),
                    ..exec.clone()
                });
            finished(app, segment, &plan, &done, &mut r);
        }
    }
    reports.push(r);
    Ok(())
}

/// The outlook of a finished execution: whether another attempt will come.
pub fn outlook(exec: &Execution, next_slot: Option<DateTime<Utc>>, retry: &Retry) -> Outlook {
    let failed = exec.outcome == Outcome::Failed;
    let next_attempt = if failed && exec.attempt < i64::from(retry.max_attempts) {
        let at = exec.finished_at.unwrap_or(exec.started_at) + backoff(retry);
        Some(at).filter(|at| next_slot.is_none_or(|n| *at < n))
    } else {
        None
    };
    Outlook {
        final_failure: failed && next_attempt.is_none(),
        next_attempt,
        next_slot,
    }
}

/// Logs, notifies and fills the report of a finished execution.
fn finished(app: &mut App, segment: &Segment, plan: &Plan, done: &Execution, r: &mut Report) {
    let fmt = Fmt(app.config.timezone);
    let next_slot = done.slot.and_then(|s| plan.after(s));
    let outlook = outlook(done, next_slot, &app.config.retry);
    let slot = done.slot.map(|s| fmt.t(s)).unwrap_or_default();
    match done.outcome {
        Outcome::Failed => {
            r.failed = true;
            let then = match outlook.next_attempt {
                Some(at) => format!("attempt {} from {}", done.attempt + 1, fmt.t(at)),
                None => "no further attempt for this slot".to_string(),
            };
            let error = done.error.as_deref().unwrap_or("no error recorded");
            // A failure that will be retried is a warning; the slot's last
            // failure is an error.
            if outlook.final_failure {
                error!(
                    segment = %segment.name,
                    "refresh of slot {slot} failed (attempt {}): {error}; {then}",
                    done.attempt
                );
            } else {
                warn!(
                    segment = %segment.name,
                    "refresh of slot {slot} failed (attempt {}): {error}; {then}",
                    done.attempt
                );
            }
        }
        outcome => info!(
            segment = %segment.name,
            "refresh of slot {slot}: {}, file {}, loaded {}, rejected {}",
            outcome.as_str(),
            done.file.as_deref().unwrap_or("-"),
            done.rows_loaded.unwrap_or(0),
            done.rows_rejected.unwrap_or(0)
        ),
    }
    notify(app, segment, done, &outlook);
    // Re-read so the report shows what the notifier recorded.
    let stored = app
        .store()
        .ok()
        .and_then(|s| s.execution(done.id).ok().flatten());
    r.execution = Some(stored.unwrap_or_else(|| done.clone()));
}

/// A slot whose last attempt failed with retries left, and whose next slot
/// came before any `run-due` retried it (downtime), has ended in failure
/// without anyone being told: tell them now. The notifier ignores an
/// execution it already decided about, so this never sends twice.
fn announce_abandoned_slot(
    app: &mut App,
    segment: &Segment,
    plan: &Plan,
    slot: DateTime<Utc>,
) -> Result<()> {
    let Some(last) = app.store()?.slot_executions(segment.id, slot)?.pop() else {
        return Ok(());
    };
    if last.outcome == Outcome::Failed && last.notified.is_none() {
        debug!(
            segment = %segment.name,
            slot = %Fmt(app.config.timezone).t(slot),
            "the next slot came before a retry: the slot ended in failure"
        );
        let outlook = Outlook {
            final_failure: true,
            next_attempt: None,
            next_slot: plan.after(slot),
        };
        notify(app, segment, &last, &outlook);
    }
    Ok(())
}

/// Notifies, never failing the refresh: a failed send is the notifier's
/// to record; an error here is only logged.
fn notify(app: &mut App, segment: &Segment, exec: &Execution, outlook: &Outlook) {
    if let Err(err) = crate::notify::after_execution(app, segment, exec, outlook) {
        warn!(
            segment = %segment.name,
            "failed to notify about execution {}: {}",
            exec.id,
            crate::output::error_chain(&err)
        );
    }
}

fn older_report(segment: &Segment, row: &OlderRow, fmt: Fmt, exec: Option<Execution>) -> Report {
    let reason = match row.outcome {
        Outcome::Failed => row.error.clone(),
        _ => row.notes.clone(),
    }
    .unwrap_or_default();
    let mut r = report(segment, Some(row.slot), fmt, Action::Missed, reason);
    r.execution = exec;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{Frequency, Schedule};
    use std::time::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const FMT: Fmt = Fmt(chrono_tz::UTC);
    const SLOT: &str = "2026-03-02T02:00:00Z";
    const NEXT: &str = "2026-03-03T02:00:00Z";

    fn retry() -> Retry {
        Retry {
            max_attempts: 3,
            backoff: Duration::from_secs(30 * 60),
        }
    }

    fn row(attempt: i64, outcome: Outcome, finished: &str) -> AttemptRow {
        AttemptRow {
            id: attempt * 10,
            attempt,
            outcome,
            started_at: t(finished) - chrono::Duration::minutes(1),
            finished_at: Some(t(finished)),
            claim_owner: None,
            lease_until: None,
            error: Some("timed out".into()),
        }
    }

    fn state(attempts: Vec<AttemptRow>) -> SlotState {
        SlotState {
            attempts,
            deferral: None,
        }
    }

    fn at(now: &str, s: &SlotState) -> Decision {
        decide(t(SLOT), Some(t(NEXT)), s, t(now), &retry(), FMT)
    }

    #[test]
    fn a_slot_with_no_row_runs() {
        let d = at("2026-03-02T02:01:00Z", &state(vec![]));
        assert_eq!((d.action, d.attempt), (Action::Run, 1));
        assert_eq!(
            d.claim_plan(),
            ClaimPlan::Claim {
                attempt: 1,
                trigger: Trigger::Schedule,
                expire: None
            }
        );
    }

    #[test]
    fn a_done_slot_is_left_alone() {
        for outcome in [Outcome::Success, Outcome::Unchanged] {
            let s = state(vec![
                row(1, Outcome::Failed, "2026-03-02T02:01:00Z"),
                row(2, outcome, "2026-03-02T02:40:00Z"),
            ]);
            let d = at("2026-03-02T05:00:00Z", &s);
            assert_eq!(d.action, Action::None);
            assert!(d.reason.contains("slot done"), "{}", d.reason);
            assert_eq!(d.claim_plan(), ClaimPlan::Skip);
        }
    }

    #[test]
    fn a_failure_waits_for_the_backoff_then_retries() {
        let s = state(vec![row(1, Outcome::Failed, "2026-03-02T02:01:00Z")]);
        let d = at("2026-03-02T02:20:00Z", &s);
        assert_eq!(d.action, Action::Wait);
        assert!(
            d.reason.contains("attempt 2 from 2026-03-02 02:31"),
            "{}",
            d.reason
        );
        let d = at("2026-03-02T02:31:00Z", &s);
        assert_eq!((d.action, d.attempt), (Action::Retry, 2));
        assert!(matches!(
            d.claim_plan(),
            ClaimPlan::Claim {
                trigger: Trigger::Retry,
                attempt: 2,
                ..
            }
        ));
    }

    #[test]
    fn retries_stop_at_max_attempts() {
        let s = state(vec![
            row(1, Outcome::Failed, "2026-03-02T02:01:00Z"),
            row(2, Outcome::Failed, "2026-03-02T02:40:00Z"),
            row(3, Outcome::Failed, "2026-03-02T03:20:00Z"),
        ]);
        let d = at("2026-03-02T09:00:00Z", &s);
        assert_eq!(d.action, Action::None);
        assert!(d.reason.contains("3 of 3"), "{}", d.reason);
    }

    #[test]
    fn no_retry_once_the_next_slot_would_come_first() {
        let s = state(vec![row(1, Outcome::Failed, "2026-03-03T01:45:00Z")]);
        let d = at("2026-03-03T01:50:00Z", &s);
        assert_eq!(d.action, Action::None);
        assert!(d.reason.contains("comes before a retry"), "{}", d.reason);
    }

    #[test]
    fn a_live_claim_is_left_to_its_owner_and_a_dead_one_taken_over() {
        let mut r = row(1, Outcome::Running, "2026-03-02T02:01:00Z");
        r.finished_at = None;
        r.claim_owner = Some("h:1:ab".into());
        r.lease_until = Some(t("2026-03-02T02:31:00Z"));
        let s = state(vec![r.clone()]);
        let d = at("2026-03-02T02:10:00Z", &s);
        assert_eq!(d.action, Action::ClaimedElsewhere);
        assert!(d.reason.contains("h:1:ab"));
        let d = at("2026-03-02T02:32:00Z", &s);
        assert_eq!(
            (d.action, d.attempt, d.expire),
            (Action::Retry, 2, Some(r.id))
        );

        r.attempt = 3;
        let d = at("2026-03-02T02:32:00Z", &state(vec![r.clone()]));
        assert_eq!((d.action, d.expire), (Action::None, Some(r.id)));
        assert_eq!(d.claim_plan(), ClaimPlan::Expire { expire: r.id });
    }

    #[test]
    fn a_deferral_is_respected_until_the_file_is_old_enough() {
        let mut s = state(vec![]);
        s.deferral = Some(Deferral {
            slot: t(SLOT),
            file: "seg__1.csv".into(),
            ready_at: t("2026-03-02T02:07:00Z"),
            deferred_at: t("2026-03-02T02:05:00Z"),
        });
        let d = at("2026-03-02T02:06:00Z", &s);
        assert_eq!(d.action, Action::Deferred);
        assert!(d.reason.contains("seg__1.csv"));
        assert_eq!(d.claim_plan(), ClaimPlan::Skip);
        assert_eq!(at("2026-03-02T02:07:00Z", &s).action, Action::Run);
    }

    #[test]
    fn outlook_says_when_a_failure_is_final() {
        let mut e = Execution {
            attempt: 1,
            outcome: Outcome::Failed,
            started_at: t("2026-03-02T02:00:00Z"),
            finished_at: Some(t("2026-03-02T02:01:00Z")),
            ..Default::default()
        };
        let o = outlook(&e, Some(t(NEXT)), &retry());
        assert_eq!(
            (o.final_failure, o.next_attempt),
            (false, Some(t("2026-03-02T02:31:00Z")))
        );
        e.attempt = 3;
        assert!(outlook(&e, Some(t(NEXT)), &retry()).final_failure);
        e.attempt = 1;
        e.finished_at = Some(t("2026-03-03T01:50:00Z"));
        assert!(outlook(&e, Some(t(NEXT)), &retry()).final_failure);
        e.outcome = Outcome::Success;
        assert!(!outlook(&e, Some(t(NEXT)), &retry()).final_failure);
    }

    fn daily() -> Plan {
        let s = Schedule {
            ftp: "f".into(),
            path: String::new(),
            frequency: Frequency::Daily,
            from: "2026-01-01".parse().unwrap(),
            to: None,
        };
        Plan::with(
            chrono_tz::UTC,
            chrono::NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
            &s,
            t("2026-01-01T00:00:00Z"),
        )
    }

    #[test]
    fn older_slots_are_missed_and_capped() {
        let plan = daily();
        let latest = t("2026-01-10T02:00:00Z");
        let since = t("2026-01-05T02:00:00Z");
        let o = older_rows(&plan, since, latest, &[], 100, FMT);
        let slots: Vec<_> = o.rows.iter().map(|r| r.slot).collect();
        assert_eq!(
            slots,
            (6..10)
                .map(|d| t(&format!("2026-01-{d:02}T02:00:00Z")))
                .collect::<Vec<_>>()
        );
        assert!(o.rows.iter().all(|r| r.outcome == Outcome::Missed));

        let o = older_rows(&plan, since, latest, &[], 2, FMT);
        assert_eq!(o.rows.len(), 2);
        assert_eq!(o.not_listed, 2);
        assert_eq!(o.rows[0].slot, t("2026-01-08T02:00:00Z"));
        assert!(o.rows[0]
            .notes
            .as_deref()
            .unwrap()
            .contains("2 earlier slots"));

        // From the anchor: the first slot itself counts.
        let o = older_rows(
            &plan,
            t("2025-12-31T23:59:59Z"),
            t("2026-01-03T02:00:00Z"),
            &[],
            100,
            FMT,
        );
        assert_eq!(o.rows.len(), 2);
    }

    #[test]
    fn a_deferred_older_slot_fails_instead_of_missed() {
        let plan = daily();
        let d = Deferral {
            slot: t("2026-01-06T02:00:00Z"),
            file: "x__1.csv".into(),
            ready_at: t("2026-01-06T02:09:00Z"),
            deferred_at: t("2026-01-06T02:07:00Z"),
        };
        let o = older_rows(
            &plan,
            t("2026-01-05T02:00:00Z"),
            t("2026-01-07T02:00:00Z"),
            &[d],
            100,
            FMT,
        );
        assert_eq!(o.rows.len(), 1);
        assert_eq!(o.rows[0].outcome, Outcome::Failed);
        assert!(o.rows[0].error.as_deref().unwrap().contains("x__1.csv"));
    }

    mod simulation {
        //! Many `run-due` calls at random times over a real (temporary)
        //! store, with a stand-in refresh that succeeds, fails, defers or
        //! errors at random: the log must always obey the scheduling rules.
        use super::*;
        use crate::app::App;
        use crate::cli::Global;
        use crate::config::Config;
        use crate::segment::{AlertState, DraftSettings, SegmentType};
        use crate::store::{finish_execution, ExecutionFilter};
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        fn app(dir: &std::path::Path, backoff_min: u64) -> App {
            let text = format!(
                "database = \"seg.db\"\ntimezone = \"Europe/London\"\nsync_time = \"01:30\"\n\
                 [retry]\nmax_attempts = 3\nbackoff = \"{backoff_min}m\"\n\
                 [[ftp]]\nname = \"main\"\nurl = \"ftp://127.0.0.1:9\"\n"
            );
            let path = dir.join("segments.toml");
            let config = Config::parse(&text, &path).unwrap();
            let global = Global {
                config: None,
                now: Some(t("2026-03-26T00:00:00Z")),
                json: true,
                verbose: 0,
                quiet: true,
            };
            App::with_config(config, &global)
        }

        fn segment(app: &mut App, anchor: DateTime<Utc>) -> Segment {
            let mut s = Segment {
                id: 0,
                name: "sim".into(),
                description: String::new(),
                seg_type: SegmentType::NonScd,
                status: Status::InProgress,
                schedule: Some(Schedule {
                    ftp: "main".into(),
                    path: String::new(),
                    frequency: Frequency::Daily,
                    from: "2026-03-26".parse().unwrap(),
                    to: None,
                }),
                draft: DraftSettings::default(),
                recipients: vec![],
                id_type: None,
                partition_column: None,
                schedule_anchor: anchor,
                created_at: anchor,
                updated_at: anchor,
                alert_state: AlertState::Ok,
            };
            s.id = app.store().unwrap().insert_segment(&s).unwrap();
            s
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(40))]

            #[test]
            fn the_log_obeys_the_rules(
                anchor_min in 0i64..(3 * 1440),
                period in 10i64..120,
                downtimes in prop::collection::vec((0i64..(5 * 1440), 0i64..(2 * 1440)), 0..3),
                dry_every in 2usize..9,
                outcomes in prop::collection::vec(0u8..4, 1..20),
                backoff_min in prop_oneof![Just(10u64), Just(30), Just(600), Just(2000)],
            ) {
                let dir = tempfile::tempdir().unwrap();
                let mut app = app(dir.path(), backoff_min);
                let base = t("2026-03-26T00:00:00Z");
                let anchor = base + chrono::Duration::minutes(anchor_min);
                let seg = segment(&mut app, anchor);
                let plan = Plan::new(&app.config, seg.schedule.as_ref().unwrap(), anchor);
                let backoff = chrono::Duration::minutes(backoff_min as i64);
                // Cron every `period` minutes over five days, except while
                // the machine is down; every `dry_every`-th call is a dry run.
                let runs: Vec<(i64, bool)> = (0..(5 * 1440))
                    .step_by(period as usize)
                    .filter(|m| !downtimes.iter().any(|(from, len)| *m >= *from && *m < from + len))
                    .enumerate()
                    .map(|(i, m)| (m, i % dry_every == 0))
                    .collect();

                let mut next_outcome = outcomes.iter().copied().cycle();
                let mut exec_fn = |app: &mut App, _: &Segment, mut exec: Execution| -> Result<Step> {
                    let now = app.clock.now();
                    match next_outcome.next().unwrap() {
                        2 => Ok(Step::Deferred {
                            file: "sim__x.csv".into(),
                            ready_at: now + chrono::Duration::minutes(2),
                        }),
                        3 => Err(anyhow::anyhow!("the database went away")),
                        c => {
                            exec.outcome = if c == 0 { Outcome::Success } else { Outcome::Failed };
                            exec.error = (c == 1).then(|| "boom".to_string());
                            exec.finished_at = Some(now);
                            finish_execution(&app.store()?.conn, &exec)?;
                            Ok(Step::Finished(Box::new(exec)))
                        }
                    }
                };
                let filter = ExecutionFilter { segment_id: Some(seg.id), ..Default::default() };
                let mut last_run = base;
                for (minute, dry_run) in &runs {
                    let now = base + chrono::Duration::minutes(*minute);
                    app.clock = crate::clock::Clock::starting_at(now);
                    let before = app.store().unwrap().executions(&filter).unwrap().len();
                    let opts = Options { dry_run: *dry_run, segment: None };
                    run_due_with(&mut app, &opts, &mut exec_fn).unwrap();
                    if *dry_run {
                        let after = app.store().unwrap().executions(&filter).unwrap().len();
                        prop_assert_eq!(before, after, "a dry run wrote");
                    } else {
                        last_run = now;
                    }
                }

                let mut rows = app.store().unwrap().executions(&filter).unwrap();
                rows.reverse();
                let mut by_slot: BTreeMap<DateTime<Utc>, Vec<Execution>> = BTreeMap::new();
                for e in rows {
                    prop_assert!(e.outcome != Outcome::Running, "left running: {:?}", e);
                    let slot = e.slot.unwrap();
                    prop_assert_eq!(plan.first_at_or_after(slot), Some(slot), "not a slot");
                    by_slot.entry(slot).or_default().push(e);
                }
                for (slot, list) in &by_slot {
                    list.iter().enumerate().try_for_each(|(i, e)| {
                        prop_assert_eq!(e.attempt, i as i64 + 1, "attempts of {}", slot);
                        Ok(())
                    })?;
                    prop_assert!(list.len() <= 3, "too many attempts at {}", slot);
                    if list.iter().any(|e| e.outcome == Outcome::Missed) {
                        prop_assert_eq!(list.len(), 1, "missed beside other rows at {}", slot);
                    }
                    let successes = list.iter().filter(|e| e.outcome.is_success()).count();
                    prop_assert!(successes <= 1);
                    if successes == 1 {
                        prop_assert!(list.last().unwrap().outcome.is_success());
                    }
                    let next = plan.after(*slot);
                    for (i, e) in list.iter().enumerate() {
                        let written_late = e.outcome == Outcome::Missed
                            || e.error.as_deref().is_some_and(|m| m.contains("still being written"));
                        prop_assert!(e.started_at >= *slot);
                        if written_late {
                            continue;
                        }
                        if let Some(n) = next {
                            prop_assert!(e.started_at < n, "attempt {} of {} after the next slot", e.attempt, slot);
                        }
                        if i > 0 {
                            let prev = &list[i - 1];
                            prop_assert!(
                                e.started_at >= prev.finished_at.unwrap() + backoff,
                                "retry of {} before the backoff", slot
                            );
                        }
                    }
                }
                // Every slot before the latest one at the last real run has a row.
                if let Some(latest) = plan.latest_at_or_before(last_run) {
                    for slot in plan.from_instant(anchor).take_while(|s| *s < latest) {
                        prop_assert!(by_slot.contains_key(&slot), "slot {} has no row", slot);
                    }
                }
            }
        }
    }
}
