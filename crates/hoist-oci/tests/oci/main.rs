//! Integration tests of `hoist-oci`: upstream vectors and layouts read back by real tools.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod conformance_digest;
mod conformance_docker_manifest;
mod conformance_image_spec;
mod conformance_platforms;
mod conformance_reference;
mod interop_tools;
mod layout_roundtrip;
mod support;
