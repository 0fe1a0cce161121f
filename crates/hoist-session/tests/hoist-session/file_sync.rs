//! `FileSync.DiffCopy`: the session's sender, received by hoist's fsutil receiver.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;

use hoist_proto::filesync::file_sync_client::FileSyncClient;
use hoist_session::Session;

use crate::{connect, tree};

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src/deep/er")).unwrap();
    std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(root.join("src/deep/er/data.bin"), vec![7u8; 200_000]).unwrap();
    std::fs::write(root.join("build.log"), "noise\n").unwrap();
    std::fs::write(root.join("empty"), "").unwrap();
    std::os::unix::fs::symlink("src/main.rs", root.join("link")).unwrap();
    std::fs::hard_link(root.join("src/main.rs"), root.join("hard.rs")).unwrap();
    let script = root.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        &script,
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    dir
}

/// Receives directory `name` of `session` into `dest` with the metadata given.
async fn receive(session: Arc<Session>, name: &str, metadata: &[(&str, &str)], dest: &Path) {
    let channel = connect(session).await;
    let (tx, rx) = tokio::sync::mpsc::channel(hoist_session::fsutil::BATCHES);
    let mut request = hoist_proto::tonic::Request::new(hoist_session::fsutil::packets(rx));
    request
        .metadata_mut()
        .append("dir-name", name.parse().unwrap());
    for (key, value) in metadata {
        let key = hoist_proto::tonic::metadata::MetadataKey::from_bytes(key.as_bytes()).unwrap();
        request.metadata_mut().append(key, value.parse().unwrap());
    }
    let response = FileSyncClient::new(channel)
        .diff_copy(request)
        .await
        .unwrap()
        .into_inner();
    hoist_session::fsutil::receive(dest, response, tx, &Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_directory_crosses_the_session_unchanged() {
    let ctx = context();
    let session = Arc::new(Session::new("test", "key").with_dir("context", ctx.path().into()));
    let out = tempfile::tempdir().unwrap();
    receive(Arc::clone(&session), "context", &[], out.path()).await;
    assert_eq!(tree(out.path()), tree(ctx.path()));
    // The hardlink stays one file; its data was asked for once.
    let a = std::fs::metadata(out.path().join("src/main.rs")).unwrap();
    let b = std::fs::metadata(out.path().join("hard.rs")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard.rs is a hardlink of src/main.rs");
    assert_eq!(
        session.files_sent(),
        6,
        "regular files with data of their own"
    );
}

/// Hundreds of small files (sent several to a batch) among files large enough to be
/// streamed (each on a sender of its own): every byte arrives.
#[tokio::test]
async fn small_files_in_batches_and_large_ones_streamed_arrive_whole() {
    let ctx = tempfile::tempdir().unwrap();
    for d in 0..3 {
        let dir = ctx.path().join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..150 {
            std::fs::write(dir.join(format!("f{f:03}")), format!("{d}/{f}\n").repeat(f)).unwrap();
        }
    }
    for (name, size) in [
        ("d0/large-a", 3 << 20),
        ("d1/large-b", (3 << 19) + 7),
        ("d2/large-c", 2 << 20),
    ] {
        let bytes: Vec<u8> = (0..size).map(|i: usize| (i % 251) as u8).collect();
        std::fs::write(ctx.path().join(name), bytes).unwrap();
    }
    let session = Arc::new(Session::new("test", "key").with_dir("context", ctx.path().into()));
    let out = tempfile::tempdir().unwrap();
    receive(Arc::clone(&session), "context", &[], out.path()).await;
    assert_eq!(tree(out.path()), tree(ctx.path()));
    assert_eq!(session.files_sent(), 453);
}

#[tokio::test]
async fn exclude_include_and_followpaths_select_what_is_sent() {
    let ctx = context();
    let session = Arc::new(Session::new("test", "key").with_dir("context", ctx.path().into()));
    let out = tempfile::tempdir().unwrap();
    receive(
        Arc::clone(&session),
        "context",
        &[
            ("exclude-patterns", "*.log"),
            ("exclude-patterns", "src/deep"),
        ],
        out.path(),
    )
    .await;
    let got = tree(out.path());
    assert!(!got.contains_key("build.log"), "{got:?}");
    assert!(!got.contains_key("src/deep"), "{got:?}");
    assert!(got.contains_key("src/main.rs"), "{got:?}");

    let out = tempfile::tempdir().unwrap();
    receive(
        Arc::clone(&session),
        "context",
        &[("include-patterns", "src/deep/er/data.bin")],
        out.path(),
    )
    .await;
    let got: Vec<String> = tree(out.path()).into_keys().collect();
    assert_eq!(
        got,
        ["src", "src/deep", "src/deep/er", "src/deep/er/data.bin"]
    );

    // The Dockerfile frontend's request: follow the Dockerfile's name.
    let out = tempfile::tempdir().unwrap();
    receive(session, "context", &[("followpaths", "link")], out.path()).await;
    let got: Vec<String> = tree(out.path()).into_keys().collect();
    assert_eq!(got, ["link", "src", "src/main.rs"]);
}

#[tokio::test]
async fn five_thousand_small_files_cross_one_session() {
    // Thousands of small REQ packets while file data is being sent: the session reads
    // them as they come, so h2's budget for small DATA frames is never exhausted.
    let ctx = tempfile::tempdir().unwrap();
    for i in 0..5_000 {
        let dir = ctx.path().join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i:05}")), format!("{i}\n")).unwrap();
    }
    let session = Arc::new(Session::new("test", "key").with_dir("context", ctx.path().into()));
    let out = tempfile::tempdir().unwrap();
    receive(Arc::clone(&session), "context", &[], out.path()).await;
    assert_eq!(session.files_sent(), 5_000);
    assert_eq!(tree(out.path()), tree(ctx.path()));
}
