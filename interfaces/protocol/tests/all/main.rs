//! Integration tests of the lattice protocol: one binary, one module per topic.

// A panic in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contracts;
mod doc_drift;
mod events;
mod golden;
mod hostile;
mod lenient;
