//! Failure, warning and recovery emails.

/// Placeholder until the notify module lands.
pub struct Outlook {
    pub final_failure: bool,
    pub next_attempt: Option<chrono::DateTime<chrono::Utc>>,
    pub next_slot: Option<chrono::DateTime<chrono::Utc>>,
}

/// Placeholder until the notify module lands.
pub fn after_execution(
    _app: &mut crate::app::App,
    _segment: &crate::segment::Segment,
    _exec: &crate::store::Execution,
    _outlook: &Outlook,
) -> anyhow::Result<()> {
    Ok(())
}
