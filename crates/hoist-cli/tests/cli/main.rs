//! End-to-end tests of the `hoist` binary: builds checked with real clients and a real
//! registry, registry commands, progress and error output, prune.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod bad_inputs;
mod build_command;
mod build_conformance;
mod build_context_sources;
mod build_dockerd;
mod build_e2e;
mod build_env;
mod build_flags;
mod build_gateway;
mod build_http;
mod build_images;
mod build_nodes;
mod build_remote;
mod build_remote_parity;
mod build_session;
mod build_stdio;
mod build_warnings;
mod builders;
mod cache_export;
mod cache_local_session;
mod cache_misses;
mod corpus;
mod debug_commands;
mod differential;
mod docker_container;
mod fault_proxy;
mod fidelity;
mod history;
mod kubernetes;
mod multiplatform_binfmt;
mod multiplatform_build;
mod platform_local;
mod prune;
mod prune_after_kill;
mod prune_after_kill_runc;
mod registry_commands;
mod reproducible;
mod run_flags;
mod secrets;
