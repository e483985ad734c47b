//! One file per command; each parses nothing (clap did) and holds only the
//! glue between the arguments, the domain modules and the output.

mod check;
mod completions;
mod create;
mod deactivate;
mod edit;
mod list;
mod logs;
mod members;
mod refresh;
mod run_due;
mod show;

use crate::app::App;
use crate::cli::{Cli, Command};
use anyhow::Result;

/// Runs the command of `cli`.
pub fn dispatch(cli: Cli) -> Result<()> {
    if let Command::Completions(args) = &cli.command {
        return completions::run(args);
    }
    let mut app = App::new(&cli.global)?;
    match cli.command {
        Command::Create(a) => create::run(&mut app, a),
        Command::Edit(a) => edit::run(&mut app, a),
        Command::Deactivate(a) => deactivate::run(&mut app, a),
        Command::List(a) => list::run(&mut app, a),
        Command::Show(a) => show::run(&mut app, a),
        Command::RunDue(a) => run_due::run(&mut app, a),
        Command::Refresh(a) => refresh::run(&mut app, a),
        Command::Logs(a) => logs::run(&mut app, a),
        Command::Members(a) => members::run(&mut app, a),
        Command::Check(a) => check::run(&mut app, a),
        Command::Completions(_) => unreachable!("handled above"),
    }
}
