//! `segsync deactivate`.

use crate::app::App;
use crate::cli::NameArg;
use anyhow::Result;

pub fn run(_app: &mut App, _args: NameArg) -> Result<()> {
    anyhow::bail!("`deactivate` is not built yet")
}
