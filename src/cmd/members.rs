//! `segsync members`: a segment's membership as CSV on stdout.
//!
//! The header is `<identifier type>,<partition column>`, so the output is
//! itself a valid upload file. Rows stream in key order straight from the
//! database; nothing is collected in memory.

use crate::app::App;
use crate::cli::MembersArgs;
use crate::error::UsageError;
use crate::segment::{SegmentType, Status};
use crate::store::key_text;
use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

pub fn run(app: &mut App, args: MembersArgs) -> Result<()> {
    let tz = app.config.timezone;
    let store = app.store()?;
    let Some(segment) = store.segment(&args.name)? else {
        crate::usage!(
            "no segment named `{}`: `segsync list` shows the segments",
            args.name
        );
    };
    match segment.status {
        Status::Active => {}
        Status::Draft => crate::usage!(
            "segment `{}` is a draft and has no members: complete it with `segsync create {}`",
            segment.name,
            segment.name
        ),
        Status::InProgress => crate::usage!(
            "segment `{}` is inprogress: only active segments are served, and it becomes \
             active after its first successful refresh; run `segsync refresh {}` or see \
             `segsync logs {}`",
            segment.name,
            segment.name,
            segment.name
        ),
        Status::Inactive => crate::usage!(
            "segment `{}` is inactive: only active segments are served; reactivate it with \
             `segsync edit {} --activate`",
            segment.name,
            segment.name
        ),
    }
    let as_of = match &args.as_of {
        None => None,
        Some(_) if segment.seg_type != SegmentType::Scd => crate::usage!(
            "segment `{}` is non-scd and keeps no history, so `--as-of` cannot be answered: \
             drop `--as-of` to see the current members",
            segment.name
        ),
        Some(text) => Some(parse_as_of(text, tz)?),
    };
    if let Some(p) = &args.partition {
        if !store.has_partition(segment.id, p)? {
            let known = store.partition_values(segment.id)?;
            crate::usage!(
                "segment `{}` has no partition `{p}`; its partitions are: {}",
                segment.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }

    let id_type = segment.id_type.map(|t| t.as_str()).unwrap_or("user_id");
    let column = segment.partition_column.as_deref().unwrap_or("partition");
    let stdout = std::io::stdout().lock();
    let mut out = csv::Writer::from_writer(std::io::BufWriter::with_capacity(256 * 1024, stdout));
    let result = (|| -> Result<()> {
        out.write_record([id_type, column])?;
        store.for_each_member(segment.id, args.partition.as_deref(), as_of, |key, part| {
            out.write_record([key_text(key)?.as_str(), part])?;
            Ok(())
        })?;
        out.flush()?;
        Ok(())
    })();
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other.context("failed to write the members to stdout"),
    }
}

/// A reader such as `head` closing the pipe early is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|ce| {
                matches!(ce.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    })
}

/// `--as-of`: RFC 3339, or `YYYY-MM-DD` meaning the start of that day in
/// the configured time zone (the first valid instant of the day when
/// midnight falls in a daylight-saving gap).
pub fn parse_as_of(text: &str, tz: Tz) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
        return Err(UsageError(format!(
            "--as-of `{text}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time \
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
    Err(UsageError(format!("--as-of `{text}` has no valid time in {tz}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_dates_start_the_day_in_the_zone() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            parse_as_of("2024-05-01", tz).unwrap().to_rfc3339(),
            "2024-04-30T18:30:00+00:00"
        );
        assert_eq!(
            parse_as_of("2024-05-01T10:00:00+02:00", tz)
                .unwrap()
                .to_rfc3339(),
            "2024-05-01T08:00:00+00:00"
        );
        assert!(parse_as_of("May 1", tz).is_err());
        // Midnight does not exist in Santiago on the DST start day.
        let cl: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(
            parse_as_of("2022-09-11", cl).unwrap().to_rfc3339(),
            "2022-09-11T04:00:00+00:00"
        );
    }
}
