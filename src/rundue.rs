//! What `run-due` decides and does.
