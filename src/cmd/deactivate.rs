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
        Status::Inactive => {
            crate::outln!("segment `{}` is already inactive", seg.name);
            return Ok(());
        }
        Status::Active | Status::InProgress => {}
    }
    seg.status = Status::Inactive;
    seg.updated_at = app.clock.start();
    app.store()?.update_segment(&seg)?;
    crate::outln!(
        "deactivated segment `{}`: it is no longer refreshed or served; its data is kept. Bring \
         it back with `segsync edit {} --activate`",
        seg.name,
        seg.name
    );
    Ok(())
}
