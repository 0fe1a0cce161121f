//! Integration tests of `hoist-engine`: `build` end to end without root (copy snapshotter
//! when not root, RUN through the scripted executor of hoist-sandbox's `testing` feature).
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod cache;
mod cache_misses;
mod case;
mod copy_semantics;
mod fidelity;
mod gc;
mod git;
mod git_context;
mod history;
mod http;
mod lazy_base;
mod local_images;
mod owned_context;
mod prune;
mod remote_cache;
mod remote_context;
mod resolve_bases;
mod run;
mod run_inputs;
mod scratch_build;
mod shared_work;
