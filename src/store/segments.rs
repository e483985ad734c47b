//! Segment rows: create, read, update, list, and partition counts.

use super::{parse_enum, parse_ts, ts, Store};
use crate::segment::{
    AlertState, DraftSettings, Frequency, IdType, Schedule, Segment, SegmentType, Status,
};
use anyhow::{Context, Result};
use chrono::NaiveDate;
use rusqlite::{params, OptionalExtension, Row};

/// Filters for [`Store::list_segments`]; `None` matches anything.
#[derive(Debug, Default, Clone)]
pub struct SegmentFilter {
    pub status: Option<Status>,
    pub seg_type: Option<SegmentType>,
    /// `scheduled` or `manual`.
    pub upload_type: Option<String>,
    /// Case-insensitive text searched in name and description.
    pub search: Option<String>,
}

/// One partition of a segment with its current member count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionCount {
    pub value: String,
    pub members: i64,
}

const COLUMNS: &str = "id, name, description, type, status, ftp, path, frequency, valid_from, \
     valid_to, recipients, id_type, partition_column, schedule_anchor, created_at, updated_at, \
     alert_state, upload_type";

fn parse_date(s: Option<String>) -> rusqlite::Result<Option<NaiveDate>> {
    s.map(|s| {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

fn from_row(r: &Row) -> rusqlite::Result<Segment> {
    let status: Status = parse_enum(r.get(4)?)?;
    let ftp: Option<String> = r.get(5)?;
    let path: Option<String> = r.get(6)?;
    let frequency: Option<Frequency> =
        r.get::<_, Option<String>>(7)?.map(parse_enum).transpose()?;
    let from = parse_date(r.get(8)?)?;
    let to = parse_date(r.get(9)?)?;
    let upload_type: String = r.get(17)?;
    let seg_type: Option<SegmentType> =
        r.get::<_, Option<String>>(3)?.map(parse_enum).transpose()?;
    let draft = DraftSettings {
        seg_type,
        ftp: ftp.clone(),
        path: path.clone(),
        frequency,
        from,
        to,
    };
    let schedule = match (status, upload_type.as_str(), ftp, frequency, from) {
        (s, "scheduled", Some(ftp), Some(frequency), Some(from)) if s != Status::Draft => {
            Some(Schedule {
                ftp,
                path: path.unwrap_or_default(),
                frequency,
                from,
                to,
            })
        }
        _ => None,
    };
    let recipients: String = r.get(10)?;
    let recipients: Vec<String> = serde_json::from_str(&recipients).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(Segment {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        seg_type: seg_type.unwrap_or(SegmentType::Scd),
        status,
        schedule,
        draft,
        recipients,
        id_type: r
            .get::<_, Option<String>>(11)?
            .map(parse_enum::<IdType>)
            .transpose()?,
        partition_column: r.get(12)?,
        schedule_anchor: parse_ts(&r.get::<_, String>(13)?)?,
        created_at: parse_ts(&r.get::<_, String>(14)?)?,
        updated_at: parse_ts(&r.get::<_, String>(15)?)?,
        alert_state: parse_enum(r.get(16)?)?,
    })
}

impl Store {
    /// Inserts a new segment and returns its id. The caller has validated it.
    pub fn insert_segment(&mut self, s: &Segment) -> Result<i64> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO segment (name, type, upload_type, status, schedule_anchor, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                s.name,
                type_column(s),
                s.upload_type(),
                s.status.as_str(),
                ts(s.schedule_anchor),
                ts(s.created_at),
                ts(s.updated_at),
            ],
        )
        .with_context(|| format!("failed to save segment `{}`", s.name))?;
        let id = tx.last_insert_rowid();
        // Every other column is written the way an edit writes it.
        write_segment(&tx, id, s)?;
        tx.commit()?;
        Ok(id)
    }

    /// Rewrites every editable column of an existing segment.
    pub fn update_segment(&mut self, s: &Segment) -> Result<()> {
        write_segment(&self.conn, s.id, s)
    }

    /// The segment named `name`, if any.
    pub fn segment(&self, name: &str) -> Result<Option<Segment>> {
        let sql = format!("SELECT {COLUMNS} FROM segment WHERE name = ?1");
        Ok(self.conn.query_row(&sql, [name], from_row).optional()?)
    }

    /// The segment with id `id`.
    pub fn segment_by_id(&self, id: i64) -> Result<Segment> {
        let sql = format!("SELECT {COLUMNS} FROM segment WHERE id = ?1");
        Ok(self.conn.query_row(&sql, [id], from_row)?)
    }

    /// Segments matching `f`, by name.
    pub fn list_segments(&self, f: &SegmentFilter) -> Result<Vec<Segment>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM segment
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR type = ?2)
               AND (?3 IS NULL OR upload_type = ?3)
               AND (?4 IS NULL OR instr(lower(name), lower(?4)) > 0
                    OR instr(lower(description), lower(?4)) > 0)
             ORDER BY name"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![
                f.status.map(|s| s.as_str()),
                f.seg_type.map(|s| s.as_str()),
                f.upload_type,
                f.search
            ],
            from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sets what the recipients were last told.
    pub fn set_alert_state(&mut self, segment_id: i64, state: AlertState) -> Result<()> {
        self.conn.execute(
            "UPDATE segment SET alert_state = ?2 WHERE id = ?1",
            params![segment_id, state.as_str()],
        )?;
        Ok(())
    }

    /// Partitions of a segment that have members now, largest first.
    pub fn partitions(&self, segment_id: i64) -> Result<Vec<PartitionCount>> {
        let mut stmt = self.conn.prepare(
            "SELECT value, members FROM partition WHERE segment_id = ?1 AND members > 0
             ORDER BY members DESC, value",
        )?;
        let rows = stmt.query_map([segment_id], |r| {
            Ok(PartitionCount {
                value: r.get(0)?,
                members: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the segment holds or ever held any member.
    pub fn has_data(&self, segment_id: i64) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM member WHERE segment_id = ?1)
                 OR EXISTS (SELECT 1 FROM member_history WHERE segment_id = ?1)",
            [segment_id],
            |r| r.get(0),
        )?)
    }
}

/// Writes every editable column of segment `id` from `s`.
fn write_segment(conn: &rusqlite::Connection, id: i64, s: &Segment) -> Result<()> {
    let (ftp, path, frequency, from, to) = settings_columns(s);
    conn.execute(
        "UPDATE segment SET description = ?2, type = ?3, upload_type = ?4, status = ?5, \
         ftp = ?6, path = ?7, frequency = ?8, valid_from = ?9, valid_to = ?10, \
         recipients = ?11, schedule_anchor = ?12, updated_at = ?13, alert_state = ?14
         WHERE id = ?1",
        params![
            id,
            s.description,
            type_column(s),
            s.upload_type(),
            s.status.as_str(),
            ftp,
            path,
            frequency,
            from,
            to,
            serde_json::to_string(&s.recipients)?,
            ts(s.schedule_anchor),
            ts(s.updated_at),
            s.alert_state.as_str(),
        ],
    )
    .with_context(|| format!("failed to update segment `{}`", s.name))?;
    Ok(())
}

/// Sets a segment's status; usable inside the transaction of a load.
pub fn set_status(conn: &rusqlite::Connection, segment_id: i64, status: Status) -> Result<()> {
    conn.execute(
        "UPDATE segment SET status = ?2 WHERE id = ?1",
        params![segment_id, status.as_str()],
    )?;
    Ok(())
}

/// The stored type: a draft keeps NULL until a type is chosen.
fn type_column(s: &Segment) -> Option<&'static str> {
    if s.status == Status::Draft {
        s.draft.seg_type.map(|t| t.as_str())
    } else {
        Some(s.seg_type.as_str())
    }
}

type SettingsColumns = (
    Option<String>,
    Option<String>,
    Option<&'static str>,
    Option<String>,
    Option<String>,
);

fn settings_columns(s: &Segment) -> SettingsColumns {
    let d = s.settings();
    (
        d.ftp,
        d.path,
        d.frequency.map(|f| f.as_str()),
        d.from.map(|d| d.to_string()),
        d.to.map(|d| d.to_string()),
    )
}
