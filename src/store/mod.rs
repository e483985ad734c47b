//! The SQLite store: every SQL statement of segsync lives below this module.
//!
//! One file holds segments, partitions, current members, SCD history,
//! executions and rejected rows (see `schema_v1.sql`, which documents each
//! table). Migrations are ordered and tracked by `user_version`.
//!
//! # Concurrency
//!
//! Several processes use one database at once: cron's `run-due` (possibly
//! two overlapping copies), an analyst's `show` or `logs`, a manual
//! `refresh`. The database runs in WAL mode so readers never wait for a
//! writer, and every connection has a busy timeout so that writers queue
//! instead of failing. Writers keep their transactions short: a refresh
//! downloads and validates a file with no transaction open, and only the
//! final load (and the execution row that records it) runs inside one
//! `BEGIN IMMEDIATE` transaction. How two `run-due` processes avoid working
//! on the same slot is explained in `claims`.

mod claims;
mod executions;
mod members;
mod segments;

pub use claims::*;
pub use executions::*;
pub use members::*;
pub use segments::*;

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};
use std::path::Path;
use std::time::Duration;

/// How long a connection waits for another writer before giving up. Loads
/// of tens of millions of rows hold the write lock for a few seconds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(120);

/// The ordered migrations. Never edit, reorder or remove one that has been
/// released: databases in the field have applied it. Append new ones.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!("schema_v1.sql"))])
}

/// The schema version this build writes: the number of migrations.
const LATEST_VERSION: i64 = 1;

/// An open database.
pub struct Store {
    pub(crate) conn: Connection,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("failed to create the database folder `{}`", dir.display())
                })?;
            }
        }
        let conn = Connection::open(path)
            .with_context(|| format!("failed to open the database `{}`", path.display()))?;
        Self::setup(conn).map_err(|e| {
            let not_a_database = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<rusqlite::Error>(),
                    Some(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == rusqlite::ErrorCode::NotADatabase
                )
            });
            if not_a_database {
                // The configuration points at some other file: exit 2, file untouched.
                crate::error::UsageError(format!(
                    "`{}` is not a SQLite database: point `database` in the configuration at \
                     a segsync database or at a file that does not exist yet",
                    path.display()
                ))
                .into()
            } else {
                e.context(format!("failed to prepare `{}`", path.display()))
            }
        })
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "FILE")?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > LATEST_VERSION {
            return Err(crate::error::UsageError(format!(
                "the database was written by a newer segsync (schema version {found}; this \
                 build knows up to {LATEST_VERSION}); upgrade segsync, or point `database` at \
                 another file"
            ))
            .into());
        }
        migrations()
            .to_latest(&mut conn)
            .context("failed to migrate the database schema")?;
        Ok(Store { conn })
    }

    /// The schema version (`user_version`).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The underlying connection, for modules of this crate that need a
    /// transaction spanning several store calls.
    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Formats a UTC instant as stored: RFC 3339 with seconds and `Z`.
pub(crate) fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses a stored enum spelling; a value the schema should have refused
/// is a conversion error, never a silent default.
pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(s: String) -> rusqlite::Result<T> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

/// Parses an instant stored by [`ts`].
pub(crate) fn parse_ts(s: &str) -> rusqlite::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        migrations().to_latest(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            v, LATEST_VERSION,
            "LATEST_VERSION must follow the migrations"
        );
    }

    #[test]
    fn opens_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/seg.db");
        let s = Store::open(&path).unwrap();
        let v = s.schema_version().unwrap();
        assert!(v >= 1);
        drop(s);
        assert_eq!(Store::open(&path).unwrap().schema_version().unwrap(), v);
    }
}
