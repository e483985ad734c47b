//! `segsync members`.

use crate::app::App;
use crate::cli::MembersArgs;
use anyhow::Result;

pub fn run(_app: &mut App, _args: MembersArgs) -> Result<()> {
    anyhow::bail!("`members` is not built yet")
}
