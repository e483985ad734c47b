//! `segsync deactivate NAME`: never scheduled again; data kept.

use crate::app::App;
use crate::cli::NameArg;
use crate::segment::Status;
use crate::usage;
use anyhow::Result;

pub fn run(app: &mut App, args: NameArg) -> Result<()> {
    let mut seg = super::show::find(app, &args.name)?;
    match seg.status {
        Status::Draft => usage!(
            "segment `{}` is a draft, which is never scheduled; there is nothing to deactivate",
            seg.name
        ),
        Status::Inactive if !app.json => {
            crate::outln!("segment `{}` is already inactive", seg.name);
            return Ok(());
        }
        Status::Active | Status::InProgress | Status::Inactive => {}
    }
    if seg.status != Status::Inactive {
        seg.status = Status::Inactive;
        seg.updated_at = app.clock.start();
        app.store()?.update_segment(&seg)?;
    }
    if app.json {
        // Like create and edit: the segment object as `show --json` prints it.
        let view = super::show::view(app, &seg)?;
        return crate::output::print_json(&view);
    }
    crate::outln!(
        "deactivated segment `{}`: it is no longer refreshed or served; its data is kept. Bring \
         it back with `segsync edit {} --activate`",
        seg.name,
        seg.name
    );
    Ok(())
}
