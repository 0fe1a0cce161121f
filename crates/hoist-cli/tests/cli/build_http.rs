//! `ADD http://…` end to end: the built `hoist` against a small HTTP server on 127.0.0.1
//! started by each test (files with `ETag` and `Last-Modified`, `If-None-Match` answered
//! with 304), results read back from `-o type=local`.
//!
//! The server is hoist-testkit's `http::FileServer`: exact control of the headers and a
//! count of the bodies sent.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Output;
use std::time::UNIX_EPOCH;

use crate::build_env::BuildEnv;
use hoist_testkit::http::{FileServer, Served};
use sha2::Digest as _;

/// An environment, a server and a context for one test.
struct Case {
    env: BuildEnv,
    server: FileServer,
    ctx: PathBuf,
}

impl Case {
    fn new() -> Option<Case> {
        let env = BuildEnv::new()?;
        let ctx = env.fresh_dir("ctx");
        Some(Case {
            env,
            server: FileServer::start().unwrap(),
            ctx,
        })
    }

    /// Writes the Dockerfile, `URL` in it replaced by the server's address.
    fn dockerfile(&self, text: &str) {
        let text = text.replace("URL", &self.server.url(""));
        std::fs::write(self.ctx.join("Dockerfile"), text).unwrap();
    }

    fn build_output(&self, dest: &std::path::Path) -> Output {
        let ctx = self.ctx.display().to_string();
        let output = format!("type=local,dest={}", dest.display());
        self.env
            .hoist(&["build", "--progress=plain", "-o", &output, &ctx])
    }

    /// Builds into a fresh directory; the progress text and the directory.
    fn build(&self) -> (String, PathBuf) {
        let dest = self.env.fresh_dir("out");
        let out = self.build_output(&dest);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hoist build failed:\n{stderr}");
        (stderr, dest)
    }

    /// A build that must fail: its stderr.
    fn build_error(&self) -> String {
        let dest = self.env.fresh_dir("out");
        let out = self.build_output(&dest);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "want exit code 1:\n{stderr}");
        stderr
    }
}

const DATE: &str = "Tue, 15 Nov 1994 08:12:31 GMT";
const DATE_SECS: u64 = 784_887_151;

fn file(body: &str, etag: Option<&str>) -> Served {
    Served {
        body: body.as_bytes().to_vec(),
        etag: etag.map(str::to_owned),
        last_modified: Some(DATE.to_owned()),
    }
}

/// Whether the plain progress shows the step whose name contains `part` as `CACHED`.
fn cached(progress: &str, part: &str) -> bool {
    let ids: Vec<&str> = progress
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, text)| text.contains(part))
        .map(|(id, _)| id)
        .collect();
    assert!(!ids.is_empty(), "no step {part:?} in:\n{progress}");
    ids.iter().all(|id| {
        progress
            .lines()
            .any(|l| l == format!("#{id} CACHED").as_str())
    })
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[test]
fn add_url_downloads_with_mode_0600_and_last_modified_then_caches_by_etag() {
    let Some(case) = Case::new() else { return };
    case.server
        .serve("/path/file.txt", file("hello\n", Some("\"v1\"")));
    case.dockerfile("FROM scratch\nADD URL/path/file.txt /dst/\n");

    let (progress, out) = case.build();
    let path = out.join("dst/file.txt");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    let mtime = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(mtime.as_secs(), DATE_SECS);
    assert!(!cached(&progress, "ADD"), "first build ran:\n{progress}");
    assert_eq!(case.server.bodies_sent("/path/file.txt"), 1);

    // Unchanged: the server's ETag matches the recorded download, nothing is fetched.
    let (progress, out) = case.build();
    assert!(cached(&progress, "ADD"), "unchanged file: {progress}");
    assert_eq!(
        std::fs::read_to_string(out.join("dst/file.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(case.server.bodies_sent("/path/file.txt"), 1);

    // Changed content and ETag: downloaded again and rebuilt.
    case.server
        .serve("/path/file.txt", file("changed\n", Some("\"v2\"")));
    let (progress, out) = case.build();
    assert!(!cached(&progress, "ADD"), "changed file: {progress}");
    assert_eq!(
        std::fs::read_to_string(out.join("dst/file.txt")).unwrap(),
        "changed\n"
    );
    assert_eq!(case.server.bodies_sent("/path/file.txt"), 2);
}

#[test]
fn add_url_without_etag_is_keyed_on_the_content() {
    let Some(case) = Case::new() else { return };
    case.server.serve("/plain.txt", file("same\n", None));
    case.dockerfile("FROM scratch\nADD URL/plain.txt /\n");
    let (progress, _) = case.build();
    assert!(!cached(&progress, "ADD"), "{progress}");
    // Without an ETag the file is fetched each time, and the same bytes hit the cache.
    let (progress, out) = case.build();
    assert!(cached(&progress, "ADD"), "{progress}");
    assert_eq!(
        std::fs::read_to_string(out.join("plain.txt")).unwrap(),
        "same\n"
    );
    assert_eq!(case.server.bodies_sent("/plain.txt"), 2);
    case.server.serve("/plain.txt", file("other\n", None));
    let (progress, out) = case.build();
    assert!(!cached(&progress, "ADD"), "{progress}");
    assert_eq!(
        std::fs::read_to_string(out.join("plain.txt")).unwrap(),
        "other\n"
    );
}

#[test]
fn add_url_chmod_and_chown_apply_to_the_copy() {
    let Some(case) = Case::new() else { return };
    case.server
        .serve("/tool.sh", file("#!/bin/sh\n", Some("\"t\"")));
    case.dockerfile("FROM scratch\nADD --chmod=755 --chown=12:34 URL/tool.sh /bin/\n");
    let (_, out) = case.build();
    let meta = std::fs::metadata(out.join("bin/tool.sh")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    // type=local writes files as the exporting user; ownership is checked in the image
    // tests of the copy op, the mode and the bytes here.
    assert_eq!(
        std::fs::read_to_string(out.join("bin/tool.sh")).unwrap(),
        "#!/bin/sh\n"
    );
}

#[test]
fn add_url_checksum_is_verified() {
    let Some(case) = Case::new() else { return };
    case.server
        .serve("/sum.txt", file("pinned\n", Some("\"s\"")));
    let good = sha256(b"pinned\n");
    case.dockerfile(&format!(
        "FROM scratch\nADD --checksum={good} URL/sum.txt /\n"
    ));
    let (_, out) = case.build();
    assert_eq!(
        std::fs::read_to_string(out.join("sum.txt")).unwrap(),
        "pinned\n"
    );
    // The key is the checksum: a rebuild asks the server nothing.
    let sent = case.server.bodies_sent("/sum.txt");
    let (progress, _) = case.build();
    assert!(cached(&progress, "ADD"), "{progress}");
    assert_eq!(case.server.bodies_sent("/sum.txt"), sent);

    let bad = sha256(b"something else\n");
    case.dockerfile(&format!(
        "FROM scratch\nADD --checksum={bad} URL/sum.txt /\n"
    ));
    let stderr = case.build_error();
    let url = case.server.url("/sum.txt");
    assert!(
        stderr.contains(&format!(
            "digest mismatch for {url}: {good} (expected: {bad})"
        )),
        "{stderr}"
    );
    // Nothing half-written is left in the store's ingest dir.
    let ingest = case.env.root().join("ingest");
    assert!(ingest.is_dir(), "{}", ingest.display());
    let left: Vec<_> = std::fs::read_dir(&ingest)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in ingest: {left:?}");
}

#[test]
fn add_url_not_found_names_the_url_and_status() {
    let Some(case) = Case::new() else { return };
    case.dockerfile("FROM scratch\nADD URL/missing.txt /\n");
    let stderr = case.build_error();
    let url = case.server.url("/missing.txt");
    assert!(
        stderr.contains(&format!(
            "failed to download {url}: invalid response status 404"
        )),
        "{stderr}"
    );
}

#[test]
fn add_url_of_a_tar_gz_is_not_extracted() {
    let Some(case) = Case::new() else { return };
    let mut archive = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut archive, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(6);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "inside.txt", &b"inner\n"[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    case.server.serve(
        "/dl/archive.tar.gz",
        Served {
            body: archive.clone(),
            etag: Some("\"a\"".to_owned()),
            last_modified: None,
        },
    );
    case.dockerfile("FROM scratch\nADD URL/dl/archive.tar.gz /x/\n");
    let (_, out) = case.build();
    assert_eq!(
        std::fs::read(out.join("x/archive.tar.gz")).unwrap(),
        archive
    );
    assert!(!out.join("x/inside.txt").exists());
    // No Last-Modified: the Unix epoch, as BuildKit sets it.
    let meta = std::fs::metadata(out.join("x/archive.tar.gz")).unwrap();
    assert_eq!(meta.modified().unwrap(), UNIX_EPOCH);
}

#[test]
fn add_url_retries_unavailable_servers_and_bodies_cut_short() {
    let Some(case) = Case::new() else { return };
    let body = "x".repeat(64 * 1024);
    case.server.serve("/flaky.txt", file(&body, Some("\"f\"")));
    case.server.fail_next(2, 1);
    case.dockerfile("FROM scratch\nADD URL/flaky.txt /\n");
    let (_, out) = case.build();
    assert_eq!(
        std::fs::read_to_string(out.join("flaky.txt")).unwrap(),
        body
    );
    assert_eq!(case.server.bodies_sent("/flaky.txt"), 1);
    // The HEAD shortcut failing falls back to the conditional GET: still no download.
    case.server.fail_next(1, 0);
    let (progress, _) = case.build();
    assert!(cached(&progress, "ADD"), "{progress}");
    assert_eq!(case.server.bodies_sent("/flaky.txt"), 1);
}

#[test]
fn add_of_a_git_url_checks_out_the_ref_with_the_token_secret() {
    let Some(case) = Case::new() else { return };
    let git = hoist_testkit::git::GitHttpServer::start().unwrap();
    let repo = hoist_testkit::git::Repo::init(&git.root().join("repo.git")).unwrap();
    repo.write("dir/hello.txt", "hello from git\n").unwrap();
    repo.commit("first").unwrap();
    repo.tag("v1").unwrap();
    git.require_token("cli-token");
    let url = git.url("repo.git");
    std::fs::write(
        case.ctx.join("Dockerfile"),
        format!("FROM scratch\nADD {url}#v1:dir /src/\n"),
    )
    .unwrap();
    let stderr = case.build_error();
    assert!(
        stderr.contains(&url) && stderr.contains("GIT_AUTH_TOKEN"),
        "{stderr}"
    );

    let token = case.env.fresh_dir("secret").join("token");
    std::fs::write(&token, "cli-token").unwrap();
    let dest = case.env.fresh_dir("out");
    let secret = format!("id=GIT_AUTH_TOKEN,src={}", token.display());
    let output = format!("type=local,dest={}", dest.display());
    let ctx = case.ctx.display().to_string();
    let out = case.env.hoist(&[
        "build",
        "--progress=plain",
        "--secret",
        &secret,
        "-o",
        &output,
        &ctx,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("cli-token"), "{stderr}");
    let hello = std::fs::read_to_string(dest.join("src/hello.txt")).unwrap();
    assert_eq!(hello, "hello from git\n");
}
