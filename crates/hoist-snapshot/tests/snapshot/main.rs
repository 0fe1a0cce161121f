//! Integration tests of `hoist-snapshot`: layer extraction and diffs, snapshotters.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod apply_layers;
mod diff_layers;
mod extract_hostile;
mod snapshotter;
mod support;
