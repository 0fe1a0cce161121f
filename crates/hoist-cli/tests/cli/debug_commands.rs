//! `hoist debug parse|instructions`: what a user sees, from the real binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn hoist(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

const DOCKERFILE: &str = "\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE AS build
RUN --mount=type=cache,target=/cache <<EOF
echo hi > /out
EOF
FROM scratch
COPY --from=build --chmod=755 /out /out
CMD [\"/out\"]
";

#[test]
fn parse_prints_buildkit_dump_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    std::fs::write(&path, DOCKERFILE).unwrap();
    let out = hoist(&["debug", "parse", path.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "(arg \"BASE=busybox\")\n\
         (from \"$BASE\" \"AS\" \"build\")\n\
         (run [\"--mount=type=cache,target=/cache\"] \"<<EOF\")\n\
         (from \"scratch\")\n\
         (copy [\"--from=build\" \"--chmod=755\"] \"/out\" \"/out\")\n\
         (cmd \"/out\")\n"
    );
}

#[test]
fn instructions_lists_each_with_its_stage_from_stdin() {
    let out = hoist(&["debug", "instructions", "-"], Some(DOCKERFILE));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 6, "{listing}");
    assert_eq!(lines[0], "meta line 2: ARG BASE=\"busybox\"", "{listing}");
    assert!(
        lines[1].starts_with("stage 0 (build) line 3: FROM"),
        "{listing}"
    );
    assert!(
        lines[2].starts_with("stage 0 (build) line 4: RUN"),
        "{listing}"
    );
    assert!(
        lines[3].starts_with("stage 1 line 7: FROM scratch"),
        "{listing}"
    );
    assert!(lines[4].contains("--chmod=0755"), "{listing}");
}

#[test]
fn parse_error_names_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Broken.Dockerfile");
    std::fs::write(&path, "FROM busybox\nRUN true\nFOO bar\n").unwrap();
    let out = hoist(&["debug", "instructions", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with(&format!("{}:3\n", path.display())), "{err}");
    assert!(err.contains(">>> FOO bar"), "{err}");
    assert!(err.contains("unknown instruction: FOO"), "{err}");
}

#[test]
fn instruction_error_points_at_its_line() {
    let out = hoist(
        &["debug", "instructions", "-"],
        Some("FROM busybox\n\nRUN --mount=type=nope true\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("-:3\n"), "{err}");
    assert!(err.contains(">>> RUN --mount=type=nope true"), "{err}");
}

#[test]
fn parse_reports_empty_continuation_warning() {
    let out = hoist(
        &["debug", "parse", "-"],
        Some("FROM busybox\nRUN echo a \\\n\n  b\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.starts_with("WARNING: -:"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = hoist(&["debug", "parse", "/nonexistent/Dockerfile"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("failed to read /nonexistent/Dockerfile"));
}

#[test]
fn examples_parse_and_convert() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dockerfile = entry.unwrap().path().join("Dockerfile");
        let out = hoist(
            &["debug", "instructions", dockerfile.to_str().unwrap()],
            None,
        );
        assert!(
            out.status.success(),
            "{}: {}",
            dockerfile.display(),
            text(&out.stderr)
        );
        seen += 1;
    }
    assert!(seen >= 2);
}
