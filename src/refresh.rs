//! One refresh end to end: fetch a file, validate and load it, log it.
//!
//! The contract the rest of the crate relies on (`rundue`, `cmd::refresh`):
//! [`execute`] runs an execution row that the caller has already inserted
//! (as outcome `running`; for `run-due` that row is the slot's claim).
//! Download and validation happen with no transaction open; the data, the
//! segment's new status and the finished execution row are written in one
//! `BEGIN IMMEDIATE` transaction. A refresh that fails for any reason about
//! the file or the server comes back as `Step::Finished` with outcome
//! `failed` and the segment untouched; `Err` is kept for failures of
//! segsync itself (the database is unreachable).

use crate::app::App;
use crate::fetch::{choose, Choice, RemoteFile};
use crate::ftp::{FtpSession, Timeouts};
use crate::load::{FileRefused, LoadOptions, Prepared};
use crate::segment::{remote_dir, Segment, Status};
use crate::store::{finish_execution, insert_rejected_rows, Execution, Outcome, RejectedRow};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::TransactionBehavior;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most a `.csv.gz` file may decompress to; a larger one is refused
/// as a likely mistake (or a decompression bomb).
const MAX_DECOMPRESSED_BYTES: u64 = 64 << 30;

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
    Finished(Box<Execution>),
}

/// A file on local disk, ready to validate.
struct Local {
    path: PathBuf,
    /// Keeps a downloaded file's folder alive until the load is over.
    _temp: Option<tempfile::TempDir>,
}

/// Why a refresh failed, with what is known about the file so far.
struct Failure {
    message: String,
    /// Rows read and rejected, and the rejected rows kept, when the file
    /// was refused after reading it.
    counts: Option<(u64, u64, Vec<RejectedRow>)>,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        // A refusal raised inside the load transaction keeps its wording.
        if let Some(r) = e.downcast_ref::<FileRefused>() {
            return Failure::from(FileRefused {
                message: r.message.clone(),
                rows_read: r.rows_read,
                rows_rejected: r.rows_rejected,
                rejected: r.rejected.clone(),
            });
        }
        Failure {
            message: crate::output::error_chain(&e),
            counts: None,
        }
    }
}

impl From<FileRefused> for Failure {
    fn from(r: FileRefused) -> Self {
        let counts = (r.rows_read > 0).then_some((r.rows_read, r.rows_rejected, r.rejected));
        Failure {
            message: r.message,
            counts,
        }
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::from(anyhow::Error::from(e))
    }
}

/// Runs the `running` execution `exec` of `segment` from `source`.
pub fn execute(
    app: &mut App,
    segment: &Segment,
    source: &Source,
    mut exec: Execution,
) -> Result<Step> {
    match run(app, segment, source, &mut exec) {
        Ok(Some(step)) => Ok(step),
        Ok(None) => Ok(Step::Finished(Box::new(exec))),
        Err(f) => {
            exec.outcome = Outcome::Failed;
            exec.error = Some(f.message);
            let mut rejected = Vec::new();
            if let Some((read, bad, rows)) = f.counts {
                exec.rows_read = Some(read as i64);
                exec.rows_rejected = Some(bad as i64);
                rejected = rows;
            }
            exec.finished_at = Some(app.clock.now());
            tracing::debug!(
                "refresh of `{}` failed: {}",
                segment.name,
                exec.error.as_deref().unwrap_or_default()
            );
            let store = app.store()?;
            let tx = store
                .conn()
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            finish_execution(&tx, &exec)?;
            insert_rejected_rows(&tx, exec.id, &rejected)?;
            tx.commit()
                .context("failed to record the failed execution")?;
            Ok(Step::Finished(Box::new(exec)))
        }
    }
}

/// The refresh proper. `Ok(None)`: `exec` was finished and written.
fn run(
    app: &mut App,
    segment: &Segment,
    source: &Source,
    exec: &mut Execution,
) -> std::result::Result<Option<Step>, Failure> {
    let temp_root = temp_root(app)?;
    let local = match source {
        Source::Local(path) => {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            if !meta.is_file() {
                return Err(anyhow::anyhow!("`{}` is not a file", path.display()).into());
            }
            exec.file = Some(path.display().to_string());
            exec.file_size = Some(meta.len() as i64);
            exec.file_modified = meta.modified().ok().map(DateTime::<Utc>::from);
            exec.sha256 = Some(sha256_file(path)?);
            Local {
                path: path.clone(),
                _temp: None,
            }
        }
        Source::Ftp => match fetch(app, segment, exec, &temp_root)? {
            Fetched::File(l) => l,
            Fetched::Deferred(step) => return Ok(Some(step)),
            Fetched::Unchanged => {
                exec.outcome = Outcome::Unchanged;
                exec.finished_at = Some(app.clock.now());
                let store = app.store()?;
                finish_execution(&store.conn, exec)?;
                tracing::debug!(
                    "`{}`: `{}` was already loaded; nothing to do",
                    segment.name,
                    exec.file.as_deref().unwrap_or_default()
                );
                return Ok(None);
            }
        },
    };

    let file_name = exec.file.clone().unwrap_or_default();
    let opts = LoadOptions {
        max_rejected_ratio: app.config.max_rejected_ratio,
        temp_dir: temp_root.clone(),
        max_decompressed_bytes: MAX_DECOMPRESSED_BYTES,
    };
    let prepared: Prepared = crate::load::prepare(&local.path, &file_name, &opts)?;
    crate::load::check_segment(segment, &prepared)?;
    exec.rows_read = Some(prepared.rows_read as i64);
    exec.rows_rejected = Some(prepared.rows_rejected as i64);
    if !prepared.notes.is_empty() {
        exec.notes = Some(prepared.notes.join("; "));
    }
    let rejected = prepared.rejected.clone();
    let stamp = exec.slot.unwrap_or(exec.started_at);

    let clock = app.clock.clone();
    let store = app.store()?;
    let tx = store
        .conn()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied = crate::load::apply(&tx, segment, prepared, stamp)?;
    exec.rows_loaded = Some(applied.rows_loaded as i64);
    exec.added = Some(applied.added as i64);
    exec.removed = Some(applied.removed as i64);
    exec.changed = Some(applied.changed as i64);
    exec.outcome = Outcome::Success;
    exec.finished_at = Some(clock.now());
    if segment.status == Status::InProgress {
        crate::store::set_status(&tx, segment.id, Status::Active)?;
    }
    crate::store::ensure_claim_held(&tx, exec.id)?;
    finish_execution(&tx, exec)?;
    insert_rejected_rows(&tx, exec.id, &rejected)?;
    tx.commit()?;
    tracing::debug!(
        "`{}`: loaded `{}`: {} members (+{} -{} ~{}), {} rows rejected",
        segment.name,
        file_name,
        applied.rows_loaded,
        applied.added,
        applied.removed,
        applied.changed,
        exec.rows_rejected.unwrap_or(0)
    );
    Ok(None)
}

enum Fetched {
    File(Local),
    Deferred(Step),
    Unchanged,
}

/// Lists the segment's folder, picks the file and downloads it.
fn fetch(
    app: &mut App,
    segment: &Segment,
    exec: &mut Execution,
    temp_root: &Path,
) -> std::result::Result<Fetched, Failure> {
    let Some(schedule) = &segment.schedule else {
        return Err(anyhow::anyhow!(
            "segment `{}` is a manual upload segment with no FTP folder; load a file with \
             `segsync refresh {} --file PATH`",
            segment.name,
            segment.name
        )
        .into());
    };
    let conn = app.config.ftp_conn(&schedule.ftp).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "segment `{}` uses ftp connection `{}`, which {} no longer defines; add it back or \
             `segsync edit {} --ftp NAME`",
            segment.name,
            schedule.ftp,
            app.config.path.display(),
            segment.name
        )
    })?;
    let dir = remote_dir(&conn.root, &schedule.path);
    let mut session = FtpSession::connect(&conn, &Timeouts::default())?;
    let files = session.list(&dir)?;
    let file: RemoteFile = match choose(
        &segment.name,
        &files,
        app.clock.start(),
        app.config.min_file_age,
    ) {
        Choice::NoCandidate => {
            session.quit();
            return Err(anyhow::anyhow!(
                "no file named `{}__<suffix>.csv` (or .csv.gz) in `{dir}` on ftp `{}` ({}); \
                 check that the export ran and wrote to this folder",
                segment.name,
                conn.name,
                conn.url()
            )
            .into());
        }
        Choice::TooYoung { file, ready_at } => {
            session.quit();
            return Ok(Fetched::Deferred(Step::Deferred {
                file: file.name,
                ready_at,
            }));
        }
        Choice::Ready(f) => f,
    };
    exec.file = Some(file.name.clone());
    exec.file_size = Some(file.size as i64);
    exec.file_modified = Some(file.modified);
    let before = app
        .store()
        .and_then(|s| s.already_loaded(segment.id, &file.name, file.size as i64, file.modified))?;
    if let Some(before) = before {
        session.quit();
        exec.sha256 = before.sha256;
        exec.notes = Some(format!("already loaded by execution #{}", before.id));
        return Ok(Fetched::Unchanged);
    }
    let temp = tempfile::Builder::new()
        .prefix("download-")
        .tempdir_in(temp_root)
        .context("failed to create a temporary folder for the download")?;
    let dest = temp.path().join("file");
    let got = session.download(&dir, &file, &dest, app.progress)?;
    session.quit();
    exec.sha256 = Some(got.sha256);
    Ok(Fetched::File(Local {
        path: dest,
        _temp: Some(temp),
    }))
}

/// The folder for temporary files: beside the database, so that a large
/// download lands on the same disk as the data it becomes.
fn temp_root(app: &App) -> Result<PathBuf> {
    let db = &app.config.database;
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let root = dir.join(".segsync-tmp");
    std::fs::create_dir_all(&root)
        .with_context(|| format!("failed to create the temporary folder `{}`", root.display()))?;
    remove_stale_downloads(&root);
    Ok(root)
}

/// How old a download folder must be before a later refresh removes it.
/// A download in progress is never this old: the claim lease is shorter.
const STALE_DOWNLOAD: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes download folders left by a process that was killed (a normal
/// end removes its own). Best effort: a failure here never fails a refresh.
fn remove_stale_downloads(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("download-") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_DOWNLOAD);
        if old {
            tracing::debug!(
                "removing the stale download folder `{}`",
                entry.path().display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_download_folders_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let make = |name: &str, age_hours: u64| {
            let p = root.path().join(name);
            std::fs::create_dir(&p).unwrap();
            let when =
                std::time::SystemTime::now() - std::time::Duration::from_secs(age_hours * 3600);
            std::fs::File::open(&p).unwrap().set_modified(when).unwrap();
            p
        };
        let old = make("download-old", 30);
        let fresh = make("download-fresh", 1);
        let other = make("keep-me", 30);
        remove_stale_downloads(root.path());
        assert!(!old.exists());
        assert!(fresh.exists());
        assert!(other.exists());
    }
}
