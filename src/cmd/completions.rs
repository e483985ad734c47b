//! `segsync completions SHELL`: prints a completion script.

use crate::cli::{Cli, CompletionsArgs, Shell};
use anyhow::Result;
use clap::CommandFactory;

pub fn run(args: &CompletionsArgs) -> Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "segsync",
        &mut std::io::stdout(),
    );
    Ok(())
}
