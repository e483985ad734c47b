//! Membership rows: current members, SCD history, partition counts.
//!
//! Writing membership is `load::apply`'s job (it needs the caller's
//! transaction); this module reads it back, streaming, for `members` and
//! the tests. Membership at a past moment `t` is the union of the current
//! records opened at or before `t` and the closed records with
//! `valid_from <= t < valid_to`; the two never overlap for one user.

use super::Store;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::OptionalExtension;
use std::collections::HashMap;

impl Store {
    /// Calls `f(key, partition)` for each member of the segment, in key
    /// order (integers numerically, text by bytes), and returns how many
    /// there were. `partition` keeps only that partition's members (none
    /// when the segment never had it); `as_of` asks for the membership at
    /// that moment (history is kept for SCD segments only: for a non-SCD
    /// segment it sees the current members that joined by then).
    pub fn for_each_member(
        &self,
        segment_id: i64,
        partition: Option<&str>,
        as_of: Option<DateTime<Utc>>,
        mut f: impl FnMut(&ValueRef, &str) -> Result<()>,
    ) -> Result<u64> {
        let mut names: HashMap<i64, String> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT id, value FROM partition WHERE segment_id = ?1")?;
            let rows = stmt.query_map([segment_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let (id, value) = row?;
                names.insert(id, value);
            }
        }
        let only: Option<i64> = match partition {
            Some(p) => match names.iter().find(|(_, v)| v.as_str() == p) {
                Some((id, _)) => Some(*id),
                None => return Ok(0),
            },
            None => None,
        };

        let mut stmt = match as_of {
            None => self.conn.prepare(
                "SELECT key, partition_id FROM member
                 WHERE segment_id = ?1 AND (?2 IS NULL OR partition_id = ?2)
                 ORDER BY key",
            )?,
            Some(_) => self.conn.prepare(
                "SELECT key, partition_id FROM member
                 WHERE segment_id = ?1 AND (?2 IS NULL OR partition_id = ?2) AND since <= ?3
                 UNION ALL
                 SELECT key, partition_id FROM member_history
                 WHERE segment_id = ?1 AND (?2 IS NULL OR partition_id = ?2)
                   AND valid_from <= ?3 AND valid_to > ?3
                 ORDER BY 1",
            )?,
        };
        stmt.raw_bind_parameter(1, segment_id)?;
        stmt.raw_bind_parameter(2, only)?;
        if let Some(t) = as_of {
            stmt.raw_bind_parameter(3, t.timestamp())?;
        }
        let mut rows = stmt.raw_query();
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            let key = r.get_ref(0)?;
            let part: i64 = r.get(1)?;
            let value = names
                .get(&part)
                .with_context(|| format!("member row points at unknown partition {part}"))?;
            f(&key, value)?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the segment has (or had) a partition named `value`.
    pub fn has_partition(&self, segment_id: i64, value: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM partition WHERE segment_id = ?1 AND value = ?2",
                rusqlite::params![segment_id, value],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Every partition value the segment ever had, by value.
    pub fn partition_values(&self, segment_id: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT value FROM partition WHERE segment_id = ?1 ORDER BY value")?;
        let rows = stmt.query_map([segment_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Members as `(key, partition)` text pairs, in key order: for tests
    /// and small segments only, since it holds them all in memory.
    pub fn members(
        &self,
        segment_id: i64,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        self.for_each_member(segment_id, None, as_of, |k, p| {
            out.push((key_text(k)?, p.to_string()));
            Ok(())
        })?;
        Ok(out)
    }
}

/// A member key as text: the integer's digits, or the text itself.
pub fn key_text(k: &ValueRef) -> Result<String> {
    Ok(match k {
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Text(t) => std::str::from_utf8(t)?.to_string(),
        other => anyhow::bail!("unexpected member key of type {:?}", other.data_type()),
    })
}
