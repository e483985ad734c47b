//! The words of an email: subject and plain-text body, built from an
//! execution without any I/O.
//!
//! The body is a short block of `Label: value` lines that reads the same in
//! any client, then the first rejected lines, then what happens next and the
//! command that shows the full log. Times are in the organisation's time
//! zone with its abbreviation, so that a reader in another zone can tell.

use super::decide::Kind;
use super::Outlook;
use crate::store::{Execution, Outcome, RejectedRow};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::fmt::Write;

/// How many rejected lines an email lists; the log keeps up to 1,000.
pub const SHOWN_REJECTED: usize = 20;

/// Longest raw row shown for a rejected line, in characters.
const SHOWN_CONTENT: usize = 80;

/// Everything an email says.
pub struct Facts<'a> {
    pub kind: Kind,
    pub exec: &'a Execution,
    /// The first rejected rows of the execution, by line.
    pub rejected: &'a [RejectedRow],
    pub outlook: &'a Outlook,
    pub timezone: Tz,
    pub max_attempts: u32,
}

/// A built email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub subject: String,
    pub body: String,
}

/// Formats an instant in `tz`, e.g. `Tue 2026-12-01 02:00 IST`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// Builds the subject and body.
pub fn build(f: &Facts) -> Text {
    let e = f.exec;
    let name = &e.segment;
    let slot = match e.slot {
        Some(s) => local(s, f.timezone),
        None => format!(
            "none (manual refresh started {})",
            local(e.started_at, f.timezone)
        ),
    };
    let rejected = e.rows_rejected.unwrap_or(0);

    let subject = match f.kind {
        Kind::Failure => match e.slot {
            Some(s) => format!(
                "[segsync] {name}: refresh failed for the {} slot",
                local(s, f.timezone)
            ),
            None => format!("[segsync] {name}: manual refresh failed"),
        },
        Kind::Warning => format!(
            "[segsync] {name}: refreshed, {rejected} {} rejected",
            plural(rejected, "row", "rows")
        ),
        Kind::Recovery => format!("[segsync] {name}: refresh succeeded again"),
    };

    let mut b = String::new();
    let summary = match f.kind {
        Kind::Failure => format!(
            "The refresh of segment {name} failed. The segment keeps its previous members \
             and status."
        ),
        Kind::Warning => format!(
            "Segment {name} was refreshed, but {rejected} {} of the file {} rejected and \
             {} not in the segment.",
            plural(rejected, "row", "rows"),
            if rejected == 1 { "was" } else { "were" },
            if rejected == 1 { "is" } else { "are" }
        ),
        Kind::Recovery => format!(
            "Segment {name} was refreshed successfully after an earlier failure was \
             reported."
        ),
    };
    wrapped(&mut b, &summary);
    b.push('\n');

    field(&mut b, "Segment", name);
    field(&mut b, "Slot", &slot);
    let attempt = if e.slot.is_some() {
        format!("{} of {}", e.attempt, f.max_attempts)
    } else {
        e.attempt.to_string()
    };
    field(&mut b, "Attempt", &attempt);
    if let Some(t) = e.finished_at {
        field(&mut b, "Finished", &local(t, f.timezone));
    }
    field(
        &mut b,
        "File",
        e.file.as_deref().unwrap_or("none (no file was read)"),
    );
    let outcome = match e.outcome {
        Outcome::Unchanged => "unchanged (the file was already loaded)",
        o => o.as_str(),
    };
    field(&mut b, "Outcome", outcome);
    if let Some(err) = &e.error {
        field(&mut b, "Error", err);
    }
    if let Some(read) = e.rows_read {
        let counts = format!(
            "{read} read, {} loaded, {rejected} rejected",
            e.rows_loaded.unwrap_or(0)
        );
        field(&mut b, "Rows", &counts);
        if e.outcome == Outcome::Success {
            let changes = format!(
                "{} added, {} removed, {} changed partition",
                e.added.unwrap_or(0),
                e.removed.unwrap_or(0),
                e.changed.unwrap_or(0)
            );
            field(&mut b, "Members", &changes);
        }
    }

    if !f.rejected.is_empty() {
        b.push('\n');
        line(&mut b, "First rejected lines:");
        for r in f.rejected.iter().take(SHOWN_REJECTED) {
            let mut l = format!("  line {}: ", r.line);
            if let Some(field) = &r.field {
                let _ = write!(l, "{field}: ");
            }
            l.push_str(&r.reason);
            if let Some(c) = &r.content {
                let _ = write!(l, "  [{}]", cut(c, SHOWN_CONTENT));
            }
            line(&mut b, &l);
        }
        let shown = f.rejected.len().min(SHOWN_REJECTED) as i64;
        if rejected > shown {
            line(
                &mut b,
                &format!(
                    "  ... and {} more (`segsync logs {name} --rejected` lists the first 1,000)",
                    rejected - shown
                ),
            );
        }
    }

    b.push('\n');
    let next = match (f.outlook.next_attempt, f.outlook.next_slot) {
        (Some(a), _) => format!("Next attempt: {}", local(a, f.timezone)),
        (None, Some(s)) => format!("Next slot: {}", local(s, f.timezone)),
        (None, None) => "Next: no further slot is scheduled".to_string(),
    };
    line(&mut b, &next);
    if f.kind == Kind::Failure && e.slot.is_some() && e.attempt < i64::from(f.max_attempts) {
        line(
            &mut b,
            "No more attempts for this slot: the next slot has come.",
        );
    }
    if f.kind == Kind::Failure {
        wrapped(
            &mut b,
            "No further email is sent while the segment keeps failing; one is sent when it \
             succeeds again.",
        );
    }
    b.push('\n');
    line(&mut b, "Full log:");
    // With rejected rows, the command that lists them.
    let with_rejected = if f.rejected.is_empty() {
        ""
    } else {
        " --rejected"
    };
    line(&mut b, &format!("  segsync logs {name}{with_rejected}"));

    Text { subject, body: b }
}

fn field(b: &mut String, label: &str, value: &str) {
    // One value per line keeps the block aligned; a multi-line error is
    // flattened so that the label column stays readable.
    let value = value.replace(['\r', '\n'], " ");
    let _ = writeln!(b, "{:<9} {value}", format!("{label}:"));
}

fn line(b: &mut String, text: &str) {
    b.push_str(text);
    b.push('\n');
}

/// Writes prose wrapped at 72 columns, as plain-text mail is read best,
/// and so that it travels as 7-bit text rather than quoted-printable.
fn wrapped(b: &mut String, text: &str) {
    let mut width = 0;
    for word in text.split_whitespace() {
        if width > 0 && width + 1 + word.len() > 72 {
            b.push('\n');
            width = 0;
        } else if width > 0 {
            b.push(' ');
            width += 1;
        }
        b.push_str(word);
        width += word.len();
    }
    b.push('\n');
}

fn plural<'a>(n: i64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn cut(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut t: String = flat.chars().take(max).collect();
        t.push_str("...");
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Trigger;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn failed() -> Execution {
        Execution {
            id: 7,
            segment: "high_value".into(),
            segment_id: 1,
            slot: Some(at("2026-11-30T20:30:00Z")),
            trigger: Trigger::Retry,
            attempt: 3,
            started_at: at("2026-11-30T21:30:00Z"),
            finished_at: Some(at("2026-11-30T21:30:05Z")),
            outcome: Outcome::Failed,
            file: Some("high_value__20261201.csv".into()),
            error: Some("failed to connect to ftp `apac`: connection refused".into()),
            ..Default::default()
        }
    }

    #[test]
    fn failure_names_segment_slot_file_error_next_and_log_command() {
        let e = failed();
        let outlook = Outlook {
            final_failure: true,
            next_attempt: None,
            next_slot: Some(Utc.with_ymd_and_hms(2026, 12, 1, 20, 30, 0).unwrap()),
        };
        let t = build(&Facts {
            kind: Kind::Failure,
            exec: &e,
            rejected: &[],
            outlook: &outlook,
            timezone: chrono_tz::Asia::Kolkata,
            max_attempts: 3,
        });
        assert_eq!(
            t.subject,
            "[segsync] high_value: refresh failed for the Tue 2026-12-01 02:00 IST slot"
        );
        for want in [
            "Segment:  high_value\n",
            "Slot:     Tue 2026-12-01 02:00 IST\n",
            "Attempt:  3 of 3\n",
            "File:     high_value__20261201.csv\n",
            "Error:    failed to connect to ftp `apac`: connection refused\n",
            "Next slot: Wed 2026-12-02 02:00 IST\n",
            "  segsync logs high_value\n",
            "failed. The segment keeps its previous\nmembers and status.\n",
        ] {
            assert!(t.body.contains(want), "missing {want:?} in:\n{}", t.body);
        }
        assert!(!t.body.contains("Rows:"), "{}", t.body);
        assert!(t.body.lines().all(|l| l.len() <= 76), "{}", t.body);
        assert!(!t.body.contains("No more attempts"), "{}", t.body);

        let mut early = failed();
        early.attempt = 2;
        let t = build(&Facts {
            kind: Kind::Failure,
            exec: &early,
            rejected: &[],
            outlook: &outlook,
            timezone: chrono_tz::Asia::Kolkata,
            max_attempts: 3,
        });
        assert!(t.body.contains("Attempt:  2 of 3\n"), "{}", t.body);
        assert!(t
            .body
            .contains("No more attempts for this slot: the next slot has come."));
    }

    #[test]
    fn warning_lists_counts_and_first_rejected_lines() {
        let mut e = failed();
        e.outcome = Outcome::Success;
        e.error = None;
        e.rows_read = Some(1000);
        e.rows_loaded = Some(975);
        e.rows_rejected = Some(25);
        e.added = Some(10);
        let rows: Vec<RejectedRow> = (0..25)
            .map(|i| RejectedRow {
                line: i + 2,
                field: Some("email".into()),
                reason: format!("`bad{i}@` is not an email address"),
                content: Some(format!("bad{i}@,high")),
            })
            .collect();
        let outlook = Outlook {
            final_failure: false,
            next_attempt: None,
            next_slot: None,
        };
        let t = build(&Facts {
            kind: Kind::Warning,
            exec: &e,
            rejected: &rows,
            outlook: &outlook,
            timezone: chrono_tz::UTC,
            max_attempts: 3,
        });
        assert_eq!(
            t.subject,
            "[segsync] high_value: refreshed, 25 rows rejected"
        );
        assert!(t
            .body
            .contains("Rows:     1000 read, 975 loaded, 25 rejected\n"));
        assert!(t
            .body
            .contains("Members:  10 added, 0 removed, 0 changed partition\n"));
        assert!(t
            .body
            .contains("  line 2: email: `bad0@` is not an email address  [bad0@,high]\n"));
        assert!(t.body.contains("  line 21: "), "{}", t.body);
        assert!(
            !t.body.contains("  line 22: "),
            "only the first 20: {}",
            t.body
        );
        assert!(t.body.contains("... and 5 more"), "{}", t.body);
        // The log command given lists every kept rejected row.
        assert!(
            t.body.contains("  segsync logs high_value --rejected\n"),
            "{}",
            t.body
        );
        assert!(t.body.contains("Next: no further slot is scheduled"));
    }

    #[test]
    fn recovery_and_manual_refresh() {
        let mut e = failed();
        e.slot = None;
        e.attempt = 1;
        e.outcome = Outcome::Unchanged;
        e.error = None;
        let outlook = Outlook {
            final_failure: false,
            next_attempt: None,
            next_slot: None,
        };
        let t = build(&Facts {
            kind: Kind::Recovery,
            exec: &e,
            rejected: &[],
            outlook: &outlook,
            timezone: chrono_tz::UTC,
            max_attempts: 3,
        });
        assert_eq!(t.subject, "[segsync] high_value: refresh succeeded again");
        assert!(t
            .body
            .contains("Slot:     none (manual refresh started Mon 2026-11-30 21:30 UTC)"));
        assert!(t.body.contains("Attempt:  1\n"));
        assert!(t.body.contains("unchanged (the file was already loaded)"));
    }

    #[test]
    fn multi_line_errors_and_long_rows_stay_on_one_line() {
        let mut e = failed();
        e.error = Some("first\nsecond".into());
        let rows = [RejectedRow {
            line: 9,
            field: None,
            reason: "too many fields".into(),
            content: Some("x".repeat(300)),
        }];
        let outlook = Outlook {
            final_failure: true,
            next_attempt: Some(at("2026-11-30T22:00:00Z")),
            next_slot: None,
        };
        let t = build(&Facts {
            kind: Kind::Failure,
            exec: &e,
            rejected: &rows,
            outlook: &outlook,
            timezone: chrono_tz::UTC,
            max_attempts: 3,
        });
        assert!(t.body.contains("Error:    first second\n"));
        assert!(t.body.contains("Next attempt: Mon 2026-11-30 22:00 UTC"));
        let row = t.body.lines().find(|l| l.contains("line 9")).unwrap();
        assert!(row.len() < 140 && row.ends_with("...]"), "{row}");
    }
}
