//! Slot arithmetic (pure).
