//! Integration tests of `hoist-export`: `-o` parsing and every exporter, read back by real tools.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod annotations;
mod device_dest;
mod export;
mod parse;
mod push_stream;
mod rewrite_timestamp;
