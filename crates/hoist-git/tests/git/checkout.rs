//! Fetching refs of every kind, subdirs, kept `.git`s, submodules, tokens and the errors
//! a user sees.

use std::path::Path;

use hoist_git::{checkout, resolve_commit, Auth, Error, GitRef};
use hoist_testkit::git::{GitDaemon, GitHttpServer, Repo};

/// A served repository: `main` with two commits, a lightweight tag `v1` and an annotated
/// tag `v2` on the first, a branch `feature`, and `refs/pull/42/head`.
struct Fixture {
    server: GitHttpServer,
    repo: Repo,
    first: String,
    second: String,
    feature: String,
    pull: String,
    cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let server = GitHttpServer::start().unwrap();
        let repo = Repo::init(&server.root().join("app.git")).unwrap();
        repo.write("README", "first\n").unwrap();
        repo.write("dir/sub/file.txt", "in a subdir\n").unwrap();
        let first = repo.commit("first").unwrap();
        repo.tag("v1").unwrap();
        repo.annotated_tag("v2", "annotated").unwrap();
        repo.write("README", "second\n").unwrap();
        let second = repo.commit("second").unwrap();
        repo.branch("feature").unwrap();
        repo.write("feature.txt", "feature\n").unwrap();
        let feature = repo.commit("feature").unwrap();
        repo.write("pull.txt", "pull\n").unwrap();
        let pull = repo.commit("pull request").unwrap();
        repo.set_ref("refs/pull/42/head", &pull).unwrap();
        repo.git(&["reset", "-q", "--hard", &feature]).unwrap();
        repo.switch("main").unwrap();
        Fixture {
            server,
            repo,
            first,
            second,
            feature,
            pull,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self, fragment: &str) -> String {
        format!("{}{fragment}", self.server.url("app.git"))
    }

    fn checkout(&self, fragment: &str) -> (tempfile::TempDir, hoist_git::Result<String>) {
        self.checkout_with(fragment, &Auth::none())
    }

    fn checkout_with(
        &self,
        fragment: &str,
        auth: &Auth,
    ) -> (tempfile::TempDir, hoist_git::Result<String>) {
        let dest = tempfile::tempdir().unwrap();
        let git_ref = GitRef::parse(&self.url(fragment)).unwrap();
        let result = checkout(&git_ref, dest.path(), auth, self.cache.path()).map(|c| c.commit);
        (dest, result)
    }
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn fetches_the_default_branch_branches_tags_and_refs() {
    let f = Fixture::new();
    let (dest, commit) = f.checkout("");
    assert_eq!(commit.unwrap(), f.second);
    assert_eq!(read(dest.path(), "README"), "second\n");
    assert_eq!(names(dest.path()), ["README", "dir"], "no .git by default");

    let (dest, commit) = f.checkout("#feature");
    assert_eq!(commit.unwrap(), f.feature);
    assert_eq!(read(dest.path(), "feature.txt"), "feature\n");

    for tag in ["#v1", "#refs/tags/v1", "#v2", "#refs/tags/v2"] {
        let (dest, commit) = f.checkout(tag);
        assert_eq!(commit.unwrap(), f.first, "{tag}");
        assert_eq!(read(dest.path(), "README"), "first\n", "{tag}");
    }

    let (dest, commit) = f.checkout("#pull/42/head");
    assert_eq!(commit.unwrap(), f.pull);
    assert_eq!(read(dest.path(), "pull.txt"), "pull\n");
}

#[test]
fn fetches_a_commit_by_its_sha() {
    let f = Fixture::new();
    // Not the tip of any ref, so only a fetch by SHA (or of everything) brings it.
    let (dest, commit) = f.checkout(&format!("#{}", f.first));
    assert_eq!(commit.unwrap(), f.first);
    assert_eq!(read(dest.path(), "README"), "first\n");
}

#[test]
fn a_subdir_becomes_the_root() {
    let f = Fixture::new();
    let (dest, commit) = f.checkout("#v1:dir");
    assert_eq!(commit.unwrap(), f.first);
    assert_eq!(names(dest.path()), ["sub"]);
    assert_eq!(read(dest.path(), "sub/file.txt"), "in a subdir\n");
    let (dest, _) = f.checkout("#:dir/sub");
    assert_eq!(names(dest.path()), ["file.txt"]);

    let (_, missing) = f.checkout("#:nope");
    let err = missing.unwrap_err();
    assert!(matches!(err, Error::Subdir { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let (_, file) = f.checkout("#:README");
    assert!(file.unwrap_err().to_string().contains("not a directory"));
}

#[test]
fn keep_git_dir_keeps_a_usable_repository_without_credentials() {
    let f = Fixture::new();
    let (dest, commit) = f.checkout("?keep-git-dir=true#v2");
    assert_eq!(commit.unwrap(), f.first);
    let checkout = Repo::open(dest.path());
    assert_eq!(checkout.head().unwrap(), f.first);
    // The annotated tag keeps its tag object.
    assert_eq!(
        checkout.rev_parse("refs/tags/v2").unwrap(),
        f.repo.rev_parse("v2").unwrap()
    );
    let origin = checkout.git(&["remote", "get-url", "origin"]).unwrap();
    assert_eq!(origin.trim(), f.url(""));
    assert!(!dest.path().join(".git/FETCH_HEAD").exists());
    let status = checkout.git(&["status", "--porcelain"]).unwrap();
    assert_eq!(status, "", "a clean work tree");
}

#[test]
fn submodules_are_checked_out_recursively() {
    let f = Fixture::new();
    let lib = Repo::init(&f.server.root().join("lib.git")).unwrap();
    lib.write("lib.txt", "lib\n").unwrap();
    lib.commit("lib").unwrap();
    let app = Repo::init(&f.server.root().join("withsub.git")).unwrap();
    app.write("app.txt", "app\n").unwrap();
    app.add_submodule(&f.server.url("lib.git"), "vendor/lib")
        .unwrap();
    let commit = app.commit("with a submodule").unwrap();

    let git_ref = GitRef::parse(&f.server.url("withsub.git")).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = checkout(&git_ref, dest.path(), &Auth::none(), f.cache.path()).unwrap();
    assert_eq!(out.commit, commit);
    assert_eq!(read(dest.path(), "vendor/lib/lib.txt"), "lib\n");
    assert!(
        !dest.path().join("vendor/lib/.git").exists(),
        "no .git left"
    );
    assert!(!dest.path().join(".git").exists());

    let no_sub =
        GitRef::parse(&format!("{}?submodules=false", f.server.url("withsub.git"))).unwrap();
    let dest = tempfile::tempdir().unwrap();
    checkout(&no_sub, dest.path(), &Auth::none(), f.cache.path()).unwrap();
    assert!(!dest.path().join("vendor/lib/lib.txt").exists());
}

#[test]
fn a_private_repository_needs_its_token() {
    let f = Fixture::new();
    f.server.require_token("s3cr3t-token");
    let (_, denied) = f.checkout("#main");
    let err = denied.unwrap_err().to_string();
    assert!(err.contains(&f.url("")) && err.contains("main"), "{err}");
    assert!(
        err.contains("GIT_AUTH_TOKEN"),
        "says how to give a token: {err}"
    );

    let secrets = |id: &str| (id == "GIT_AUTH_TOKEN").then(|| b"s3cr3t-token".to_vec());
    let git_ref = GitRef::parse(&f.url("")).unwrap();
    let auth = Auth::from_secrets(&git_ref.remote, secrets);
    let (dest, commit) = f.checkout_with("#main", &auth);
    assert_eq!(commit.unwrap(), f.second);
    assert_eq!(read(dest.path(), "README"), "second\n");

    let wrong = Auth::none().with_token("wrong-token");
    let (_, denied) = f.checkout_with("#main", &wrong);
    let err = denied.unwrap_err().to_string();
    assert!(!err.contains("wrong-token"), "{err}");
}

#[test]
fn missing_repositories_and_refs_are_named() {
    let f = Fixture::new();
    let (_, missing) = f.checkout("#nope");
    let err = missing.unwrap_err();
    assert!(matches!(err, Error::RefNotFound { .. }), "{err}");
    assert!(err.to_string().contains(&f.url("")) && err.to_string().contains("nope"));

    let other = GitRef::parse(&format!("{}#main", f.server.url("absent.git"))).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = checkout(&other, dest.path(), &Auth::none(), f.cache.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&f.server.url("absent.git")) && text.contains("main"),
        "{text}"
    );
    assert!(text.contains("not found"), "git's own words: {text}");

    let sha = "0123456789012345678901234567890123456789";
    let (_, absent) = f.checkout(&format!("#{sha}"));
    let text = absent.unwrap_err().to_string();
    assert!(text.contains(sha) && text.contains(&f.url("")), "{text}");
}

#[test]
fn credentials_in_the_url_never_reach_a_message() {
    let f = Fixture::new();
    let url = f
        .server
        .url("absent.git")
        .replace("http://", "http://user:hunter2@");
    let git_ref = GitRef::parse(&format!("{url}#main")).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = checkout(&git_ref, dest.path(), &Auth::none(), f.cache.path()).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("xxxxx"), "{text}");
}

#[test]
fn option_injection_is_refused() {
    let f = Fixture::new();
    let marker = f.cache.path().join("pwned");
    let evil = format!("--upload-pack=touch {}", marker.display());
    // As a ref: refused before git runs.
    let git_ref = GitRef::from_parts(&f.url(""), Some(&evil), None).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = checkout(&git_ref, dest.path(), &Auth::none(), f.cache.path()).unwrap_err();
    assert!(matches!(err, Error::InvalidRef { .. }), "{err}");
    // As a remote: not a URL git would take for an option, so not a git URL at all.
    assert!(GitRef::parse(&evil).is_err());
    // A ref that is an option once git strips `refs/`: still after `--`, so a ref name.
    let sneaky = GitRef::from_parts(&f.url(""), Some("refs/--upload-pack=touch"), None).unwrap();
    let err = checkout(&sneaky, dest.path(), &Auth::none(), f.cache.path()).unwrap_err();
    assert!(matches!(err, Error::RefNotFound { .. }), "{err}");
    assert!(!marker.exists());
}

#[test]
fn a_pinned_checksum_must_match() {
    let f = Fixture::new();
    let (dest, ok) = f.checkout(&format!("?checksum={}#v1", f.first));
    assert_eq!(ok.unwrap(), f.first);
    assert_eq!(read(dest.path(), "README"), "first\n");
    let (_, short) = f.checkout(&format!("?checksum={}#v1", &f.first[..12]));
    assert_eq!(short.unwrap(), f.first, "a prefix pins too, as in BuildKit");
    let (_, wrong) = f.checkout(&format!("?checksum={}#main", f.first));
    let err = wrong.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&f.first) && text.contains(&f.second),
        "{text}"
    );
    let (_, bad) = f.checkout("?checksum=nothex#main");
    assert!(matches!(bad.unwrap_err(), Error::InvalidChecksum { .. }));
}

#[test]
fn a_second_fetch_uses_the_cached_repository() {
    let f = Fixture::new();
    let (_, commit) = f.checkout("#main");
    assert_eq!(commit.unwrap(), f.second);
    let posts = |f: &Fixture| {
        f.server
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    };

    // The same commit again asks only which commit `main` is.
    let before = posts(&f);
    let git_ref = GitRef::parse(&f.url("#main")).unwrap();
    resolve_commit(&git_ref, &Auth::none()).unwrap();
    let resolve_only = posts(&f) - before;
    let before = posts(&f);
    let (dest, commit) = f.checkout("#main");
    assert_eq!(commit.unwrap(), f.second);
    assert_eq!(
        posts(&f) - before,
        resolve_only,
        "no fetch for a cached commit"
    );
    assert_eq!(read(dest.path(), "README"), "second\n");

    // main moves: the next fetch brings the new commit.
    f.repo.write("README", "third\n").unwrap();
    let third = f.repo.commit("third").unwrap();
    let (dest, commit) = f.checkout("#main");
    assert_eq!(commit.unwrap(), third);
    assert_eq!(read(dest.path(), "README"), "third\n");
    let repos = names(f.cache.path())
        .iter()
        .filter(|n| n.ends_with(".git"))
        .count();
    assert_eq!(repos, 1, "one bare repository per remote");
}

#[test]
fn two_processes_share_the_cache() {
    let f = Fixture::new();
    let git_ref = GitRef::parse(&f.url("#feature")).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let dest = tempfile::tempdir().unwrap();
                    let out = checkout(&git_ref, dest.path(), &Auth::none(), f.cache.path());
                    (
                        out.map(|c| c.commit).unwrap(),
                        read(dest.path(), "feature.txt"),
                    )
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(
                handle.join().unwrap(),
                (f.feature.clone(), "feature\n".to_owned())
            );
        }
    });
}

#[test]
fn git_protocol_remotes() {
    let f = Fixture::new();
    let daemon = GitDaemon::start(f.server.root()).unwrap();
    let git_ref = GitRef::parse(&format!("{}#v1", daemon.url("app.git"))).unwrap();
    assert!(git_ref.unencrypted_tcp);
    let dest = tempfile::tempdir().unwrap();
    let out = checkout(&git_ref, dest.path(), &Auth::none(), f.cache.path()).unwrap();
    assert_eq!(out.commit, f.first);
    assert_eq!(read(dest.path(), "README"), "first\n");
}

#[test]
fn a_commit_is_found_when_the_server_refuses_fetches_by_sha() {
    let f = Fixture::new();
    f.repo
        .git(&["config", "uploadpack.allowAnySHA1InWant", "false"])
        .unwrap();
    let (dest, commit) = f.checkout(&format!("#{}", f.first));
    assert_eq!(commit.unwrap(), f.first);
    assert_eq!(read(dest.path(), "README"), "first\n");
}

#[test]
fn ssh_remotes_use_the_agent_and_known_hosts() {
    let ssh = match hoist_testkit::git::SshServer::start() {
        Ok(ssh) => ssh,
        Err(e) if e.is_missing_prerequisite() => {
            return hoist_testkit::skip(&format!("ssh remotes: {e}"));
        }
        Err(e) => panic!("{e}"),
    };
    let f = Fixture::new();
    let url = format!("{}#v1", ssh.url(f.repo.dir()));
    let git_ref = GitRef::parse(&url).unwrap();
    let fetch = |auth: &Auth| {
        let dest = tempfile::tempdir().unwrap();
        let result = checkout(&git_ref, dest.path(), auth, f.cache.path());
        (dest, result)
    };

    let (dest, out) = fetch(&Auth::none().with_ssh_agent(ssh.agent_socket()));
    assert_eq!(out.unwrap().commit, f.first);
    assert_eq!(read(dest.path(), "README"), "first\n");

    let known = Auth::none()
        .with_ssh_agent(ssh.agent_socket())
        .with_known_hosts(&ssh.known_hosts().unwrap());
    assert_eq!(fetch(&known).1.unwrap().commit, f.first);

    let (_, denied) = fetch(&Auth::none());
    let text = denied.unwrap_err().to_string();
    assert!(
        text.contains("Permission denied") && text.contains("v1"),
        "{text}"
    );

    // Known hosts that do not list this server: refused, not trusted on first use.
    let wrong_host = Auth::none()
        .with_ssh_agent(ssh.agent_socket())
        .with_known_hosts(
            &ssh.known_hosts()
                .unwrap()
                .replace("[127.0.0.1]", "[127.0.0.2]"),
        );
    let (_, refused) = fetch(&wrong_host);
    let text = refused.unwrap_err().to_string();
    assert!(text.contains("Host key verification failed"), "{text}");
}
