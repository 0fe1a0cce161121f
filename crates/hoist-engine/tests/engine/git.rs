//! `ADD <git url>` from hoist-testkit's git server on loopback: a ref and subdir checked
//! out, `--keep-git-dir`, a cache key on the resolved commit (a moved branch rebuilds), a
//! private repository reached with the `GIT_AUTH_TOKEN` secret, `--checksum` pinning.

use hoist_engine::{SecretSource, Secrets};
use hoist_testkit::git::{GitHttpServer, Repo};

use crate::case::Case;

fn served() -> (GitHttpServer, Repo, String) {
    let server = GitHttpServer::start().unwrap();
    let repo = Repo::init(&server.root().join("app.git")).unwrap();
    repo.write("README", "v1\n").unwrap();
    repo.write("dir/a.txt", "a\n").unwrap();
    let commit = repo.commit("first").unwrap();
    repo.tag("v1").unwrap();
    (server, repo, commit)
}

#[test]
fn add_git_url_checks_out_the_ref_and_subdir() {
    let (server, repo, _) = served();
    let url = server.url("app.git");
    let case = Case::new(
        &format!("FROM scratch\nADD {url}#v1:dir /sub/\nADD {url}#main /all/\n"),
        &[],
    );
    let built = case.build();
    assert_eq!(built.read("sub/a.txt"), "a\n");
    assert!(!built.out.join("sub/README").exists());
    assert_eq!(built.read("all/README"), "v1\n");
    assert!(!built.out.join("all/.git").exists(), "no .git unless asked");

    // Unchanged commit: both steps cached.
    let built = case.build();
    assert_eq!(built.outcome(":dir"), "cached");
    assert_eq!(built.outcome("#main"), "cached");

    // main moves: its step runs again, the tag's stays cached.
    repo.write("README", "v2\n").unwrap();
    repo.commit("second").unwrap();
    let built = case.build();
    assert_eq!(built.outcome(":dir"), "cached");
    assert_eq!(built.outcome("#main"), "done");
    assert_eq!(built.read("all/README"), "v2\n");
}

#[test]
fn add_keep_git_dir_keeps_the_repository() {
    let (server, _, commit) = served();
    let case = Case::new(
        &format!(
            "FROM scratch\nADD --keep-git-dir=true {}#v1 /src/\n",
            server.url("app.git")
        ),
        &[],
    );
    let built = case.build();
    let kept = Repo::open(&built.out.join("src"));
    assert_eq!(kept.head().unwrap(), commit);
    assert_eq!(built.read("src/README"), "v1\n");
}

#[test]
fn add_git_url_of_a_private_repository_uses_the_token_secret() {
    let (server, _, _) = served();
    server.require_token("tok-123");
    let case = Case::new(
        &format!("FROM scratch\nADD {}#v1 /src/\n", server.url("app.git")),
        &[],
    );
    let err = case.build_with(|_| {}).err().expect("no token, no access");
    let text = err.to_string();
    assert!(
        text.contains(&server.url("app.git")) && text.contains("v1"),
        "{text}"
    );
    let mut secrets = Secrets::new();
    secrets.insert(
        "GIT_AUTH_TOKEN".into(),
        SecretSource::Value(b"tok-123".to_vec()),
    );
    let built = case
        .build_with(|request| request.secrets = secrets.clone())
        .unwrap();
    assert_eq!(built.read("src/README"), "v1\n");
}

#[test]
fn add_git_url_with_a_checksum_must_match() {
    let (server, _, commit) = served();
    let url = server.url("app.git");
    let ok = Case::new(
        &format!("FROM scratch\nADD --checksum={commit} {url}#v1 /src/\n"),
        &[],
    );
    assert_eq!(ok.build().read("src/README"), "v1\n");
    let wrong = "0".repeat(40);
    let bad = Case::new(
        &format!("FROM scratch\nADD --checksum={wrong} {url}#v1 /src/\n"),
        &[],
    );
    let text = bad.build_with(|_| {}).err().unwrap().to_string();
    assert!(text.contains(&wrong) && text.contains(&commit), "{text}");
}
