// The whole frontend path that fuzzing exercises: parse, convert to typed stages, expand every
// instruction with the shell lexer, and list. Errors are fine; panics, hangs and overflows are
// not. Shared (via `include!`) by the fuzz target `fuzz/fuzz_targets/frontend.rs` and by the
// test that replays the seed corpus, so both run exactly the same code.

/// Runs every frontend stage over `bytes`, ignoring errors.
pub fn exercise_frontend(bytes: &[u8]) {
    use hoist_dockerfile::{instructions, parser, shell};

    let Ok(dockerfile) = parser::parse_bytes(bytes) else {
        return;
    };
    let _ = dockerfile.dump();
    let _ = instructions::listing(&dockerfile);
    let Ok((meta_args, stages)) = instructions::parse_stages(&dockerfile) else {
        return;
    };
    let lexer = shell::Lexer::new(dockerfile.escape);
    let env = shell::Env::from_pairs(
        meta_args
            .iter()
            .map(|arg| format!("{}={}", arg.key, arg.value.clone().unwrap_or_default())),
    );
    let expand = |word: &str| lexer.process_word(word, &env);
    for stage in &stages {
        let _ = lexer.process_words(&stage.base_name, &env);
        for command in &stage.commands {
            let _ = command.expand(&expand);
        }
    }
}
