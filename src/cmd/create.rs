//! `segsync create`.

use crate::app::App;
use crate::cli::CreateArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: CreateArgs) -> Result<()> {
    anyhow::bail!("`create` is not built yet")
}
