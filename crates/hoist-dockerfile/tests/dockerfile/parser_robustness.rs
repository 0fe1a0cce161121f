//! Malformed input never panics the parser: truncations of every conformance testfile, random
//! bytes, random token soup, and inputs built to be as deep or as long as a line allows.
//! Results may be errors; only panics (and stack overflows) fail these tests.

use std::path::PathBuf;

use hoist_dockerfile::parser;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses, and on success dumps, so every output path runs too.
fn exercise(text: &str) {
    if let Ok(df) = parser::parse(text) {
        let _ = df.dump();
    }
    let _ = parser::detect_syntax(text);
    let _ = parser::Directives::parse(text);
}

fn exercise_bytes(bytes: &[u8]) {
    if let Ok(df) = parser::parse_bytes(bytes) {
        let _ = df.dump();
    }
}

/// Runs `f` on a thread with a 2 MiB stack (the test harness default), so deep inputs that
/// would need Go's growable stacks show up as failures here.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

fn testfiles() -> Vec<(String, Vec<u8>)> {
    let Some(dir) = hoist_testkit::conformance_dir("buildkit-dockerfile-parser") else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for group in ["testfiles", "testfiles-negative"] {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(dir.join(group))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        cases.sort();
        for case in cases {
            let name = format!("{group}/{}", case.file_name().unwrap().to_string_lossy());
            files.push((name, std::fs::read(case.join("Dockerfile")).unwrap()));
        }
    }
    files.push((
        "testfile-line".to_string(),
        std::fs::read(dir.join("testfile-line/Dockerfile")).unwrap(),
    ));
    files
}

#[test]
fn truncations_of_every_testfile_never_panic() {
    let files = testfiles();
    let mut count = 0;
    for (_, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        // every line end, and the start and middle of every line
        let mut cuts = Vec::new();
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if c == '\n' {
                cuts.extend([start, (start + i) / 2, i, i + 1]);
                start = i + 1;
            }
        }
        cuts.push(text.len());
        for cut in cuts {
            if let Some(prefix) = text.get(..cut) {
                exercise(prefix);
                count += 1;
            }
        }
        // raw byte truncations, which may cut a character in two
        for cut in (0..bytes.len()).step_by(97) {
            exercise_bytes(&bytes[..cut]);
        }
    }
    eprintln!(
        "parser truncations: {count} prefixes of {} files",
        files.len()
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise_bytes(&bytes);
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn token_soup_never_panics() {
    const TOKENS: &[&str] = &[
        "\\",
        "`",
        "\n",
        "\r\n",
        " ",
        "\t",
        "#",
        "# escape=`\n",
        "# escape=\\\n",
        "# syntax=x\n",
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "ENV ",
        "LABEL ",
        "ARG ",
        "CMD ",
        "SHELL ",
        "VOLUME ",
        "EXPOSE ",
        "USER ",
        "MAINTAINER ",
        "<<EOF",
        "<<-EOF",
        "<<'EOF'",
        "EOF\n",
        "\tEOF\n",
        "3<<X",
        "X\n",
        "<<",
        "\"",
        "'",
        "$",
        "${",
        "}",
        "${a:-",
        "${a/b/",
        "--",
        "--mount=type=cache",
        "--x=\"a b\"",
        "[",
        "]",
        "[\"a\",",
        "1e999",
        "{",
        "=",
        "a=b",
        "é",
        "\u{a0}",
        "\u{85}",
        "\u{feff}",
        "\u{130}",
        "\u{0}",
        "NONE",
        "CMD",
    ];
    let mut rng = Rng(42);
    for _ in 0..3_000 {
        let n = 1 + rng.below(60);
        let text: String = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        exercise(&text);
    }
}

#[test]
fn deepest_onbuild_chain_parses_dumps_and_drops() {
    on_small_stack(|| {
        let line = "ONBUILD ".repeat(8_000) + "RUN <<EOF\nEOF\n";
        let df = parser::parse(&line).unwrap();
        let dump = df.dump();
        assert!(dump.starts_with("(onbuild (onbuild"));
        assert!(dump.contains("(run \"<<EOF\")"));
        // only one ONBUILD level may carry heredocs, as in BuildKit
        assert!(df.children[0].heredocs.is_empty());
        drop(df);
    });
}

#[test]
fn deep_json_and_substitutions_stay_on_the_stack() {
    on_small_stack(|| {
        let deep_json = format!("FROM a\nCMD {}\n", "[".repeat(65_000));
        exercise(&deep_json);
        let nested = format!("FROM a\nRUN <<EOF {}\nEOF\n", "${a:-".repeat(13_000));
        exercise(&nested);
        let quoted = format!("FROM a\nRUN <<EOF {}\nEOF\n", "\"${a:-".repeat(10_000));
        exercise(&quoted);
        let heredocs = format!("FROM a\nRUN {}\n", "<<A ".repeat(16_000));
        exercise(&heredocs);
        let flags = format!("FROM a\nRUN {}x\n", "--a=\"b\" ".repeat(8_000));
        exercise(&flags);
        let words = format!("FROM a\nENV {}\n", "a=\"b c\" ".repeat(8_000));
        exercise(&words);
    });
}

#[test]
fn many_long_lines_and_continuations() {
    let line = "b".repeat(65_535);
    let text = format!("FROM a\nRUN {line} \\\n{line} \\\n\n{line}\n");
    let df = parser::parse(&format!("FROM a\nRUN x \\\n{line}\n")).unwrap();
    assert_eq!(df.children.len(), 2);
    // a continuation line that is too long stops the scan, as BuildKit's scanner does
    assert!(parser::parse(&text).is_err());
}
