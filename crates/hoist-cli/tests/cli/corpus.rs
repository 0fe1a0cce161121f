//! hoist's own differential corpus, `tests/cases/NN-name/`: each case is a Dockerfile with its
//! context, optional `build-flags` (one flag a line, as `scripts/differential.sh` reads them)
//! and `expected`, whose first line is what the runner prints for it against dockerd's
//! BuildKit (`same`, `same (both fail)` or `differs: ...`; the lines after it say why).
//!
//! This module builds every case with hoist alone (`-o type=tar`), so the corpus runs on every
//! CI machine without dockerd: a case must build, unless `expected` says both builders refuse
//! it, and then it must fail. `differential` compares the cases with dockerd where it runs.
//! Needs root, `docker-registry` and the busybox .debs (see `build_env`).

use std::path::{Path, PathBuf};

use crate::build_env::BuildEnv;

/// One case directory of `tests/cases`.
pub struct CorpusCase {
    pub name: String,
    pub dir: PathBuf,
    /// The first line of `expected`.
    pub expected: String,
}

impl CorpusCase {
    /// The build context: `DIR/context` when it exists, else `DIR`.
    pub fn context(&self) -> PathBuf {
        let context = self.dir.join("context");
        if context.is_dir() {
            context
        } else {
            self.dir.clone()
        }
    }

    /// The lines of `build-flags`, blank ones left out.
    pub fn build_flags(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("build-flags")).unwrap_or_default();
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether `expected` says hoist and dockerd both refuse the case.
    pub fn both_fail(&self) -> bool {
        self.expected == "same (both fail)"
    }
}

/// Every case of `tests/cases`, by name; panics when one lacks its Dockerfile or `expected`.
pub fn cases() -> Vec<CorpusCase> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(dir.join("Dockerfile").is_file(), "{name} has no Dockerfile");
        let expected = std::fs::read_to_string(dir.join("expected"))
            .unwrap_or_else(|e| panic!("{name}/expected: {e}"));
        let expected = expected.lines().next().unwrap_or_default().to_owned();
        cases.push(CorpusCase {
            name,
            dir,
            expected,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

#[test]
fn every_case_builds_with_hoist_alone() {
    let cases = cases();
    assert!(
        cases.len() >= 15,
        "only {} cases in tests/cases",
        cases.len()
    );
    let Some(env) = BuildEnv::new() else { return };
    let mut wrong = Vec::new();
    for case in &cases {
        let dest = env.fresh_dir("corpus").join("out.tar");
        let output = format!("type=tar,dest={}", dest.display());
        let dockerfile = case.dir.join("Dockerfile").display().to_string();
        let context = case.context().display().to_string();
        let flags = case.build_flags();
        let mut args = vec![
            "build",
            "--progress=plain",
            "-f",
            &dockerfile,
            "-o",
            &output,
        ];
        args.extend(flags.iter().map(String::as_str));
        args.push(&context);
        let out = env.hoist(&args);
        let built = out.status.success() && dest.is_file();
        if built == case.both_fail() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            wrong.push(format!(
                "{}: expected {}, hoist {} ({})",
                case.name,
                if case.both_fail() {
                    "a failure"
                } else {
                    "a build"
                },
                if built { "built it" } else { "failed" },
                last.unwrap_or_default().trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "corpus cases:\n{}", wrong.join("\n"));
}
