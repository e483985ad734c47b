//! `segsync refresh NAME [--file PATH]`: a refresh now, outside the
//! schedule, from the segment's FTP folder or from a local file.

use crate::app::App;
use crate::cli::RefreshArgs;
use crate::error::RefreshFailed;
use crate::refresh::{execute, Source, Step};
use crate::segment::Status;
use crate::store::{insert_execution, Execution, Outcome, Trigger};
use crate::usage;
use anyhow::Result;

pub fn run(app: &mut App, args: RefreshArgs) -> Result<()> {
    let seg = super::show::find(app, &args.name)?;
    match seg.status {
        Status::Draft => usage!(
            "segment `{}` is a draft; complete it first with `segsync create {} --type ...`",
            seg.name,
            seg.name
        ),
        Status::Inactive => usage!(
            "segment `{}` is inactive; bring it back with `segsync edit {} --activate`",
            seg.name,
            seg.name
        ),
        Status::Active | Status::InProgress => {}
    }
    let source = match &args.file {
        Some(p) => {
            // A mistyped path is a usage error: refuse it before an execution
            // is logged, so the segment's history shows no failed refresh.
            if let Err(e) = std::fs::File::open(p).and_then(|f| f.metadata()) {
                usage!(
                    "--file: cannot read `{}`: {e}; check the path (relative paths are \
                     relative to the current folder)",
                    p.display()
                )
            }
            if !p.is_file() {
                usage!(
                    "--file: `{}` is not a file; give the CSV file's path",
                    p.display()
                )
            }
            Source::Local(p.clone())
        }
        None if seg.schedule.is_none() => usage!(
            "segment `{}` is a manual upload segment: give the file with `--file PATH`",
            seg.name
        ),
        None => Source::Ftp,
    };

    let exec = Execution {
        segment: seg.name.clone(),
        segment_id: seg.id,
        slot: None,
        trigger: Trigger::Manual,
        attempt: 1,
        started_at: app.clock.now(),
        outcome: Outcome::Running,
        ..Default::default()
    };
    let id = insert_execution(&app.store()?.conn, &exec)?;
    let exec = Execution { id, ..exec };

    let finished = match execute(app, &seg, &source, exec)? {
        Step::Deferred { file, ready_at } => {
            // Nothing was loaded: the row would only say "running" forever.
            app.store()?.delete_execution(id)?;
            let wait = (ready_at - app.clock.now()).num_seconds().max(0);
            return Err(RefreshFailed(format!(
                "nothing loaded: `{file}` was modified less than min_file_age ago and may still \
                 be uploading; try again in {wait}s"
            ))
            .into());
        }
        Step::Finished(e) => *e,
    };
    crate::notify::after_execution(
        app,
        &seg,
        &finished,
        &crate::notify::Outlook {
            final_failure: false,
            next_attempt: None,
            next_slot: None,
        },
    )?;

    if app.json {
        crate::output::print_json(&finished)?;
    } else {
        crate::outln!(
            "{}",
            super::logs::line(&finished, app.config.timezone, app.color, true)
        );
    }
    if finished.outcome == Outcome::Failed {
        return Err(RefreshFailed(format!("refresh of `{}` failed", seg.name)).into());
    }
    Ok(())
}
