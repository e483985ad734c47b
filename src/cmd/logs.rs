//! `segsync logs`.

use crate::app::App;
use crate::cli::LogsArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: LogsArgs) -> Result<()> {
    anyhow::bail!("`logs` is not built yet")
}
