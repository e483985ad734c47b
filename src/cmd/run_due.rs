//! `segsync run-due`: decide and run every due scheduled refresh, then
//! print one line per segment (and per older slot logged as missed).

use crate::app::App;
use crate::cli::RunDueArgs;
use crate::output::{paint, Color};
use crate::rundue::{self, Action, Options, Report};
use anyhow::Result;

pub fn run(app: &mut App, args: RunDueArgs) -> Result<()> {
    let opts = Options {
        dry_run: args.dry_run,
        segment: args.segment,
    };
    let reports = rundue::run_due(app, &opts)?;
    if app.json {
        crate::output::print_json(&reports)?;
    } else {
        print_table(app, &reports, opts.dry_run);
    }
    match rundue::failure(&reports) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn print_table(app: &App, reports: &[Report], dry_run: bool) {
    if reports.is_empty() {
        crate::outln!("no scheduled segment is inprogress or active");
        return;
    }
    let mut t = crate::output::table(&["segment", "slot", "action", "reason", "outcome"]);
    for r in reports {
        let slot = r
            .slot_at
            .map(|s| crate::schedule::display_in(app.config.timezone, s))
            .unwrap_or_else(|| "-".into());
        let color = match r.action {
            Action::Run | Action::Retry => Color::Bold,
            Action::Missed | Action::Deferred | Action::Wait => Color::Yellow,
            Action::ClaimedElsewhere | Action::None => Color::Dim,
        };
        let outcome = match &r.execution {
            Some(e) => {
                let c = if e.outcome.is_success() {
                    Color::Green
                } else if e.outcome == crate::store::Outcome::Failed {
                    Color::Red
                } else {
                    Color::Yellow
                };
                paint(e.outcome.as_str(), c, app.color)
            }
            None => "-".into(),
        };
        t.add_row(vec![
            r.segment.clone(),
            slot,
            paint(r.action.as_str(), color, app.color),
            r.reason.clone(),
            outcome,
        ]);
    }
    crate::outln!("{}", crate::output::render(&t));
    if dry_run {
        crate::outln!("(dry run: nothing was claimed, run or written)");
    }
}
