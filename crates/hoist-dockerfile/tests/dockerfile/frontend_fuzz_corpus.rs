//! Replays the fuzz seed corpus (`fuzz/seeds/frontend/`, plus every conformance Dockerfile
//! and truncations of each) through the whole frontend: malformed input must never panic.

use std::path::{Path, PathBuf};

include!("../support/frontend_pipeline.rs");

fn seeds() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/frontend");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn fuzz_seed_corpus_never_panics() {
    let files = seeds();
    assert!(files.len() >= 10, "the seed corpus went missing");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        exercise_frontend(&bytes);
        for cut in 0..bytes.len() {
            exercise_frontend(&bytes[..cut]);
        }
    }
}

#[test]
fn garbage_bytes_never_panic() {
    // A small deterministic generator (xorshift) so failures reproduce.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: &[&[u8]] = &[
        b"FROM ",
        b"RUN ",
        b"COPY ",
        b"ONBUILD ",
        b"ARG ",
        b"ENV ",
        b"HEALTHCHECK ",
        b"<<",
        b"-",
        b"EOF",
        b"\n",
        b"\\",
        b"`",
        b"$",
        b"{",
        b"}",
        b":-",
        b"#",
        b" ",
        b"\t",
        b"[",
        b"]",
        b"\"",
        b"'",
        b"--mount=",
        b"type=",
        b",",
        b"=",
        b"\xff",
        b"\xc3",
        b"\0",
        b"# escape=`\n",
    ];
    for _ in 0..3000 {
        let len = (next() % 40) as usize;
        let mut input = Vec::new();
        for _ in 0..len {
            input.extend_from_slice(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        exercise_frontend(&input);
    }
}

#[test]
fn conformance_dockerfiles_and_their_truncations_never_panic() {
    let Some(dir) = hoist_testkit::conformance_dir("buildkit-dockerfile-parser") else {
        return;
    };
    let mut count = 0;
    for sub in ["testfiles", "testfiles-negative"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path().join("Dockerfile")).unwrap();
            exercise_frontend(&bytes);
            for cut in (0..bytes.len()).step_by(7) {
                exercise_frontend(&bytes[..cut]);
            }
            count += 1;
        }
    }
    assert!(count >= 37);
}
