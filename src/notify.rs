//! Failure, warning and recovery emails.
