//! Membership rows: current members, SCD history, partition counts.
