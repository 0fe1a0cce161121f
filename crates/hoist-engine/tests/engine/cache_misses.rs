//! Why a step missed the cache: each step that runs says so in a `CacheMiss` event before it
//! starts — no record on a first build, the context files that changed, the build argument,
//! the base image's digest, the parent step that ran, `--no-cache`.

use std::collections::BTreeMap;

use hoist_export::Output;
use hoist_sandbox::ExitStatus;
use hoist_solver::EventKind;

use crate::case::{Built, Case};

/// A case whose RUN steps succeed, writing nothing.
fn case(dockerfile: &str, files: &[(&str, &str)]) -> Case {
    Case::new(dockerfile, files).script(|_, _| Ok(ExitStatus::Code(0)))
}

/// Each step's miss reason, by its name without the `[i/n] ` numbering.
fn reasons(built: &Built) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for event in &built.events {
        let EventKind::CacheMiss { reason } = &event.kind else {
            continue;
        };
        let name = event.vertex.name.to_string();
        let name = match name.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            Some((_, rest)) if !name.starts_with("[internal]") => rest.to_owned(),
            _ => name,
        };
        out.insert(name, reason.clone());
    }
    out
}

#[test]
fn a_first_build_has_no_record_and_a_touched_file_is_named() {
    let case = case(
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY . /all\nRUN stamp\n",
        &[("a.txt", "a\n"), ("b.txt", "b\n"), ("src/c.txt", "c\n")],
    );
    let first = reasons(&case.build());
    for step in ["COPY a.txt /a.txt", "COPY . /all", "RUN stamp"] {
        assert_eq!(
            first.get(step).map(String::as_str),
            Some("no record of an earlier build of this step"),
            "{first:?}"
        );
    }

    case.write("src/c.txt", "changed\n");
    let second = reasons(&case.build());
    assert!(!second.contains_key("COPY a.txt /a.txt"), "{second:?}");
    assert_eq!(
        second["COPY . /all"], "context files changed: src/c.txt",
        "{second:?}"
    );
    assert_eq!(
        second["[internal] load build context"],
        "context files changed: src/c.txt"
    );
    assert_eq!(second["RUN stamp"], "parent step ran: [2/3] COPY . /all");
    // Unchanged: nothing misses (and the files list of the second build stays).
    let unchanged = reasons(&case.build());
    assert!(unchanged.is_empty(), "{unchanged:?}");

    // A copy names only the changed files it reads.
    case.write("a.txt", "A\n");
    case.write("b.txt", "B\n");
    let third = reasons(&case.build());
    assert_eq!(third["COPY a.txt /a.txt"], "context files changed: a.txt");
    assert_eq!(
        third["COPY . /all"],
        "parent step ran: [1/3] COPY a.txt /a.txt; context files changed: a.txt, b.txt"
    );
}

#[test]
fn a_changed_build_arg_is_named_by_the_run_that_reads_it() {
    let case = case(
        "FROM scratch\nCOPY a.txt /a.txt\nARG VERSION=1\nARG TOKEN=x\nRUN stamp\n",
        &[("a.txt", "a\n")],
    );
    case.build();
    let built = case
        .build_with(|request| {
            let args = &mut request.options.build_args;
            args.insert("VERSION".into(), "2".into());
            args.insert("TOKEN".into(), "secret-value".into());
        })
        .unwrap();
    let reasons = reasons(&built);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(
        reasons["RUN stamp"],
        "build arg or env changed: TOKEN, VERSION"
    );
    // Values are never recorded, only digests of them.
    let steps = case.state().root().join("engine").join("steps");
    for entry in std::fs::read_dir(steps).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("secret-value"), "{text}");
    }
}

#[test]
fn no_cache_and_an_unchanged_rerun_say_why() {
    let case = case(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN stamp\n",
        &[("a.txt", "a\n")],
    );
    case.build();
    let built = case
        .build_with(|request| request.options.no_cache = true)
        .unwrap();
    let reasons = reasons(&built);
    assert_eq!(reasons["RUN stamp"], "--no-cache", "{reasons:?}");
    assert_eq!(reasons["COPY a.txt /a.txt"], "--no-cache");
}

#[test]
fn a_changed_base_image_digest_is_named_and_its_children_say_it_ran() {
    let base = case("FROM scratch\nCOPY a.txt /a.txt\n", &[("a.txt", "a\n")]);
    let child = "FROM misses-base\nRUN stamp\n";
    let build_base = || {
        base.build_with(|request| {
            request.outputs =
                Output::parse_all(&["type=image,name=misses-base".to_owned()]).unwrap();
        })
        .unwrap();
    };
    let build_child = || {
        base.build_with(|request| request.dockerfile = Some(child.as_bytes().to_vec()))
            .unwrap()
    };
    build_base();
    build_child();
    base.write("a.txt", "changed\n");
    build_base();
    let reasons = reasons(&build_child());
    let from = reasons
        .iter()
        .find(|(name, _)| name.starts_with("FROM "))
        .map(|(_, r)| r.clone())
        .unwrap_or_default();
    let digests = from
        .strip_prefix("base image digest changed: ")
        .and_then(|d| d.split_once(" -> "));
    let Some((old, new)) = digests else {
        panic!("{reasons:?}");
    };
    assert!(old.starts_with("sha256:") && old.len() == 19, "{from}");
    assert!(new.starts_with("sha256:") && new.len() == 19, "{from}");
    assert_ne!(old, new);
    assert!(
        reasons["RUN stamp"]
            .starts_with("parent step ran: [1/2] FROM docker.io/library/misses-base"),
        "{reasons:?}"
    );
}
