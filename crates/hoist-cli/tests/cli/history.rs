//! `hoist history ls|inspect|logs|rm` after real `hoist build`s (a RUN that succeeds and
//! one that fails) in a temp `--root`: buildx's table, JSON lines, inspect blocks with the
//! error and the failing step's output, the whole plain log, removal.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`).

use std::path::PathBuf;
use std::process::{Output, Stdio};

use crate::build_env::BuildEnv;

struct Case {
    env: BuildEnv,
    ctx: PathBuf,
}

impl Case {
    fn new() -> Option<Case> {
        let env = BuildEnv::new()?;
        let ctx = env.fresh_dir("app");
        Some(Case { env, ctx })
    }

    /// `hoist build --progress=plain ARGS CTX` with `dockerfile`.
    fn build(&self, dockerfile: &str, args: &[&str]) -> Output {
        std::fs::write(self.ctx.join("Dockerfile"), dockerfile).unwrap();
        let ctx = self.ctx.display().to_string();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(&ctx);
        self.output(&all)
    }

    fn output(&self, args: &[&str]) -> Output {
        self.env
            .command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `hoist ARGS`, failing the test when it fails; stdout and stderr.
    fn run(&self, args: &[&str]) -> (String, String) {
        let out = self.output(args);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "hoist {args:?} failed:\n{stderr}");
        (stdout, stderr)
    }

    fn name(&self) -> String {
        self.ctx.file_name().unwrap().to_string_lossy().into_owned()
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The cells of the `ls` table's rows (header left out), split on runs of spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    let words: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        words,
        ["BUILD", "ID", "NAME", "STATUS", "CREATED", "AT", "DURATION"],
        "{table}"
    );
    lines
        .map(|line| {
            line.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn history_lists_inspects_prints_logs_and_removes_builds() {
    let Some(case) = Case::new() else { return };
    let metadata = case.env.fresh_dir("meta").join("metadata.json");
    let metadata_arg = metadata.display().to_string();
    let ok = case.build(
        "FROM busybox\nRUN echo built-marker\n",
        &[
            "-t",
            "example.test/history:1",
            "--build-arg",
            "FLAVOUR=plain",
            "--metadata-file",
            &metadata_arg,
        ],
    );
    assert!(ok.status.success(), "{}", texts(&ok).1);
    let failed = case.build("FROM busybox\nRUN echo failing-marker; exit 3\n", &[]);
    assert!(!failed.status.success());

    // ls: newest first, buildx's columns.
    let (table, _) = case.run(&["history", "ls"]);
    let listed = rows(&table);
    assert_eq!(listed.len(), 2, "{table}");
    assert_eq!(listed[0][1], case.name(), "{table}");
    assert_eq!(listed[0][2], "Error", "{table}");
    assert_eq!(listed[1][2], "Completed", "{table}");
    assert!(listed[0][3].ends_with(" ago"), "{table}");
    assert!(listed[0][4].ends_with('s'), "{table}");
    let (failed_ref, ok_ref) = (listed[0][0].clone(), listed[1][0].clone());
    assert_eq!(failed_ref.len(), 25);

    let (json, _) = case.run(&["history", "ls", "--format", "json"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{json}");
    assert_eq!(lines[1]["ref"], ok_ref.as_str());
    assert_eq!(lines[1]["status"], "Completed");
    assert_eq!(lines[1]["completed_steps"], lines[1]["total_steps"]);
    assert!(lines[1]["completed_at"].is_string());
    assert_eq!(lines[0]["status"], "Error");
    let completed = lines[0]["completed_steps"].as_u64().unwrap();
    assert!(
        completed < lines[0]["total_steps"].as_u64().unwrap(),
        "{json}"
    );
    // The base image came from the cache the second time.
    assert!(lines[0]["cached_steps"].as_u64().unwrap() >= 1, "{json}");

    let (errors, _) = case.run(&["history", "ls", "--filter", "status=error"]);
    assert_eq!(rows(&errors).len(), 1, "{errors}");
    assert_eq!(rows(&errors)[0][0], failed_ref);

    // inspect: the latest (the failure), with its error, excerpt and the step's output.
    let (text, _) = case.run(&["history", "inspect"]);
    let dir = case.ctx.display();
    for expected in [
        format!("Name:\t\t{}\n", case.name()),
        format!("Ref:\t\t{failed_ref}\n"),
        format!("Context:\t{dir}\n"),
        format!("Dockerfile:\t{dir}/Dockerfile\n"),
        "Error:\t\tUnknown process \"/bin/sh -c echo failing-marker; exit 3\" did not \
         complete successfully: exit code: 3\n"
            .to_owned(),
        "Build Steps:\t".to_owned(),
        " >>> RUN echo failing-marker; exit 3\n".to_owned(),
        "Logs:\n> => [2/2] RUN echo failing-marker; exit 3:\n> failing-marker\n".to_owned(),
        format!("Print build logs: hoist history logs {failed_ref}\n"),
    ] {
        assert!(text.contains(&expected), "{expected:?} in:\n{text}");
    }

    // inspect REF: the image written, with the digest --metadata-file gave.
    let (text, _) = case.run(&["history", "inspect", &ok_ref]);
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    let digest = metadata["containerimage.digest"].as_str().unwrap();
    assert!(
        text.contains(&format!("example.test/history:1\t{digest}\n")),
        "{text}"
    );
    assert!(
        text.contains("BUILD ARG\tVALUE\nFLAVOUR\t\tplain\n"),
        "{text}"
    );
    assert!(text.contains("Build Steps:\t"), "{text}");
    assert!(!text.contains("Ref:"), "{text}");
    assert!(!text.contains("Error:"), "{text}");

    // logs: the plain progress of every step, RUN output included.
    let (_, log) = case.run(&["history", "logs", &ok_ref]);
    assert!(log.contains("[2/2] RUN echo built-marker\n"), "{log}");
    assert!(log.contains(" built-marker\n"), "{log}");
    assert!(log.contains("exporting to image\n"), "{log}");
    assert!(log.contains(" DONE "), "{log}");
    // The cache-miss reasons are part of the log, as the live plain view printed them.
    assert!(log.contains(" cache miss: "), "{log}");
    let (_, log) = case.run(&["history", "logs"]);
    assert!(
        log.contains("ERROR: process \"/bin/sh -c echo failing-marker"),
        "{log}"
    );

    // Unknown refs are named.
    for command in ["inspect", "logs", "rm"] {
        let out = case.output(&["history", command, "nosuchbuild"]);
        assert!(!out.status.success());
        let (_, stderr) = texts(&out);
        assert!(
            stderr.contains("no record found for ref \"nosuchbuild\""),
            "{command}: {stderr}"
        );
    }

    // rm: one, then all.
    let out = case.output(&["history", "rm"]);
    assert!(texts(&out).1.contains("rm requires at least one argument"));
    case.run(&["history", "rm", &ok_ref]);
    let (table, _) = case.run(&["history", "ls"]);
    assert_eq!(rows(&table).len(), 1, "{table}");
    case.run(&["history", "rm", "--all"]);
    let (table, _) = case.run(&["history", "ls"]);
    assert!(rows(&table).is_empty(), "{table}");
    let out = case.output(&["history", "inspect"]);
    assert!(texts(&out).1.contains("no records found"));
}
