//! Choosing which remote file a refresh loads (pure, no network).
//!
//! A segment's folder may hold many files; the candidates are the ones
//! named `<segment>__<suffix>.csv` or `<segment>__<suffix>.csv.gz`. The
//! newest candidate by modification time wins, ties going to the greatest
//! name. A winner modified less than `min_file_age` ago may still be
//! uploading, so the slot waits for it rather than falling back to an older
//! file: loading yesterday's data while today's is in flight would be a
//! silent regression.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// A file in a segment's remote folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    /// Size in bytes, as the server reported it.
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// What [`choose`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// No file in the folder is named like a candidate.
    NoCandidate,
    /// The newest candidate is too recent to be complete; try again once
    /// `ready_at` has passed.
    TooYoung {
        file: RemoteFile,
        ready_at: DateTime<Utc>,
    },
    /// Load this file.
    Ready(RemoteFile),
}

/// Whether `file_name` is a candidate upload for `segment`: the exact name
/// (case-sensitive), two underscores, a non-empty suffix, then `.csv` or
/// `.csv.gz`.
pub fn is_candidate(segment: &str, file_name: &str) -> bool {
    let Some(rest) = file_name
        .strip_prefix(segment)
        .and_then(|r| r.strip_prefix("__"))
    else {
        return false;
    };
    let suffix = rest
        .strip_suffix(".csv.gz")
        .or_else(|| rest.strip_suffix(".csv"));
    matches!(suffix, Some(s) if !s.is_empty() && !s.contains('/'))
}

/// Picks the file to load for `segment` among `files`, judged at `now`.
pub fn choose(
    segment: &str,
    files: &[RemoteFile],
    now: DateTime<Utc>,
    min_age: Duration,
) -> Choice {
    let newest = files
        .iter()
        .filter(|f| is_candidate(segment, &f.name))
        .max_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.name.cmp(&b.name))
        });
    let Some(newest) = newest else {
        return Choice::NoCandidate;
    };
    // A duration too large for chrono can only mean "never old enough".
    let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    let ready_at = newest
        .modified
        .checked_add_signed(min_age)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if now < ready_at {
        Choice::TooYoung {
            file: newest.clone(),
            ready_at,
        }
    } else {
        Choice::Ready(newest.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn f(name: &str, modified: &str) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            size: 10,
            modified: t(modified),
        }
    }

    const MIN: Duration = Duration::from_secs(120);

    #[test]
    fn candidates_need_exact_prefix_suffix_and_extension() {
        assert!(is_candidate("high", "high__2020-10-01.csv"));
        assert!(is_candidate("high", "high__x.csv.gz"));
        assert!(is_candidate("high", "high__daily export.csv"));
        assert!(!is_candidate("high", "high__.csv"));
        assert!(!is_candidate("high", "high__.csv.gz"));
        assert!(!is_candidate("high", "High__1.csv"));
        assert!(!is_candidate("high", "high_1.csv"));
        assert!(!is_candidate("high", "highest__1.csv"));
        assert!(!is_candidate("high", "xhigh__1.csv"));
        assert!(!is_candidate("high", "high__1.csv.tmp"));
        assert!(!is_candidate("high", "high__1.txt"));
        assert!(!is_candidate("high", "high__1.CSV"));
        assert!(!is_candidate("high", "high__1.gz"));
        assert!(!is_candidate("high", "high"));
    }

    #[test]
    fn newest_wins_and_ties_go_to_the_greatest_name() {
        let files = [
            f("high__a.csv", "2020-10-01T00:00:00Z"),
            f("high__c.csv", "2020-10-02T00:00:00Z"),
            f("high__b.csv", "2020-10-02T00:00:00Z"),
            f("other__z.csv", "2020-10-03T00:00:00Z"),
            f("high__z.txt", "2020-10-03T00:00:00Z"),
        ];
        let now = t("2020-10-05T00:00:00Z");
        assert_eq!(
            choose("high", &files, now, MIN),
            Choice::Ready(files[1].clone())
        );
    }

    #[test]
    fn a_young_newest_file_waits_instead_of_falling_back() {
        let files = [
            f("high__old.csv", "2020-10-01T00:00:00Z"),
            f("high__new.csv", "2020-10-02T02:00:00Z"),
        ];
        let now = t("2020-10-02T02:01:00Z");
        assert_eq!(
            choose("high", &files, now, MIN),
            Choice::TooYoung {
                file: files[1].clone(),
                ready_at: t("2020-10-02T02:02:00Z"),
            }
        );
        let later = t("2020-10-02T02:02:00Z");
        assert_eq!(
            choose("high", &files, later, MIN),
            Choice::Ready(files[1].clone())
        );
    }

    #[test]
    fn a_file_dated_in_the_future_waits() {
        let files = [f("high__1.csv", "2020-10-03T00:00:00Z")];
        let now = t("2020-10-02T00:00:00Z");
        assert!(matches!(
            choose("high", &files, now, MIN),
            Choice::TooYoung { .. }
        ));
    }

    #[test]
    fn no_candidate() {
        let files = [f("other__1.csv", "2020-10-01T00:00:00Z")];
        let now = t("2020-10-05T00:00:00Z");
        assert_eq!(choose("high", &files, now, MIN), Choice::NoCandidate);
        assert_eq!(choose("high", &[], now, MIN), Choice::NoCandidate);
    }

    #[test]
    fn zero_min_age_is_ready_at_once() {
        let files = [f("high__1.csv", "2020-10-01T00:00:00Z")];
        let now = t("2020-10-01T00:00:00Z");
        assert!(matches!(
            choose("high", &files, now, Duration::ZERO),
            Choice::Ready(_)
        ));
    }
}
