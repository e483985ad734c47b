//! `segsync list`: segments, filtered by status, type, method and text.

use crate::app::App;
use crate::cli::ListArgs;
use crate::segment::{SegmentType, Status};
use crate::store::SegmentFilter;
use crate::usage;
use anyhow::Result;

pub fn run(app: &mut App, args: ListArgs) -> Result<()> {
    let status = args
        .status
        .as_deref()
        .map(|s| s.parse::<Status>())
        .transpose()
        .or_else(|e| usage!("--status: {e}"))?;
    let seg_type = args
        .seg_type
        .as_deref()
        .map(|s| s.parse::<SegmentType>())
        .transpose()
        .or_else(|e| usage!("--type: {e}"))?;
    let upload_type = match args.method.as_deref() {
        None | Some("upload") => None,
        Some(m @ ("scheduled" | "manual")) => Some(m.to_string()),
        Some(m) => usage!("--method: unknown method `{m}`: use upload, scheduled or manual"),
    };
    let segments = app.store()?.list_segments(&SegmentFilter {
        status,
        seg_type,
        upload_type,
        search: args.search.clone(),
    })?;
    let mut views = Vec::with_capacity(segments.len());
    for s in &segments {
        views.push(super::show::view(app, s)?);
    }
    if app.json {
        return crate::output::print_json(&views);
    }
    if views.is_empty() {
        crate::outln!("no segments match; create one with `segsync create NAME --type scd ...`");
        return Ok(());
    }
    let mut t = crate::output::table(&[
        "name",
        "status",
        "type",
        "upload",
        "members",
        "next slot",
        "last run",
        "description",
    ]);
    let tz = app.config.timezone;
    for (s, v) in segments.iter().zip(&views) {
        let upload = match &v.frequency {
            Some(f) => format!("{} {f}", v.upload_type),
            None => v.upload_type.to_string(),
        };
        let last = v
            .last_execution
            .as_ref()
            .map(|e| {
                format!(
                    "{} {}",
                    e.started_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                    e.outcome.as_str()
                )
            })
            .unwrap_or_default();
        t.add_row(vec![
            v.name.clone(),
            super::show::status_badge(s.status, app.color),
            v.seg_type.unwrap_or("-").to_string(),
            upload,
            v.members.to_string(),
            v.next_slots
                .first()
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
            last,
            v.description.clone(),
        ]);
    }
    crate::outln!("{}", crate::output::render(&t));
    Ok(())
}
