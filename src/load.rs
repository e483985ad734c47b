//! Streaming validation, external sort and the membership merge.
