//! Fuzzes the whole Dockerfile frontend: parse, typed instructions, shell-word expansion.
#![no_main]

include!("../../crates/hoist-dockerfile/tests/support/frontend_pipeline.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise_frontend(data));
