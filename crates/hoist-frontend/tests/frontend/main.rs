//! Integration tests of `hoist-frontend`: conversion behaviour and BuildKit's integration cases.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod convert;
mod fidelity;
mod integration_conformance;
mod oci_layout_ref;
mod session;
mod support;
