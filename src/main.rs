//! The `segsync` binary: parse, run, report, exit.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = segsync::cli::Cli::parse();
    match segsync::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = segsync::error::exit_code(&err);
            // A failed refresh was already reported in full by the command.
            if !err.is::<segsync::error::RefreshFailed>() || code != 1 {
                eprintln!("error: {}", segsync::output::error_chain(&err));
            } else {
                eprintln!("{err}");
            }
            ExitCode::from(code)
        }
    }
}
