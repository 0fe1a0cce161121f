//! Build contexts that are not a local directory (`ContextSource`), served by
//! `hoist_testkit::http::FileServer` or piped: a remote tarball in each compression and a
//! piped tar give the very image (same digest) a local directory with the same files and
//! times gives; a URL that is not an archive is the Dockerfile; `-f` names the Dockerfile
//! inside a tarball; a remote context's `.dockerignore` is not read (BuildKit's rule); a
//! named http context is the downloaded file; and every bad input fails naming it, leaving
//! nothing under `<state>/engine/prepared-contexts`.
//!
//! Every build runs in a state dir of its own, so no step is a cache hit of another
//! build: equal digests mean equal layers.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hoist_engine::{BuildRequest, ContextSource, TarStream};
use hoist_export::Output;
use hoist_testkit::http::{FileServer, Served};

use crate::case::Case;

/// Every file time of the contexts (whole seconds: a tar header keeps no more).
const MTIME: i64 = 1_600_000_000;

const DOCKERFILE: &str = "FROM scratch\nCOPY . /\n";

/// A context directory's files besides the Dockerfile.
const FILES: &[(&str, &str)] = &[("a.txt", "alpha\n"), ("sub/b.txt", "beta\n")];

/// Sets the times of everything under `dir`, `dir` included, to [`MTIME`].
fn fix_times(dir: &Path) {
    let time = filetime::FileTime::from_unix_time(MTIME, 0);
    for entry in walkdir::WalkDir::new(dir).contents_first(true) {
        let entry = entry.unwrap();
        filetime::set_symlink_file_times(entry.path(), time, time).unwrap();
    }
}

/// A tar of `dir`'s contents (modes and times as they are, no `./` entry).
fn tar_of(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut entries: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(dir).unwrap();
        builder.append_path_with_name(&path, rel).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `bytes` through `tool -c` (`None`: as they are); `None` when the tool is missing.
fn compress(tool: Option<&str>, bytes: &[u8]) -> Option<Vec<u8>> {
    let Some(tool) = tool else {
        return Some(bytes.to_vec());
    };
    let child = std::process::Command::new(tool)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        hoist_testkit::skip(&format!("{tool} is not installed"));
        return None;
    };
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    Some(out.stdout)
}

/// A dated build exporting an OCI archive into `case`'s directory, after `edit`; the
/// manifest digest.
fn build_digest(case: &Case, edit: impl FnOnce(&mut BuildRequest)) -> String {
    let archive = case.context_dir().with_file_name("image.tar");
    let built = case
        .build_with(|request| {
            request.outputs =
                Output::parse_all(&[format!("type=oci,dest={}", archive.display())]).unwrap();
            request
                .options
                .build_args
                .insert("SOURCE_DATE_EPOCH".into(), MTIME.to_string());
            edit(request);
        })
        .unwrap();
    let metadata = built.result.export.metadata();
    metadata.digest.expect("an image digest").to_string()
}

/// The request's context and Dockerfile replaced: `source`, its Dockerfile read from it.
fn from_source(source: ContextSource, dockerfile_name: &str) -> impl FnOnce(&mut BuildRequest) {
    let name = dockerfile_name.to_owned();
    move |request| {
        request.context = source;
        request.dockerfile = None;
        request.dockerfile_name = name;
    }
}

/// The local build everything is compared with, and the tar of its context.
fn local_reference() -> (String, Vec<u8>) {
    let case = Case::new(DOCKERFILE, FILES);
    fix_times(&case.context_dir());
    let digest = build_digest(&case, |_| {});
    (digest, tar_of(&case.context_dir()))
}

/// Nothing left under `<state>/engine/prepared-contexts` of `case` (also for `git_context`).
pub(crate) fn assert_no_contexts_left(case: &Case) {
    let dir = case.state().engine_dir().join("prepared-contexts");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
}

#[test]
fn a_remote_tarball_in_each_compression_gives_the_image_of_the_local_directory() {
    let (local, tar) = local_reference();
    let server = FileServer::start().unwrap();
    for (path, tool) in [
        ("/ctx.tar", None),
        ("/ctx.tar.gz", Some("gzip")),
        ("/ctx.tar.bz2", Some("bzip2")),
        ("/ctx.tar.xz", Some("xz")),
        ("/ctx.tar.zst", Some("zstd")),
    ] {
        let Some(body) = compress(tool, &tar) else {
            continue;
        };
        server.serve(path, Served::new(body));
        let case = Case::new("unused", &[]);
        let source = ContextSource::Http(server.url(path));
        let digest = build_digest(&case, from_source(source, "Dockerfile"));
        assert_eq!(digest, local, "{path}");
        assert_no_contexts_left(&case);
    }
}

#[test]
fn a_piped_tar_gives_the_image_of_the_local_directory() {
    let (local, tar) = local_reference();
    let gz = compress(Some("gzip"), &tar).unwrap();
    for body in [tar, gz] {
        let case = Case::new("unused", &[]);
        let stream = TarStream::new(std::io::Cursor::new(body));
        let digest = build_digest(&case, from_source(ContextSource::Tar(stream), "Dockerfile"));
        assert_eq!(digest, local);
        assert_no_contexts_left(&case);
    }
}

#[test]
fn a_piped_dockerfile_builds_on_an_empty_context_like_an_empty_directory() {
    let local = Case::new(DOCKERFILE, &[]);
    let empty = local.context_dir().with_file_name("empty");
    std::fs::create_dir(&empty).unwrap();
    fix_times(&empty);
    let from_dir = build_digest(&local, |request| {
        request.context = ContextSource::Local(empty.clone());
        request.dockerfile_name = "-".into();
    });
    let piped = Case::new("unused", &[]);
    let from_stdin = build_digest(&piped, |request| {
        request.context = ContextSource::Empty;
        request.dockerfile = Some(DOCKERFILE.as_bytes().to_vec());
        request.dockerfile_name = "-".into();
    });
    assert_eq!(from_stdin, from_dir);
    assert_no_contexts_left(&piped);
}

#[test]
fn a_url_that_is_no_archive_is_the_dockerfile_in_a_context_of_itself() {
    let server = FileServer::start().unwrap();
    let text = "FROM scratch\nCOPY context /df\n";
    server.serve("/Dockerfile", Served::new(text));
    let case = Case::new("unused", &[]);
    let built = case
        .build_with(from_source(
            ContextSource::Http(server.url("/Dockerfile")),
            "ignored/for/a/plain/file",
        ))
        .unwrap();
    assert_eq!(built.read("df"), text);
    assert_no_contexts_left(&case);
}

#[test]
fn the_dockerfile_is_found_in_a_tarball_by_its_name_and_its_ignore_file_is_not_read() {
    let files = [
        ("build/app.Dockerfile", "FROM scratch\nCOPY . /all/\n"),
        ("keep.txt", "kept\n"),
        ("secret.txt", "sent anyway\n"),
        (".dockerignore", "secret.txt\n"),
    ];
    let source = Case::new("", &files);
    let tar = tar_of(&source.context_dir());
    let server = FileServer::start().unwrap();
    server.serve("/ctx.tar", Served::new(tar));
    let case = Case::new("unused", &[]);
    let built = case
        .build_with(from_source(
            ContextSource::Http(server.url("/ctx.tar")),
            "build/app.Dockerfile",
        ))
        .unwrap();
    assert_eq!(built.read("all/keep.txt"), "kept\n");
    // BuildKit applies `.dockerignore` to local directories only (docker/cli#2827).
    assert_eq!(built.read("all/secret.txt"), "sent anyway\n");

    // The same files as a local directory: the ignore file applies.
    let local = source.build_with(|request| {
        let path = source.context_dir().join("build/app.Dockerfile");
        request.dockerfile = Some(std::fs::read(&path).unwrap());
        request.dockerfile_name = path.display().to_string();
    });
    let local = local.unwrap();
    assert!(!local.out.join("all/secret.txt").exists());
}

#[test]
fn a_named_http_context_is_the_downloaded_file() {
    let server = FileServer::start().unwrap();
    let body = compress(Some("gzip"), b"not unpacked").unwrap();
    server.serve("/named.tar.gz", Served::new(body.clone()));
    let case = Case::new("FROM scratch\nCOPY --from=dl context /got\n", &[]);
    let built = case
        .build_with(|request| {
            request.options.named_contexts.insert(
                "dl".into(),
                hoist_frontend::NamedContext::Local("dl".into()),
            );
            request.named_contexts.insert(
                "dl".into(),
                ContextSource::Http(server.url("/named.tar.gz")),
            );
        })
        .unwrap();
    assert_eq!(std::fs::read(built.out.join("got")).unwrap(), body);
    assert_no_contexts_left(&case);
}

/// Builds `case` from `source` (its Dockerfile inside) and returns the error's text.
fn failure(case: &Case, source: ContextSource) -> String {
    match case.build_with(from_source(source, "Dockerfile")) {
        Ok(_) => panic!("the build succeeded"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn bad_contexts_fail_naming_the_input_and_leave_nothing_behind() {
    let server = FileServer::start().unwrap();
    let case = Case::new("unused", &[]);

    let missing = server.url("/missing.tar");
    let text = failure(&case, ContextSource::Http(missing.clone()));
    assert_eq!(
        text,
        format!("failed to download {missing}: invalid response status 404")
    );
    assert_no_contexts_left(&case);

    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/ctx.tar", listener.local_addr().unwrap())
    };
    let text = failure(&case, ContextSource::Http(closed.clone()));
    assert!(
        text.starts_with(&format!("failed to download {closed}: ")),
        "{text}"
    );
    assert_no_contexts_left(&case);

    // Neither an archive nor text: what BuildKit would fail to parse as a Dockerfile.
    server.serve(
        "/binary",
        Served::new(vec![0x7f, b'E', b'L', b'F', 0, 0, 1]),
    );
    let binary = server.url("/binary");
    let text = failure(&case, ContextSource::Http(binary.clone()));
    assert_eq!(
        text,
        format!(
            "unable to prepare context {binary}: neither a tar archive (plain, gzip, bzip2, \
             xz or zstd) nor a text Dockerfile"
        )
    );
    assert_no_contexts_left(&case);

    // An archive with an entry climbing out of the root, remote or piped.
    let escaping = escaping_tar();
    server.serve("/escape.tar", Served::new(escaping.clone()));
    let url = server.url("/escape.tar");
    let text = failure(&case, ContextSource::Http(url.clone()));
    assert_eq!(
        text,
        format!("unable to prepare context {url}: \"../escaped\" is outside of the context")
    );
    assert_no_contexts_left(&case);
    let stream = TarStream::new(std::io::Cursor::new(escaping));
    let text = failure(&case, ContextSource::Tar(stream));
    assert_eq!(
        text,
        "unable to prepare context stdin: \"../escaped\" is outside of the context"
    );
    assert_no_contexts_left(&case);

    // An archive without the Dockerfile it is asked for.
    let files_only = Case::new("", &[("a.txt", "a\n")]);
    std::fs::remove_file(files_only.context_dir().join("Dockerfile")).unwrap();
    server.serve("/no-df.tar", Served::new(tar_of(&files_only.context_dir())));
    let url = server.url("/no-df.tar");
    let text = failure(&case, ContextSource::Http(url.clone()));
    assert!(
        text.starts_with(&format!(
            "unable to prepare context {url}: failed to read dockerfile: open Dockerfile: "
        )),
        "{text}"
    );
    assert_no_contexts_left(&case);

    // A Git context whose host does not resolve.
    let git = "https://example.invalid/repo.git";
    let text = failure(&case, ContextSource::Git(git.into()));
    assert!(
        text.starts_with(&format!("unable to prepare context {git}: ")),
        "{text}"
    );
    assert_no_contexts_left(&case);
}

/// A tar holding `Dockerfile` and then `../escaped` (a name the tar crate will not write,
/// so set in the header by hand).
fn escaping_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let body = b"FROM scratch\n";
    let mut header = tar::Header::new_ustar();
    header.set_path("Dockerfile").unwrap();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, &body[..]).unwrap();
    let mut header = tar::Header::new_ustar();
    let name = b"../escaped";
    header.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_size(1);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    builder.into_inner().unwrap()
}
