//! The clock every command reads time from.
//!
//! `--now` pins the start instant so that creation times, slots and file
//! ages are judged against it; time then advances with the real elapsed time
//! so that `started_at` and `finished_at` of one execution still differ.
//! Nothing else in the crate may call `Utc::now()`.

use chrono::{DateTime, Utc};
use std::time::Instant;

/// A clock that starts at a given instant and runs at real speed.
#[derive(Debug, Clone)]
pub struct Clock {
    base: DateTime<Utc>,
    started: Instant,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock pinned at `base` when created.
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self {
            base,
            started: Instant::now(),
        }
    }

    /// The instant the command started at (the pinned `--now`).
    pub fn start(&self) -> DateTime<Utc> {
        self.base
    }

    /// The current instant: the start plus the real time elapsed since.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        self.base + elapsed
    }
}
