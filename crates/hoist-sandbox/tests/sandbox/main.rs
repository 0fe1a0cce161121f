//! Integration tests of `hoist-sandbox`: every backend against a busybox rootfs (root only).
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod devices;
mod emulation;
mod fixture;
mod orphans;
mod run;
mod run_options;
