//! `segsync run-due`.

use crate::app::App;
use crate::cli::RunDueArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: RunDueArgs) -> Result<()> {
    anyhow::bail!("`run-due` is not built yet")
}
