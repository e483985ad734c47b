//! Failure, warning and recovery emails, and the SMTP check.
//!
//! [`after_execution`] is called once an execution row is finished. It
//! decides whether an email is due ([`decide`], a pure state machine over
//! the segment's `alert_state`), builds it ([`message`], pure), sends it
//! ([`smtp`]) and records the result in the execution's `notified` column.
//! A failed send is recorded and logged, never returned as an error: the
//! refresh itself has already been written.
//!
//! # No double sends
//!
//! A `run-due` can crash at any point and another process take over. The
//! state change and a `sending ...` note are written first, in one short
//! `BEGIN IMMEDIATE` transaction that re-reads the segment's alert state and
//! the execution's `notified`; only then is the email sent, and the result
//! replaces the note. So:
//! - a second call for the same execution (by the same or another process)
//!   finds `notified` set and does nothing;
//! - a later execution in the same state finds the state already changed
//!   and sends nothing;
//! - a crash between the write and the end of the send leaves `sending ...`
//!   in the log, which tells the reader the result is unknown. Delivery is
//!   therefore at most once: a lost alert is visible in `segsync logs`,
//!   while a duplicate would teach recipients to ignore the emails.
//!
//! The state moves even when nothing can be sent (no `[smtp]`, no
//! recipients, the server refused): recipients are told about changes, and
//! a send that failed is not retried on the next run, which would turn a
//! mail outage into one email per cron tick once it ends.
//!
//! Call it after `finish_execution`, never before: `finish_execution`
//! rewrites `notified` from the in-memory row.

pub mod decide;
pub mod message;
pub mod smtp;

use crate::app::App;
use crate::segment::Segment;
use crate::store::{ts, Execution, Store};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
pub use decide::Kind;

/// What follows an execution, as the caller (run-due or refresh) knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outlook {
    /// No retry of this slot will follow: the last attempt failed, or the
    /// next slot has come. Always true for a manual refresh.
    pub final_failure: bool,
    /// When the next attempt of this slot is due, if one will be made.
    pub next_attempt: Option<DateTime<Utc>>,
    /// The segment's next slot, if it has one.
    pub next_slot: Option<DateTime<Utc>>,
}

/// What one notification will do, fixed before anything is sent.
enum Plan {
    /// Record this text; nothing to send.
    Record(String),
    /// Send to these addresses; `skipped` were dropped as non-members.
    Send {
        to: Vec<String>,
        skipped: Vec<String>,
    },
}

/// After an execution finished: decide, build, send, record. Never `Err`
/// for a failed send; `Err` only for database failures.
pub fn after_execution(
    app: &mut App,
    segment: &Segment,
    exec: &Execution,
    outlook: &Outlook,
) -> Result<()> {
    let now = app.clock.now();
    let config = app.config.clone();
    let store = app.store()?;

    let claimed = in_transaction(store, |store| {
        // Fresh copies: the caller's may predate another process's work.
        let current = store.segment_by_id(segment.id)?;
        let row = store
            .execution(exec.id)?
            .with_context(|| format!("execution {} of `{}` is gone", exec.id, segment.name))?;
        if row.notified.is_some() {
            return Ok(None);
        }
        let d = decide::decide(
            current.alert_state,
            row.outcome,
            row.rows_rejected.unwrap_or(0),
            outlook.final_failure,
        );
        if d.state != current.alert_state {
            store.set_alert_state(current.id, d.state)?;
        }
        let Some(kind) = d.email else {
            return Ok(None);
        };
        let plan = plan(&config, &current);
        let note = match &plan {
            Plan::Record(text) => format!("{} email {text}", kind.as_str()),
            Plan::Send { to, .. } => format!(
                "sending {} email to {} since {}; if this note stays, the process stopped \
                 before the result was known",
                kind.as_str(),
                to.join(", "),
                ts(now)
            ),
        };
        store.set_notified(exec.id, &note)?;
        Ok(Some((kind, plan, row)))
    })
    .with_context(|| format!("failed to record the notification for `{}`", segment.name))?;

    let Some((kind, Plan::Send { to, skipped }, row)) = claimed else {
        return Ok(());
    };
    let smtp = config.smtp.as_ref().expect("plan checked [smtp]");
    let rejected = store.rejected_rows(exec.id)?;
    let text = message::build(&message::Facts {
        kind,
        exec: &row,
        rejected: &rejected[..rejected.len().min(message::SHOWN_REJECTED)],
        outlook,
        timezone: config.timezone,
        max_attempts: config.retry.max_attempts,
    });
    let mail = smtp::Mail {
        to: to.clone(),
        subject: text.subject,
        body: text.body,
    };

    let mut note = match smtp::send(smtp, &mail, now) {
        Ok(()) => {
            tracing::info!(
                "{}: sent the {} email to {}",
                segment.name,
                kind.as_str(),
                to.join(", ")
            );
            format!(
                "{} email sent to {} at {}",
                kind.as_str(),
                to.join(", "),
                ts(app.clock.now())
            )
        }
        Err(e) => {
            tracing::warn!(
                "{}: the {} email was not sent: {e:#}",
                segment.name,
                kind.as_str()
            );
            format!(
                "{} email to {} not sent at {}: {e:#}",
                kind.as_str(),
                to.join(", "),
                ts(app.clock.now())
            )
        }
    };
    if !skipped.is_empty() {
        note.push_str(&format!(
            "; skipped {} (not in [organization] members)",
            skipped.join(", ")
        ));
    }
    app.store()?
        .set_notified(exec.id, &note)
        .with_context(|| format!("failed to record the notification for `{}`", segment.name))
}

fn plan(config: &crate::config::Config, segment: &Segment) -> Plan {
    if config.smtp.is_none() {
        return Plan::Record("not sent: no [smtp] section in segments.toml".into());
    }
    let (to, skipped): (Vec<String>, Vec<String>) = segment
        .recipients
        .iter()
        .cloned()
        .partition(|r| config.is_member(r));
    if to.is_empty() {
        let mut text = "not sent: no recipients".to_string();
        if !skipped.is_empty() {
            text.push_str(&format!(
                " ({} not in [organization] members)",
                skipped.join(", ")
            ));
        }
        return Plan::Record(text);
    }
    Plan::Send { to, skipped }
}

/// Runs `f` inside `BEGIN IMMEDIATE` ... `COMMIT`, rolling back on error.
fn in_transaction<T>(store: &mut Store, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
    store.conn().execute_batch("BEGIN IMMEDIATE")?;
    match f(store) {
        Ok(v) => {
            store.conn().execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = store.conn().execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Tries the `[smtp]` connection for `segsync check`: connects, greets,
/// secures and authenticates without sending; with `send_test`, also sends
/// a test email to that address. Returns a line saying what worked.
pub fn check_smtp(app: &App, send_test: Option<&str>) -> Result<String> {
    let Some(smtp) = &app.config.smtp else {
        return Ok("smtp: no [smtp] section in segments.toml; no email will be sent".into());
    };
    let who = match &smtp.user {
        Some(u) => format!(", authenticated as `{u}`"),
        None => String::new(),
    };
    smtp::test_connection(smtp).context("smtp check failed")?;
    let mut out = format!("connected to {}{who}", smtp::describe(smtp));
    if let Some(addr) = send_test {
        if !crate::validate_email(addr) {
            return Err(crate::error::UsageError(format!(
                "--send-test `{addr}` is not an email address"
            ))
            .into());
        }
        let mail = smtp::Mail {
            to: vec![addr.to_string()],
            subject: "[segsync] test email".into(),
            body: format!(
                "This is a test email from segsync, sent by `segsync check` with the \
                 [smtp] section of {}.\n\nFailure, warning and recovery notices will \
                 arrive like this one.\n",
                app.config.path.display()
            ),
        };
        smtp::send(smtp, &mail, app.clock.now()).context("smtp check failed")?;
        out.push_str(&format!("; test email sent to {addr}"));
    }
    Ok(out)
}
