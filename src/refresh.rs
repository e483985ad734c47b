//! One refresh end to end: fetch a file, validate and load it, log it.
//!
//! The contract the rest of the crate relies on (`rundue`, `cmd::refresh`):
//! [`execute`] runs an execution row that the caller has already inserted
//! (as outcome `running`; for `run-due` that row is the slot's claim).
//! Download and validation happen with no transaction open; the data and
//! the finished execution row are written in one transaction. A refresh
//! that fails for any reason about the file or the server comes back as
//! `Step::Finished` with outcome `failed` and the segment untouched; `Err`
//! is kept for failures of segsync itself (the database is unreachable).

use crate::app::App;
use crate::segment::Segment;
use crate::store::Execution;
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// Where the file comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The segment's FTP folder: the newest finished candidate file.
    Ftp,
    /// A local CSV (`refresh --file`), a manual upload.
    Local(PathBuf),
}

/// How a run of [`execute`] ended.
#[derive(Debug)]
pub enum Step {
    /// The newest file is younger than `min_file_age`: nothing was
    /// written; the execution row is left `running` for the caller to
    /// release or remove.
    Deferred {
        file: String,
        /// When the file will be old enough.
        ready_at: DateTime<Utc>,
    },
    /// The execution row was finished: success, unchanged or failed.
    Finished(Execution),
}

/// Runs the `running` execution `exec` of `segment` from `source`.
pub fn execute(
    _app: &mut App,
    _segment: &Segment,
    _source: &Source,
    _exec: Execution,
) -> Result<Step> {
    anyhow::bail!("refresh is not built yet")
}
