//! Slot arithmetic (pure).

use crate::config::Config;
use crate::segment::Schedule;
use chrono::{DateTime, Utc};

/// The next `n` slots at or after `now` (placeholder until the schedule
/// module lands).
pub fn upcoming(
    _config: &Config,
    _schedule: &Schedule,
    _anchor: DateTime<Utc>,
    _now: DateTime<Utc>,
    _n: usize,
) -> Vec<DateTime<Utc>> {
    Vec::new()
}
