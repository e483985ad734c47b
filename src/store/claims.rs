//! Slot claims that keep overlapping `run-due` processes apart.
