//! `segsync show NAME`: settings, partitions, next slots, last executions.

use crate::app::App;
use crate::cli::NameArg;
use crate::output::{paint, Color};
use crate::segment::{Segment, Status};
use crate::store::{Execution, ExecutionFilter, PartitionCount};
use crate::usage;
use anyhow::Result;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

/// How many upcoming slots `show` lists.
const NEXT_SLOTS: usize = 5;

/// The segment object of the JSON output (`show`, `list`, `create`).
#[derive(Debug, Serialize)]
pub struct SegmentView {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub seg_type: Option<&'static str>,
    pub method: &'static str,
    pub upload_type: &'static str,
    pub status: &'static str,
    pub ftp: Option<String>,
    pub path: Option<String>,
    pub frequency: Option<&'static str>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub recipients: Vec<String>,
    pub id_type: Option<&'static str>,
    pub partition_column: Option<String>,
    pub partitions: Vec<PartitionCount>,
    pub members: i64,
    pub next_slots: Vec<DateTime<FixedOffset>>,
    pub created_at: DateTime<FixedOffset>,
    pub last_execution: Option<Execution>,
}

/// Builds the JSON view of `seg`.
pub fn view(app: &mut App, seg: &Segment) -> Result<SegmentView> {
    let tz = app.config.timezone;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).fixed_offset();
    let next_slots = match (&seg.schedule, seg.status) {
        (Some(s), Status::InProgress | Status::Active) => crate::schedule::upcoming(
            &app.config,
            s,
            seg.schedule_anchor,
            app.clock.start(),
            NEXT_SLOTS,
        )
        .into_iter()
        .map(local)
        .collect(),
        _ => Vec::new(),
    };
    let store = app.store()?;
    let partitions = store.partitions(seg.id)?;
    let last_execution = store.last_execution(seg.id)?;
    let settings = seg.settings();
    Ok(SegmentView {
        name: seg.name.clone(),
        description: seg.description.clone(),
        seg_type: if seg.status == Status::Draft {
            seg.draft.seg_type.map(|t| t.as_str())
        } else {
            Some(seg.seg_type.as_str())
        },
        method: "upload",
        upload_type: seg.upload_type(),
        status: seg.status.as_str(),
        ftp: settings.ftp,
        path: settings.path,
        frequency: settings.frequency.map(|f| f.as_str()),
        from: settings.from.map(|d| d.to_string()),
        to: settings.to.map(|d| d.to_string()),
        recipients: seg.recipients.clone(),
        id_type: seg.id_type.map(|t| t.as_str()),
        partition_column: seg.partition_column.clone(),
        members: partitions.iter().map(|p| p.members).sum(),
        partitions,
        next_slots,
        created_at: local(seg.created_at),
        last_execution,
    })
}

/// A warning for a segment that run-due will never refresh: it is
/// scheduled and inprogress or active, but no slot is left in its validity
/// window (typically a `--to` in the past).
pub fn no_slot_left(app: &App, seg: &Segment) -> Option<String> {
    let s = seg.schedule.as_ref()?;
    if !matches!(seg.status, Status::InProgress | Status::Active) {
        return None;
    }
    let next = crate::schedule::upcoming(&app.config, s, seg.schedule_anchor, app.clock.start(), 1);
    if !next.is_empty() {
        return None;
    }
    let to =
        s.to.map(|d| d.to_string())
            .unwrap_or_else(|| "no end".into());
    Some(format!(
        "warning: no slot is left in `{}`'s validity window ({} to {to}), so run-due will never \
         refresh it; extend it with `segsync edit {} --to YYYY-MM-DD` or `--no-end`",
        seg.name, s.from, seg.name
    ))
}

/// The segment named `name`, or a usage error saying how to find names.
pub fn find(app: &mut App, name: &str) -> Result<Segment> {
    match app.store()?.segment(name)? {
        Some(s) => Ok(s),
        None => usage!("no segment named `{name}`; `segsync list` shows the segments"),
    }
}

pub fn run(app: &mut App, args: NameArg) -> Result<()> {
    let seg = find(app, &args.name)?;
    let v = view(app, &seg)?;
    if app.json {
        return crate::output::print_json(&v);
    }
    let color = app.color;
    let bold = |s: &str| paint(s, Color::Bold, color);
    crate::outln!("{}  {}", bold(&v.name), status_badge(seg.status, color));
    if !v.description.is_empty() {
        crate::outln!("  {}", v.description);
    }
    crate::outln!();
    crate::outln!(
        "  type          {}",
        v.seg_type.unwrap_or("(not chosen yet)")
    );
    crate::outln!("  upload        {}", v.upload_type);
    if let Some(ftp) = &v.ftp {
        crate::outln!("  ftp           {ftp}");
        crate::outln!("  folder        /{}", v.path.as_deref().unwrap_or(""));
    }
    if let Some(f) = v.frequency {
        crate::outln!(
            "  frequency     {f} at {} {}",
            app.config.sync_time.format("%H:%M"),
            app.config.timezone
        );
    }
    if v.from.is_some() || v.to.is_some() {
        crate::outln!(
            "  valid         {} to {}",
            v.from.as_deref().unwrap_or("?"),
            v.to.as_deref().unwrap_or("no end")
        );
    }
    let recipients = if v.recipients.is_empty() {
        "(none: failures are not emailed)".to_string()
    } else {
        v.recipients.join(", ")
    };
    crate::outln!("  recipients    {recipients}");
    if let (Some(t), Some(c)) = (v.id_type, &v.partition_column) {
        crate::outln!("  columns       {t}, {c}");
    }
    crate::outln!(
        "  created       {}",
        v.created_at.format("%Y-%m-%d %H:%M %:z")
    );

    crate::outln!();
    crate::outln!("{} ({} members)", bold("Partitions"), v.members);
    if v.partitions.is_empty() {
        crate::outln!("  (no members yet)");
    }
    for p in &v.partitions {
        crate::outln!("  {:<24} {:>12}", p.value, p.members);
    }

    if seg.schedule.is_some() {
        crate::outln!();
        crate::outln!("{}", bold("Next slots"));
        match seg.status {
            Status::Draft => crate::outln!("  (a draft is not scheduled)"),
            Status::Inactive => crate::outln!(
                "  (inactive: not scheduled; `segsync edit {} --activate`)",
                seg.name
            ),
            _ if v.next_slots.is_empty() => crate::outln!("  (the schedule has ended)"),
            _ => {
                for s in &v.next_slots {
                    crate::outln!("  {}", s.format("%a %Y-%m-%d %H:%M %:z"));
                }
            }
        }
    }

    let recent = app.store()?.executions(&ExecutionFilter {
        segment_id: Some(seg.id),
        limit: Some(5),
        ..Default::default()
    })?;
    crate::outln!();
    crate::outln!("{}", bold("Last executions"));
    if recent.is_empty() {
        crate::outln!("  (none yet)");
    }
    for e in &recent {
        crate::outln!(
            "  {}",
            super::logs::line(e, app.config.timezone, color, false)
        );
    }
    Ok(())
}

/// The status word, coloured.
pub fn status_badge(s: Status, color: bool) -> String {
    let c = match s {
        Status::Active => Color::Green,
        Status::InProgress => Color::Yellow,
        Status::Draft | Status::Inactive => Color::Dim,
    };
    paint(s.as_str(), c, color)
}
