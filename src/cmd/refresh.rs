//! `segsync refresh`.

use crate::app::App;
use crate::cli::RefreshArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: RefreshArgs) -> Result<()> {
    anyhow::bail!("`refresh` is not built yet")
}
