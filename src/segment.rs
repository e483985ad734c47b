//! The segment model and the pure rules about its fields.
//!
//! This module owns what a segment *is* (names, types, statuses, upload
//! settings) and the checks that need no database or network: name syntax,
//! folder paths that must stay below a connection root, validity windows.
//! Storage lives in `store`, scheduling in `schedule`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Whether a segment keeps the history of its membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SegmentType {
    #[serde(rename = "scd")]
    Scd,
    #[serde(rename = "non-scd")]
    NonScd,
}

/// Where a segment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    InProgress,
    Active,
    Inactive,
}

/// How often a scheduled segment is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
}

/// The identifier type a file's first header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    UserId,
    Mobile,
    Email,
    ExternalId,
}

macro_rules! text_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+ $(,)?) => {
        impl $ty {
            /// Every accepted spelling, for error messages and clap.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The spelling used in the database, the CLI and JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "unknown {} `{}`: use one of {}",
                        $what,
                        s,
                        Self::NAMES.join(", ")
                    )),
                }
            }
        }
    };
}

/// The macro is shared with the store's execution enums.
pub(crate) use text_enum;

text_enum!(SegmentType, "segment type", Scd => "scd", NonScd => "non-scd");
text_enum!(Status, "status", Draft => "draft", InProgress => "inprogress",
    Active => "active", Inactive => "inactive");
text_enum!(Frequency, "frequency", Daily => "daily", Weekly => "weekly", Monthly => "monthly");
text_enum!(IdType, "identifier type", UserId => "user_id", Mobile => "mobile",
    Email => "email", ExternalId => "external_id");

impl IdType {
    /// Whether identifiers of this type are stored as SQLite INTEGERs
    /// (smaller and faster than TEXT) rather than TEXT.
    pub fn is_numeric(self) -> bool {
        matches!(self, IdType::UserId | IdType::Mobile)
    }
}

/// Upload settings of a scheduled segment: where its files are and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Name of a configured `[[ftp]]` connection.
    pub ftp: String,
    /// Folder relative to the connection's root, normalised (no leading or
    /// trailing `/`, no `.` parts); empty for the root itself.
    pub path: String,
    pub frequency: Frequency,
    /// First date of the validity window, inclusive.
    pub from: NaiveDate,
    /// Last date of the validity window, inclusive; `None` runs forever.
    pub to: Option<NaiveDate>,
}

/// A segment as stored.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub seg_type: SegmentType,
    pub status: Status,
    /// `None` for a manual upload segment (and for a draft not yet given
    /// upload settings).
    pub schedule: Option<Schedule>,
    /// Draft-only: upload settings given so far, possibly incomplete.
    pub draft: DraftSettings,
    pub recipients: Vec<String>,
    /// Identifier type of the data held, known after the first load.
    pub id_type: Option<IdType>,
    /// Partition column name of the data held, known after the first load.
    pub partition_column: Option<String>,
    /// The moment slots are counted from: creation, the last edit of the
    /// upload settings, or re-activation.
    pub schedule_anchor: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What recipients were last told: `ok` or `failing`. One email per
    /// change of this state.
    pub alert_state: AlertState,
}

impl Segment {
    /// `scheduled` or `manual`.
    pub fn upload_type(&self) -> &'static str {
        if self.schedule.is_some() || (self.status == Status::Draft && self.draft.ftp.is_some()) {
            "scheduled"
        } else {
            "manual"
        }
    }

    /// The upload settings as partial settings: the schedule's when the
    /// segment has one, else what a draft holds.
    pub fn settings(&self) -> DraftSettings {
        match &self.schedule {
            Some(s) => DraftSettings {
                seg_type: Some(self.seg_type),
                ftp: Some(s.ftp.clone()),
                path: Some(s.path.clone()),
                frequency: Some(s.frequency),
                from: Some(s.from),
                to: s.to,
            },
            None => self.draft.clone(),
        }
    }

    /// A new draft named `name`, created at `now`.
    pub fn new_draft(name: &str, seg_type: Option<SegmentType>, now: DateTime<Utc>) -> Segment {
        Segment {
            id: 0,
            name: name.to_string(),
            description: String::new(),
            seg_type: seg_type.unwrap_or(SegmentType::Scd),
            status: Status::Draft,
            schedule: None,
            draft: DraftSettings {
                seg_type,
                ..DraftSettings::default()
            },
            recipients: Vec::new(),
            id_type: None,
            partition_column: None,
            schedule_anchor: now,
            created_at: now,
            updated_at: now,
            alert_state: AlertState::Ok,
        }
    }

    /// Whether `run-due` considers this segment at all.
    pub fn is_schedulable(&self) -> bool {
        matches!(self.status, Status::InProgress | Status::Active) && self.schedule.is_some()
    }
}

/// Partial upload settings a draft may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftSettings {
    /// The type, when one was given (a draft may be saved without).
    pub seg_type: Option<SegmentType>,
    pub ftp: Option<String>,
    pub path: Option<String>,
    pub frequency: Option<Frequency>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// What the recipients of a segment were last told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Ok,
    Failing,
}

text_enum!(AlertState, "alert state", Ok => "ok", Failing => "failing");

/// Checks a segment name: letters, digits, `_` and `-`, no `__` (which
/// separates the name from the suffix in file names), at most 100 chars.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a segment name cannot be empty".into());
    }
    if name.len() > 100 {
        return Err(format!(
            "segment name `{name}` is {} characters long; the limit is 100",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "segment name `{name}` contains `{bad}`: use only letters, digits, `_` and `-`"
        ));
    }
    if name.contains("__") {
        return Err(format!(
            "segment name `{name}` contains `__`, which separates the name from the suffix in \
             file names (`{name}__<suffix>.csv`): use a single `_`"
        ));
    }
    Ok(())
}

/// Normalises a folder path relative to a connection root and refuses any
/// that could leave it: `..` parts, absolute paths, backslashes, control
/// characters. `""`, `.` and `/` all mean the root itself.
pub fn normalize_path(path: &str) -> Result<String, String> {
    if path.chars().any(|c| c.is_control()) {
        return Err(format!(
            "path `{}` contains a control character",
            path.escape_debug()
        ));
    }
    if path.contains('\\') {
        return Err(format!(
            "path `{path}` contains `\\`: separate folders with `/`"
        ));
    }
    if path.starts_with('~') {
        return Err(format!(
            "path `{path}` starts with `~`: give a folder relative to the connection root"
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "path `{path}` contains `..`: a segment's folder must stay inside its \
                     connection's root"
                ))
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Joins a connection root and a segment folder into the remote folder.
pub fn remote_dir(root: &str, path: &str) -> String {
    let root = root.trim_end_matches('/');
    match (root.is_empty(), path.is_empty()) {
        (true, true) => "/".to_string(),
        (true, false) => format!("/{path}"),
        (false, true) => root.to_string(),
        (false, false) => format!("{root}/{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("high_value-2").is_ok());
        assert!(check_name("a__b").unwrap_err().contains("__"));
        assert!(check_name("a b").unwrap_err().contains("` `"));
        assert!(check_name("é").is_err());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
    }

    #[test]
    fn paths_stay_below_root() {
        assert_eq!(normalize_path("/drops//daily/").unwrap(), "drops/daily");
        assert_eq!(normalize_path("./a/./b").unwrap(), "a/b");
        assert_eq!(normalize_path("/").unwrap(), "");
        assert!(normalize_path("../etc").is_err());
        assert!(normalize_path("a/../../b").is_err());
        assert!(normalize_path("a/..").is_err());
        assert!(normalize_path("a\\..\\b").is_err());
        assert!(normalize_path("~/x").is_err());
        assert!(normalize_path("a\nb").is_err());
    }

    #[test]
    fn remote_dirs() {
        assert_eq!(remote_dir("/srv/ftp/", "a/b"), "/srv/ftp/a/b");
        assert_eq!(remote_dir("", ""), "/");
        assert_eq!(remote_dir("/", "x"), "/x");
        assert_eq!(remote_dir("data", ""), "data");
    }

    #[test]
    fn enums_round_trip() {
        for n in Status::NAMES {
            assert_eq!(n.parse::<Status>().unwrap().as_str(), *n);
        }
        assert!("weekly".parse::<Frequency>().is_ok());
        assert!("yearly"
            .parse::<Frequency>()
            .unwrap_err()
            .contains("daily, weekly, monthly"));
    }
}
