//! `segsync logs [NAME]`: the execution log, one line per execution.

use crate::app::App;
use crate::cli::LogsArgs;
use crate::output::{paint, Color};
use crate::store::{Execution, ExecutionFilter, Outcome, RejectedRow};
use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// Lines shown when `--limit` is not given.
const DEFAULT_LIMIT: usize = 50;

pub fn run(app: &mut App, args: LogsArgs) -> Result<()> {
    let segment_id = match &args.name {
        Some(n) => Some(super::show::find(app, n)?.id),
        None => None,
    };
    let since = match &args.since {
        Some(s) => Some(crate::clock::parse_when(s, app.config.timezone, "--since")?),
        None => None,
    };
    let execs = app.store()?.executions(&ExecutionFilter {
        segment_id,
        failed_only: args.failed,
        since,
        limit: Some(args.limit.unwrap_or(DEFAULT_LIMIT)),
    })?;
    if app.json {
        if !args.rejected {
            return crate::output::print_json(&execs);
        }
        let store = app.store()?;
        let with: Vec<WithRejected> = execs
            .iter()
            .map(|e| {
                Ok(WithRejected {
                    exec: e,
                    rejected: store.rejected_rows(e.id)?,
                })
            })
            .collect::<Result<_>>()?;
        return crate::output::print_json(&with);
    }
    if execs.is_empty() {
        crate::outln!("no executions{}", if args.failed { " failed" } else { "" });
        return Ok(());
    }
    for e in &execs {
        crate::outln!(
            "{}",
            line(e, app.config.timezone, app.color, args.name.is_none())
        );
        if args.rejected {
            print_rejected(&app.store()?.rejected_rows(e.id)?, e.rows_rejected);
        }
    }
    Ok(())
}

/// An execution with its kept rejected rows, for `logs --rejected --json`.
#[derive(Serialize)]
struct WithRejected<'a> {
    #[serde(flatten)]
    exec: &'a Execution,
    rejected: Vec<RejectedRow>,
}

/// The kept rejected rows under their execution's line, and how many more
/// were counted than kept.
fn print_rejected(rows: &[RejectedRow], counted: Option<i64>) {
    for r in rows {
        let field = r
            .field
            .as_deref()
            .map(|f| format!("{f}: "))
            .unwrap_or_default();
        let content = r
            .content
            .as_deref()
            .map(|c| format!("  [{c}]"))
            .unwrap_or_default();
        crate::outln!("     line {}: {field}{}{content}", r.line, r.reason);
    }
    let more = counted.unwrap_or(0) - rows.len() as i64;
    if more > 0 {
        crate::outln!("     ... and {more} more (only the first 1,000 are kept)");
    }
}

/// One log line: dot, start time, segment, slot, file, counts, error.
pub fn line(e: &Execution, tz: Tz, color: bool, with_segment: bool) -> String {
    let (dot, c) = match e.outcome {
        Outcome::Success | Outcome::Unchanged => ("●", Color::Green),
        Outcome::Failed => ("●", Color::Red),
        Outcome::Missed => ("○", Color::Yellow),
        Outcome::Running => ("◌", Color::Dim),
    };
    let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let mut parts = vec![paint(dot, c, color), fmt(e.started_at)];
    if with_segment {
        parts.push(e.segment.clone());
    }
    parts.push(format!("#{}", e.id));
    parts.push(paint(e.outcome.as_str(), c, color));
    match e.slot {
        Some(s) => parts.push(format!("slot {}", fmt(s))),
        None => parts.push("manual".into()),
    }
    if e.attempt > 1 {
        parts.push(format!("attempt {}", e.attempt));
    }
    if let Some(f) = &e.file {
        parts.push(f.clone());
    }
    if let Some(n) = e.rows_loaded {
        parts.push(format!("loaded {n}"));
    }
    if let Some(n) = e.rows_rejected {
        if n > 0 || e.outcome == Outcome::Success {
            parts.push(format!("rejected {n}"));
        }
    }
    if let (Some(a), Some(r), Some(c)) = (e.added, e.removed, e.changed) {
        parts.push(format!("+{a} -{r} ~{c}"));
    }
    let mut s = parts.join("  ");
    if let Some(err) = &e.error {
        s.push_str("  ");
        s.push_str(&paint(err, Color::Red, color));
    }
    if let Some(n) = &e.notes {
        s.push_str(&format!("  ({n})"));
    }
    s
}
