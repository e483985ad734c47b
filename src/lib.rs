//! segsync keeps customer segments fresh from CSV files dropped on FTP
//! servers. The binary in `main.rs` only parses arguments and calls [`run`].
//!
//! Layout: `config` (segments.toml), `segment` (the model and its pure
//! rules), `store` (all SQL), `schedule` (pure slot arithmetic), `validate`
//! (pure CSV rules), `load` (streaming validation, sorting and the SCD
//! merge), `ftp` (the client), `fetch` (choosing a file), `refresh` (one
//! refresh end to end), `rundue` (what is due, claims), `notify` (email),
//! `output` (tables, colours, JSON) and one file per command in `cmd`.

pub mod app;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod error;
pub mod fetch;
pub mod ftp;
pub mod load;
pub mod logging;
pub mod notify;
pub mod output;
pub mod refresh;
pub mod rundue;
pub mod schedule;
pub mod segment;
pub mod settings;
pub mod store;
pub mod validate;

pub use validate::is_valid_email as validate_email;

/// Runs one command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    logging::init(&cli.global);
    cmd::dispatch(cli)
}
