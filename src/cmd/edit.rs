//! `segsync edit`.

use crate::app::App;
use crate::cli::EditArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: EditArgs) -> Result<()> {
    anyhow::bail!("`edit` is not built yet")
}
