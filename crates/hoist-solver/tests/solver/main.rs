//! Integration tests of `hoist-solver` with toy ops: scheduling, caching, cancellation, progress.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod cache;
mod cancel;
mod claim;
mod progress;
mod scheduler;
mod toy;
