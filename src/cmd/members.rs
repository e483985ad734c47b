//! `segsync members`: a segment's membership as CSV on stdout.
//!
//! The header is `<identifier type>,<partition column>`, so the output is
//! itself a valid upload file. With `--json`, an array of objects keyed by
//! the same two names. Rows stream in key order straight from the
//! database; nothing is collected in memory.

use crate::app::App;
use crate::cli::MembersArgs;
use crate::clock::parse_when;
use crate::segment::{SegmentType, Status};
use crate::store::key_text;
use anyhow::{Context, Result};
use rusqlite::types::ValueRef;
use std::io::Write;

pub fn run(app: &mut App, args: MembersArgs) -> Result<()> {
    let tz = app.config.timezone;
    let json = app.json;
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
        Some(text) => Some(parse_when(text, tz, "--as-of")?),
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
    let stdout = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
    let partition = args.partition.as_deref();
    let result = if json {
        write_json(stdout, store, segment.id, partition, as_of, id_type, column)
    } else {
        let mut out = csv::Writer::from_writer(stdout);
        (|| -> Result<()> {
            out.write_record([id_type, column])?;
            store.for_each_member(segment.id, partition, as_of, |key, part| {
                out.write_record([key_text(key)?.as_str(), part])?;
                Ok(())
            })?;
            out.flush()?;
            Ok(())
        })()
    };
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other.context("failed to write the members to stdout"),
    }
}

/// `[{"user_id": 1, "tier": "high"}, ...]`, one object a line: numeric
/// identifiers as numbers, text ones as strings.
fn write_json(
    mut out: impl Write,
    store: &crate::store::Store,
    segment_id: i64,
    partition: Option<&str>,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    id_type: &str,
    column: &str,
) -> Result<()> {
    let (id_key, part_key) = (
        serde_json::to_string(id_type)?,
        serde_json::to_string(column)?,
    );
    out.write_all(b"[")?;
    let mut first = true;
    store.for_each_member(segment_id, partition, as_of, |key, part| {
        out.write_all(if first { b"\n  {" } else { b",\n  {" })?;
        first = false;
        write!(out, "{id_key}: ")?;
        match key {
            ValueRef::Integer(i) => write!(out, "{i}")?,
            other => serde_json::to_writer(&mut out, &key_text(other)?)?,
        }
        write!(out, ", {part_key}: ")?;
        serde_json::to_writer(&mut out, part)?;
        out.write_all(b"}")?;
        Ok(())
    })?;
    out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
    out.flush()?;
    Ok(())
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
