//! Choosing which remote file a refresh loads (pure, no network).

use chrono::{DateTime, Utc};

/// A file in a segment's remote folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}
