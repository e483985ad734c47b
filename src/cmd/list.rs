//! `segsync list`.

use crate::app::App;
use crate::cli::ListArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: ListArgs) -> Result<()> {
    anyhow::bail!("`list` is not built yet")
}
