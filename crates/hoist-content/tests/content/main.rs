//! Integration tests of `hoist-content`: the store on disk, concurrent writers, leases, GC.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod concurrency;
mod disk_full;
mod gc;
mod image_fixture;
mod ingest;
mod lease;
mod names;
mod tools;
mod variants;
