//! `segsync show`.

use crate::app::App;
use crate::cli::NameArg;
use anyhow::Result;

pub fn run(_app: &mut App, _args: NameArg) -> Result<()> {
    anyhow::bail!("`show` is not built yet")
}
