//! Bad build inputs, through the `hoist` binary against one warm state dir: a Git URL that
//! does not exist, a ref that does not exist, a "tarball" that is not one, a secret file
//! that is missing, `--ssh default` without an agent, a key file that is missing, a
//! `required` secret not given, an OCI layout that is not there. Each fails with an error
//! naming the input, and leaves the state dir as it found it: no file added or removed
//! outside the bare Git repositories of `engine/git/` (a fetch that found nothing may keep
//! the repository it made, as BuildKit keeps its git snapshots) and the build history (each
//! failed build is recorded there, as in buildx), so no prepared context,
//! ingest, active snapshot, lease, cache record or blob is left behind.

use std::collections::BTreeSet;
use std::path::Path;

use hoist_testkit::git::{GitHttpServer, Repo};
use hoist_testkit::http::{FileServer, Served};

use crate::build_env::BuildEnv;

/// Every path under the state dir; left out: the bare Git repositories, the build history
/// (a failed build is recorded, as buildx's history keeps it), and the directory prepared
/// contexts go in (made by the first remote context; what matters is that nothing is left
/// inside it).
fn listing(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| {
            !e.path().starts_with(root.join("engine/git"))
                && !e.path().starts_with(root.join("engine/history"))
        })
        .filter(|e| {
            e.as_ref()
                .map_or(true, |e| e.path() != root.join("engine/prepared-contexts"))
        })
        .map(|e| {
            let e = e.unwrap();
            e.path().strip_prefix(root).unwrap().display().to_string()
        })
        .collect()
}

#[test]
fn bad_inputs_fail_naming_the_input_and_leave_the_state_dir_as_it_was() {
    let Some(env) = BuildEnv::new() else {
        return;
    };
    let ctx = env.fresh_dir("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=tok --mount=type=ssh true\n",
    )
    .unwrap();
    let ctx_arg = ctx.display().to_string();
    // Warm: the base image and the RUN are in the store before the bad builds.
    let mut warm = env.command(&["build", "--progress=plain", &ctx_arg]);
    let agent = tempfile::tempdir().unwrap();
    let agent_sock = agent.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent_sock).unwrap();
    warm.env("SSH_AUTH_SOCK", &agent_sock)
        .args(["--ssh", "default"]);
    let out = warm.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = listing(&env.root());

    let git = GitHttpServer::start().unwrap();
    let repo = Repo::init(&git.root().join("app.git")).unwrap();
    repo.write("Dockerfile", "FROM busybox\n").unwrap();
    repo.commit("first").unwrap();
    let files = FileServer::start().unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    files.serve("/context.tar.gz", Served::new(garbage));
    let missing_file = env.fresh_dir("none").join("no-such-file");
    let missing = missing_file.display().to_string();
    let required = env.fresh_dir("required");
    std::fs::write(
        required.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=needed,required=true true\n",
    )
    .unwrap();
    let required_arg = required.display().to_string();

    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "a Git repository that does not exist",
            vec![git.url("missing.git")],
            git.url("missing.git"),
        ),
        (
            "a Git ref that does not exist",
            vec![format!("{}#no-such-ref", git.url("app.git"))],
            "no-such-ref".into(),
        ),
        (
            "a tarball that is not one",
            vec![files.url("/context.tar.gz")],
            files.url("/context.tar.gz"),
        ),
        (
            "a secret file that is missing",
            vec![
                "--secret".into(),
                format!("id=tok,src={missing}"),
                ctx_arg.clone(),
            ],
            missing.clone(),
        ),
        (
            "--ssh default without an agent",
            vec!["--ssh".into(), "default".into(), ctx_arg.clone()],
            "SSH_AUTH_SOCK".into(),
        ),
        (
            "an ssh key file that is missing",
            vec!["--ssh".into(), format!("deploy={missing}"), ctx_arg.clone()],
            missing.clone(),
        ),
        (
            "a required secret not given",
            vec![required_arg],
            "needed".into(),
        ),
        (
            "an OCI layout that is not there",
            vec![
                "--build-context".into(),
                format!("base=oci-layout://{missing}"),
                ctx_arg.clone(),
            ],
            missing.clone(),
        ),
    ];
    for (what, args, named) in cases {
        let mut all = vec!["build".to_owned(), "--progress=plain".to_owned()];
        all.extend(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = env
            .command(&all)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: the build succeeded\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        assert!(
            last.starts_with("ERROR: ") && stderr.contains(&named),
            "{what}: the error should name {named:?}:\n{stderr}"
        );
        eprintln!("{what}: {last}");
        let after = listing(&env.root());
        let added: Vec<_> = after.difference(&before).collect();
        let removed: Vec<_> = before.difference(&after).collect();
        assert!(
            added.is_empty() && removed.is_empty(),
            "{what}: the state dir changed: added {added:?}, removed {removed:?}"
        );
    }
}
