//! Log output: `tracing` to stderr, level from `-v`/`-q` or `SEGSYNC_LOG`.
//!
//! suppaftp and lettre log the commands they send, credentials included, at
//! debug and trace level. Their targets are therefore capped at `info`
//! whatever the requested level, and `SEGSYNC_LOG` cannot lift the cap.

use crate::cli::Global;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Targets that may log secrets below `info`.
const CAPPED: &[&str] = &["suppaftp", "lettre", "rustls"];

/// Installs the stderr logger once; later calls are ignored.
pub fn init(global: &Global) {
    let default = if global.quiet {
        "error"
    } else {
        match global.verbose {
            0 => "warn,segsync=info",
            1 => "debug",
            _ => "trace",
        }
    };
    let requested = std::env::var("SEGSYNC_LOG").unwrap_or_else(|_| default.to_string());
    let filter = filter(&requested);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::stderr_color())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Builds the filter for `requested`, then re-applies the caps, which come
/// last so that they win over any directive the user gave for those
/// targets.
pub fn filter(requested: &str) -> EnvFilter {
    let mut f = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .parse_lossy(requested);
    for target in CAPPED {
        if let Ok(d) = format!("{target}=info").parse() {
            f = f.add_directive(d);
        }
    }
    f
}
