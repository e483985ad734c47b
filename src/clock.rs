//! The clock every command reads time from.
//!
//! `--now` pins the start instant so that creation times, slots and file
//! ages are judged against it; time then advances with the real elapsed time
//! so that `started_at` and `finished_at` of one execution still differ.
//! Nothing else in the crate may call `Utc::now()`.

use crate::error::UsageError;
use anyhow::Result;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::time::Instant;

/// A clock that starts at a given instant and runs at real speed.
#[derive(Debug, Clone)]
pub struct Clock {
    base: DateTime<Utc>,
    started: Instant,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock pinned at `base` when created.
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self {
            base,
            started: Instant::now(),
        }
    }

    /// The instant the command started at (the pinned `--now`).
    pub fn start(&self) -> DateTime<Utc> {
        self.base
    }

    /// The current instant: the start plus the real time elapsed since.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        self.base + elapsed
    }
}

/// A moment given on the command line (`--as-of`, `--since`): RFC 3339, or
/// `YYYY-MM-DD` meaning the start of that day in
/// the configured time zone (the first valid instant of the day when
/// midnight falls in a daylight-saving gap).
pub fn parse_when(text: &str, tz: Tz, option: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
        return Err(UsageError(format!(
            "{option} `{text}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time \
             (e.g. 2024-05-01T09:30:00Z)"
        ))
        .into());
    };
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    // Walk forward minute by minute through a gap (at most a few hours).
    for m in 0..=24 * 60 {
        let local = midnight + chrono::Duration::minutes(m);
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return Ok(t.with_timezone(&Utc));
        }
    }
    Err(UsageError(format!("{option} `{text}` has no valid time in {tz}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_start_the_day_in_the_zone() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            parse_when("2024-05-01", tz, "--as-of")
                .unwrap()
                .to_rfc3339(),
            "2024-04-30T18:30:00+00:00"
        );
        assert_eq!(
            parse_when("2024-05-01T10:00:00+02:00", tz, "--as-of")
                .unwrap()
                .to_rfc3339(),
            "2024-05-01T08:00:00+00:00"
        );
        assert!(parse_when("May 1", tz, "--as-of").is_err());
        // Midnight does not exist in Santiago on the DST start day.
        let cl: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(
            parse_when("2022-09-11", cl, "--as-of")
                .unwrap()
                .to_rfc3339(),
            "2022-09-11T04:00:00+00:00"
        );
    }
}
