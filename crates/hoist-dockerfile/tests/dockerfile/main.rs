//! Integration tests of `hoist-dockerfile`: parser, shell lexer, instructions and .dockerignore.
//!
//! One test binary for the whole crate (each file under `tests/` would otherwise be its own
//! binary linking every dependency); each module is one concern. Modules whose name holds
//! `conformance` are the conformance runners, which `cargo test conformance` selects and
//! `scripts/test.sh` runs apart; no other test's path may contain that word.

mod dockerignore_conformance;
mod dockerignore_ignore_file;
mod dockerignore_matcher;
mod frontend_fuzz_corpus;
mod instructions_conformance;
mod instructions_listing;
mod instructions_nodes;
mod parser_conformance;
mod parser_edge_cases;
mod parser_robustness;
mod shell_conformance;
