//! Git repositories as build contexts (`ContextSource::Git`), served over smart HTTP by
//! hoist-testkit's `git http-backend` on loopback: `#ref:dir` by tag, branch and full ref
//! give the image a local directory with the same files gives (file times clamped by
//! `rewrite-timestamp`, as a checkout's files carry the time of the checkout, in BuildKit
//! too); `BUILDKIT_CONTEXT_KEEP_GIT_DIR=1` keeps `.git`; a private repository needs the
//! `GIT_AUTH_TOKEN` secret; a Git named context; and a repository or ref that does not
//! exist fails naming it, leaving nothing under `<state>/engine/prepared-contexts`.

use hoist_engine::{BuildRequest, ContextSource, SecretSource, Secrets, SshAgents};
use hoist_export::Output;
use hoist_frontend::NamedContext;
use hoist_testkit::git::{GitHttpServer, Repo};

use crate::case::Case;
use crate::remote_context::assert_no_contexts_left;

const EPOCH: i64 = 1_600_000_000;

const DOCKERFILE: &str = "FROM scratch\nCOPY . /\n";

const FILES: &[(&str, &str)] = &[("a.txt", "alpha\n"), ("sub/b.txt", "beta\n")];

/// A repository `app.git` whose `app/` holds the Dockerfile and [`FILES`] (and whose root
/// holds another file), tagged `v1`, on branch `main`.
fn served() -> (GitHttpServer, Repo) {
    let server = GitHttpServer::start().unwrap();
    let repo = Repo::init(&server.root().join("app.git")).unwrap();
    repo.write("app/Dockerfile", DOCKERFILE).unwrap();
    for (path, text) in FILES {
        repo.write(&format!("app/{path}"), text).unwrap();
    }
    repo.write("outside.txt", "not in app/\n").unwrap();
    repo.commit("first").unwrap();
    repo.tag("v1").unwrap();
    (server, repo)
}

/// A dated build into an OCI archive with file times clamped to [`EPOCH`]; its manifest
/// digest.
fn digest(case: &Case, edit: impl FnOnce(&mut BuildRequest)) -> String {
    let archive = case.context_dir().with_file_name("image.tar");
    let built = case
        .build_with(|request| {
            request.outputs = Output::parse_all(&[format!(
                "type=oci,dest={},rewrite-timestamp=true",
                archive.display()
            )])
            .unwrap();
            request
                .options
                .build_args
                .insert("SOURCE_DATE_EPOCH".into(), EPOCH.to_string());
            edit(request);
        })
        .unwrap();
    built.result.export.metadata().digest.unwrap().to_string()
}

/// The request's context replaced by the Git URL `url`, its Dockerfile read from there.
fn from_git(url: String) -> impl FnOnce(&mut BuildRequest) {
    move |request| {
        request.context = ContextSource::Git(url);
        request.dockerfile = None;
        request.dockerfile_name = "Dockerfile".into();
    }
}

#[test]
fn a_git_context_gives_the_image_of_the_same_files_in_a_directory() {
    let (server, _repo) = served();
    let url = server.url("app.git");
    let local = digest(&Case::new(DOCKERFILE, FILES), |_| {});
    for fragment in ["#v1:app", "#main:app", "#refs/tags/v1:app"] {
        // A state dir of its own each time: equal digests mean equal layers.
        let case = Case::new("unused", &[]);
        let from_git = digest(&case, from_git(format!("{url}{fragment}")));
        assert_eq!(from_git, local, "{url}{fragment}");
        assert_no_contexts_left(&case);
    }
}

#[test]
fn keep_git_dir_build_arg_keeps_the_repository() {
    let (server, repo) = served();
    let url = format!("{}#main", server.url("app.git"));
    let dockerfile = "FROM scratch\nCOPY . /ctx/\n";
    repo.write("Dockerfile", dockerfile).unwrap();
    let commit = repo.commit("a Dockerfile at the root").unwrap();

    let case = Case::new("unused", &[]);
    let built = case.build_with(from_git(url.clone())).unwrap();
    assert_eq!(built.read("ctx/outside.txt"), "not in app/\n");
    assert!(!built.out.join("ctx/.git").exists(), "no .git unless asked");

    let built = case
        .build_with(|request| {
            from_git(url)(request);
            request
                .options
                .build_args
                .insert("BUILDKIT_CONTEXT_KEEP_GIT_DIR".into(), "1".into());
        })
        .unwrap();
    assert_eq!(Repo::open(&built.out.join("ctx")).head().unwrap(), commit);
}

#[test]
fn a_private_git_context_needs_the_token_secret() {
    let (server, _repo) = served();
    server.require_token("tok-ctx");
    let url = format!("{}#v1:app", server.url("app.git"));
    let case = Case::new("unused", &[]);
    let text = case
        .build_with(from_git(url.clone()))
        .err()
        .expect("no token, no access")
        .to_string();
    assert!(text.contains(&server.url("app.git")), "{text}");
    assert!(!text.contains("tok-ctx"), "{text}");
    assert_no_contexts_left(&case);

    let mut secrets = Secrets::new();
    secrets.insert(
        "GIT_AUTH_TOKEN".into(),
        SecretSource::Value(b"tok-ctx".to_vec()),
    );
    let built = case
        .build_with(|request| {
            from_git(url)(request);
            request.secrets = secrets;
        })
        .unwrap();
    assert_eq!(built.read("a.txt"), "alpha\n");
}

#[test]
fn a_git_named_context_is_checked_out() {
    let (server, _repo) = served();
    let case = Case::new("FROM scratch\nCOPY --from=src sub/b.txt /b.txt\n", &[]);
    let built = case
        .build_with(|request| {
            let name = "src".to_owned();
            request.named_contexts.insert(
                name.clone(),
                ContextSource::Git(format!("{}#v1:app", server.url("app.git"))),
            );
            request
                .options
                .named_contexts
                .insert(name.clone(), NamedContext::Local(name));
        })
        .unwrap();
    assert_eq!(built.read("b.txt"), "beta\n");
}

#[test]
fn a_missing_repository_or_ref_fails_naming_it() {
    let (server, _repo) = served();
    let case = Case::new("unused", &[]);

    let missing = server.url("missing.git");
    let text = case
        .build_with(from_git(missing.clone()))
        .err()
        .unwrap()
        .to_string();
    assert!(text.contains(&missing), "{text}");
    assert_no_contexts_left(&case);

    let url = server.url("app.git");
    let text = case
        .build_with(from_git(format!("{url}#no-such-ref")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&url) && text.contains("no-such-ref"),
        "{text}"
    );
    assert_no_contexts_left(&case);
}

#[test]
fn an_ssh_git_context_and_add_use_the_default_ssh_agent() {
    let ssh = match hoist_testkit::git::SshServer::start() {
        Ok(ssh) => ssh,
        Err(e) if e.is_missing_prerequisite() => {
            return hoist_testkit::skip(&format!("ssh git contexts: {e}"));
        }
        Err(e) => panic!("{e}"),
    };
    let (server, _repo) = served();
    let repo_dir = server.root().join("app.git");
    let url = format!("{}#v1:app", ssh.url(&repo_dir));
    let case = Case::new("unused", &[]);

    // No --ssh: git cannot authenticate, and says which remote.
    let text = case
        .build_with(from_git(url.clone()))
        .err()
        .expect("no agent, no access")
        .to_string();
    assert!(text.contains(&ssh.url(&repo_dir)), "{text}");
    assert_no_contexts_left(&case);

    // --ssh default=<the agent's socket>: the context and an ADD of the same repository.
    let mut agents = SshAgents::new();
    agents.insert("default", vec![ssh.agent_socket()]);
    let built = case
        .build_with(|request| {
            from_git(url)(request);
            request.dockerfile = Some(
                format!(
                    "FROM scratch\nCOPY a.txt /a.txt\nADD {}#v1:app/sub /added/\n",
                    ssh.url(&repo_dir)
                )
                .into_bytes(),
            );
            request.ssh = agents;
        })
        .unwrap();
    assert_eq!(built.read("a.txt"), "alpha\n");
    assert_eq!(built.read("added/b.txt"), "beta\n");
    assert_no_contexts_left(&case);
}
