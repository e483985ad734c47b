//! `segsync edit NAME`: change settings, or re-activate.

use crate::app::App;
use crate::cli::EditArgs;
use crate::segment::Status;
use crate::settings::{apply, Options};
use crate::usage;
use anyhow::Result;

pub fn run(app: &mut App, args: EditArgs) -> Result<()> {
    let mut seg = super::show::find(app, &args.name)?;
    if seg.status == Status::Draft {
        usage!(
            "segment `{}` is a draft: change or complete it with `segsync create {} [options]` \
             (add --draft to keep it a draft)",
            seg.name,
            seg.name
        );
    }
    let mut opts = Options::parse(&args.opts, &app.config)?;
    opts.replace_recipients = args.replace_recipients;
    opts.manual = args.manual;
    if args.no_end {
        opts.to = Some(None);
    }
    if opts.is_empty() && !args.activate {
        usage!("nothing to change: give at least one option (see `segsync edit --help`)");
    }

    if let Some(t) = opts.seg_type {
        if t != seg.seg_type && app.store()?.has_data(seg.id)? {
            usage!(
                "segment `{}` already holds {} data: its type cannot change. Create a new \
                 segment of type {t} instead",
                seg.name,
                seg.seg_type
            );
        }
    }

    let now = app.clock.start();
    let today = now.with_timezone(&app.config.timezone).date_naive();
    let before = seg.schedule.clone();
    apply(&mut seg, &opts, today, true)?;
    let upload_changed = seg.schedule != before;

    let mut notes = Vec::new();
    if args.activate {
        if seg.status == Status::Inactive {
            seg.status = Status::InProgress;
            seg.schedule_anchor = now;
            notes.push("re-activated: it is inprogress until its next successful refresh");
        } else {
            notes.push("already active or in progress: --activate changed nothing");
        }
    }
    if upload_changed {
        seg.schedule_anchor = now;
        if seg.status == Status::Active {
            seg.status = Status::InProgress;
        }
        if seg.status == Status::Inactive {
            notes.push("upload settings saved; the segment stays inactive until --activate");
        } else {
            notes.push("upload settings changed: inprogress until the next successful refresh");
        }
    }
    if args.replace_recipients {
        // A bare --replace-recipients clears the list: say what that means.
        if seg.recipients.is_empty() {
            notes.push("recipients: none now, so failures are not emailed");
        } else {
            notes.push("recipients replaced");
        }
    }
    seg.updated_at = now;
    app.store()?.update_segment(&seg)?;

    if let Some(w) = super::show::no_slot_left(app, &seg) {
        eprintln!("{w}");
    }
    if app.json {
        let v = super::show::view(app, &seg)?;
        return crate::output::print_json(&v);
    }
    crate::outln!("updated segment `{}` ({})", seg.name, seg.status);
    for n in notes {
        crate::outln!("  {n}");
    }
    Ok(())
}
