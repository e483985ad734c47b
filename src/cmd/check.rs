//! `segsync check`.

use crate::app::App;
use crate::cli::CheckArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: CheckArgs) -> Result<()> {
    anyhow::bail!("`check` is not built yet")
}
