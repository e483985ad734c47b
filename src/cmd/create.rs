//! `segsync create`: a new segment, a draft, or the completion of a draft.

use crate::app::App;
use crate::cli::CreateArgs;
use crate::segment::{check_name, Segment, Status};
use crate::settings::{apply, Options};
use crate::usage;
use anyhow::Result;

pub fn run(app: &mut App, args: CreateArgs) -> Result<()> {
    if let Err(e) = check_name(&args.name) {
        usage!("{e}");
    }
    let opts = Options::parse(&args.opts, &app.config)?;
    let now = app.clock.start();
    let today = now.with_timezone(&app.config.timezone).date_naive();

    let existing = app.store()?.segment(&args.name)?;
    let (mut seg, is_new) = match existing {
        Some(s) if s.status != Status::Draft => usage!(
            "segment `{}` already exists ({}); change it with `segsync edit {}`",
            s.name,
            s.status,
            s.name
        ),
        Some(s) => (s, false),
        None => (Segment::new_draft(&args.name, opts.seg_type, now), true),
    };

    if args.draft {
        apply(&mut seg, &opts, today, false)?;
        seg.status = Status::Draft;
    } else {
        if opts.seg_type.is_none() && seg.draft.seg_type.is_none() {
            usage!(
                "--type is required: `scd` keeps the history of the membership, `non-scd` only \
                 the latest snapshot"
            );
        }
        apply(&mut seg, &opts, today, true)?;
        seg.status = Status::InProgress;
        seg.schedule_anchor = now;
    }
    seg.updated_at = now;

    let store = app.store()?;
    if is_new {
        seg.id = store.insert_segment(&seg)?;
    } else {
        store.update_segment(&seg)?;
    }

    if let Some(w) = super::show::no_slot_left(app, &seg) {
        eprintln!("{w}");
    }
    let what = match (args.draft, is_new) {
        (true, true) => "saved draft",
        (true, false) => "updated draft",
        (false, true) => "created",
        (false, false) => "completed draft",
    };
    if app.json {
        let view = super::show::view(app, &seg)?;
        crate::output::print_json(&view)?;
    } else {
        let detail = match (&seg.schedule, seg.status) {
            (_, Status::Draft) => format!(
                "not scheduled until completed with `segsync create {} --type scd|non-scd ...`",
                seg.name
            ),
            (Some(s), _) => format!(
                "{} {} upload from ftp `{}` folder `/{}`",
                seg.seg_type, s.frequency, s.ftp, s.path
            ),
            (None, _) => format!(
                "{} manual upload; load a file with `segsync refresh {} --file PATH`",
                seg.seg_type, seg.name
            ),
        };
        crate::outln!("{what} segment `{}` ({}): {detail}", seg.name, seg.status);
        // When it will first run: what a user wants to know next.
        if let Some(first) = super::show::view(app, &seg)?.next_slots.first() {
            crate::outln!(
                "  first slot {} (run by `segsync run-due`)",
                first.format("%a %Y-%m-%d %H:%M %:z")
            );
        }
    }
    Ok(())
}
