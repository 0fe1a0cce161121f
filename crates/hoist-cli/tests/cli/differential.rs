//! Differential builds: hoist and dockerd's BuildKit build BuildKit's Dockerfile integration
//! cases with `scripts/differential.sh`, which compares the two results (image config, the
//! exported files, the RUN steps' output) and prints one line per case.
//!
//! `differential_against_dockerd` runs a handful of BuildKit's cases and checks each line
//! against what is known (see `docs/dev/conformance.md`, "Differential builds");
//! `HOIST_DIFFERENTIAL_ALL=1` runs every case and only prints the table.
//! `own_corpus_against_dockerd` runs all of hoist's own corpus, `tests/cases` (see `corpus`),
//! and checks each line against the case's `expected`. Needs root, a running dockerd
//! (`docker info`; see `/work/shared/tools/peers.sh`), `docker-registry` and the busybox .debs
//! (the corpus: peers.sh's `localhost:5000/busybox:latest`, the base its `expected` lines were
//! recorded with); each test says why and returns early when one is missing.

#![allow(clippy::print_stdout)] // the runner prints its table

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build_env::BuildEnv;
use hoist_testkit::integration::{IntegrationCase, Run};

/// The cases the test runs, and the line it expects for each (after the case id).
const CHECKED: &[(&str, &str)] = &[
    ("02-copy-relative-to-workdir", "same"),
    ("03-copy-env-var-substitution", "same"),
    ("06-copy-dest-trailing-slash", "same"),
    ("10-copy-wildcard-no-match", "same"),
];

const DOCKER: &str = "/usr/bin/docker";

/// Where `tests/cases` expects its base image: peers.sh's registry.
const CORPUS_BASE: &str = "localhost:5000/busybox:latest";

/// Whether dockerd answers; says why not when it does not.
fn docker_up() -> bool {
    let up = Command::new(DOCKER)
        .arg("info")
        .output()
        .is_ok_and(|out| out.status.success());
    if !up {
        hoist_testkit::skip(
            "differential builds need dockerd running (bash /work/shared/tools/peers.sh)",
        );
    }
    up
}

/// Runs `scripts/differential.sh` over `dirs` with the base `base`; its table.
fn run_differential(dirs: &[PathBuf], base: &str, root: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/differential.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(dirs)
        .env("HOIST", env!("CARGO_BIN_EXE_hoist"))
        .env("DOCKER", DOCKER)
        .env("DIFF_BASE", base)
        .env("HOIST_ROOT", root)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{table}");
    assert!(
        !table.is_empty(),
        "differential.sh printed nothing: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    table
}

/// The table's line for `id`.
fn line_of<'a>(table: &'a str, id: &str) -> &'a str {
    table
        .lines()
        .find(|line| line.split(' ').next() == Some(id))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{table}"))
}

#[test]
fn own_corpus_against_dockerd() {
    let cases = crate::corpus::cases();
    use std::os::unix::fs::MetadataExt as _;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        hoist_testkit::skip("hoist build runs RUN steps in namespaces and chowns: needs root");
        return;
    }
    if !docker_up() {
        return;
    }
    let registry = CORPUS_BASE.split('/').next().unwrap_or_default();
    let reachable =
        std::net::TcpStream::connect(registry.replace("localhost", "127.0.0.1")).is_ok();
    if !reachable {
        hoist_testkit::skip(&format!(
            "the corpus is compared on {CORPUS_BASE} (bash /work/shared/tools/peers.sh)"
        ));
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("hoist-corpus-")
        .tempdir()
        .unwrap();
    let dirs: Vec<PathBuf> = cases.iter().map(|case| case.dir.clone()).collect();
    let table = run_differential(&dirs, CORPUS_BASE, &root.path().join("state"));
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let line = line_of(&table, &case.name);
            let want = format!("{} {}", case.name, case.expected);
            (line != want).then(|| format!("{line}\n  expected: {want}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "differential results not as tests/cases/*/expected says:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn differential_against_dockerd() {
    if !docker_up() {
        return;
    }
    let Some(cases) = hoist_testkit::integration::cases() else {
        return;
    };
    let Some(env) = BuildEnv::new() else {
        return;
    };
    let all = std::env::var_os("HOIST_DIFFERENTIAL_ALL").is_some();
    let chosen: Vec<&IntegrationCase> = cases
        .iter()
        .filter(|case| all || CHECKED.iter().any(|(id, _)| *id == case.id))
        .collect();
    let work = env.fresh_dir("differential");
    let mut dirs = Vec::new();
    let mut materialized = Vec::new();
    for case in &chosen {
        let ctx = case.materialize().unwrap();
        let run = &case.runs[0];
        let dir = work.join(&case.id);
        std::fs::create_dir_all(&dir).unwrap();
        write_case(&dir, ctx.context(), &ctx.dockerfile(case, run), run);
        dirs.push(dir);
        materialized.push(ctx);
    }
    let base = format!("{}/busybox:latest", env.registry.host());
    let table = run_differential(&dirs, &base, &env.root());
    if all {
        return;
    }
    for (id, want) in CHECKED {
        let line = line_of(&table, id);
        assert_eq!(line, format!("{id} {want}"), "differential result of {id}");
    }
}

/// A case directory as `differential.sh` reads it: the context (a symlink to the
/// materialised one), the run's Dockerfile, and its frontend attributes as build flags.
fn write_case(dir: &Path, context: &Path, dockerfile: &Path, run: &Run) {
    std::os::unix::fs::symlink(context, dir.join("context")).unwrap();
    std::fs::copy(dockerfile, dir.join("Dockerfile")).unwrap();
    let attrs = &run.frontend_attrs;
    let mut flags = String::new();
    for (name, value) in &attrs.build_args {
        writeln!(flags, "--build-arg={name}={value}").unwrap();
    }
    for (name, value) in &attrs.labels {
        writeln!(flags, "--label={name}={value}").unwrap();
    }
    if let Some(target) = &attrs.target {
        writeln!(flags, "--target={target}").unwrap();
    }
    if let Some(platform) = attrs.raw.get("platform") {
        writeln!(flags, "--platform={platform}").unwrap();
    }
    std::fs::write(dir.join("build-flags"), flags).unwrap();
}
