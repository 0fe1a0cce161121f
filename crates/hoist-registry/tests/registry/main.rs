//! Integration tests of `hoist-registry`: a real registry, hostile in-process ones, TLS, helpers.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod common;
mod conformance_manifests;
mod credential_helper;
mod hostile_blobs;
mod hostile_registry;
mod real_registry;
mod tls_registry;
mod upload_resume;
mod upload_stream;
