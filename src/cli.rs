//! Command-line arguments (clap derive). Parsing only: each command's work
//! is in `cmd::<name>`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Keeps customer segments fresh from CSV files dropped on FTP servers.
#[derive(Debug, Parser)]
#[command(name = "segsync", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes. Under a heading of their own, so that a
/// command's `--help` does not interleave them with its own options.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Configuration file [default: $SEGSYNC_CONFIG, else ./segments.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Pin the clock to this instant (RFC 3339, e.g. 2026-12-01T02:05:00Z):
    /// creation times, slots and file ages are judged against it
    #[arg(long, global = true, value_name = "TIME", value_parser = parse_now)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,

    /// Print listings as one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// More log detail on stderr (-v debug, -vv trace); SEGSYNC_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

fn parse_now(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 time ({e}); write e.g. 2026-12-01T02:05:00Z")
        })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a segment, save a draft (--draft), or complete a draft
    Create(CreateArgs),
    /// Change a segment's settings, or re-activate it (--activate)
    Edit(EditArgs),
    /// Stop refreshing a segment; its data is kept
    Deactivate(NameArg),
    /// List segments
    List(ListArgs),
    /// Show a segment: settings, partitions, next slots, last executions
    Show(NameArg),
    /// Run every scheduled refresh that is due (for cron)
    RunDue(RunDueArgs),
    /// Refresh a segment now, from its FTP folder or from a local file
    Refresh(RefreshArgs),
    /// Show the execution log
    Logs(LogsArgs),
    /// Print a segment's members as CSV (or JSON with --json)
    Members(MembersArgs),
    /// Read the configuration and try every FTP and SMTP connection
    Check(CheckArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// Segment settings shared by `create` and `edit`.
#[derive(Debug, Args, Clone, Default)]
pub struct SegmentOpts {
    /// scd (keeps history) or non-scd (latest snapshot only)
    #[arg(long = "type", value_name = "TYPE")]
    pub seg_type: Option<String>,

    /// Free text shown by `list` and `show`
    #[arg(long)]
    pub description: Option<String>,

    /// Name of the [[ftp]] connection the files come from
    #[arg(long, value_name = "NAME")]
    pub ftp: Option<String>,

    /// Folder of the files, relative to the connection's root
    #[arg(long)]
    pub path: Option<String>,

    /// daily, weekly (Mondays) or monthly (the 1st)
    #[arg(long)]
    pub frequency: Option<String>,

    /// First date of the validity window, YYYY-MM-DD [default: the creation date]
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,

    /// Last date of the validity window, YYYY-MM-DD [default: no end]
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,

    /// Email to notify on failure and recovery (repeat for several)
    #[arg(long = "recipient", value_name = "EMAIL")]
    pub recipients: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Segment name: letters, digits, `_` and `-`, no `__`
    pub name: String,

    #[command(flatten)]
    pub opts: SegmentOpts,

    /// Save as a draft: nothing is required and nothing is scheduled
    #[arg(long)]
    pub draft: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    pub name: String,

    #[command(flatten)]
    pub opts: SegmentOpts,

    /// Remove the end date of the validity window
    #[arg(long, conflicts_with = "to")]
    pub no_end: bool,

    /// Replace the recipients by those given with --recipient (none clears them)
    #[arg(long)]
    pub replace_recipients: bool,

    /// Remove the upload schedule: the segment becomes a manual upload segment
    #[arg(long, conflicts_with_all = ["ftp", "path", "frequency", "from", "to"])]
    pub manual: bool,

    /// Bring an inactive segment back (it becomes inprogress)
    #[arg(long)]
    pub activate: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// draft, inprogress, active or inactive
    #[arg(long)]
    pub status: Option<String>,

    /// scd or non-scd
    #[arg(long = "type", value_name = "TYPE")]
    pub seg_type: Option<String>,

    /// upload (every segment), scheduled or manual
    #[arg(long)]
    pub method: Option<String>,

    /// Text to find in the name or description (case-insensitive)
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunDueArgs {
    /// Print the decisions without running or writing anything
    #[arg(long)]
    pub dry_run: bool,

    /// Consider only this segment
    #[arg(long, value_name = "NAME")]
    pub segment: Option<String>,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    pub name: String,

    /// Load this local CSV (a manual upload) instead of fetching from FTP
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this segment's executions
    pub name: Option<String>,

    /// Only failed executions
    #[arg(long)]
    pub failed: bool,

    /// Only executions started at or after this date (YYYY-MM-DD, in the
    /// configured time zone) or instant (RFC 3339)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// At most this many executions [default: 50]
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Also list each execution's rejected rows: line, field, reason and
    /// content (the first 1,000 of each execution are kept)
    #[arg(long)]
    pub rejected: bool,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    pub name: String,

    /// Only members of this partition
    #[arg(long, value_name = "VALUE")]
    pub partition: Option<String>,

    /// Membership at this moment (SCD segments; RFC 3339 or YYYY-MM-DD,
    /// meaning the start of that day in the configured time zone)
    #[arg(long, value_name = "WHEN")]
    pub as_of: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also send a test email to this address
    #[arg(long, value_name = "ADDRESS")]
    pub send_test: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}
