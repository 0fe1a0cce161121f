//! An owned context with its listing (hoistd's copy of a client's context): the build
//! selects from the listing instead of walking the directory, and each selection's
//! checksum is remembered in the listing, so a rebuild from the same listing selects
//! nothing — but another selection of it (other excludes) is its own checksum. A listing
//! still arriving lets the build run its first stages while the owner writes the
//! directory; the owner's ignore patterns replace the directory's ignore file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_engine::progress::{Event, EventKind};
use hoist_engine::{build, BuildRequest, ContextListing, ContextSource, StateDir, Worker};
use hoist_export::Output;
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_snapshot::{Listed, Listing};

fn listing_of(dir: &Path) -> Listing {
    let entries = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|found| {
            let found = found.unwrap();
            let rel = found.path().strip_prefix(dir).unwrap();
            let metadata = std::fs::symlink_metadata(found.path()).unwrap();
            Listed::new(rel.to_string_lossy().into_owned(), metadata, None)
        })
        .collect();
    Listing::new(entries)
}

#[test]
fn each_selection_of_a_listing_is_summed_once_and_apart() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    for (rel, text) in [("a", "A\n"), ("b", "B\n"), ("sub/c", "C\n")] {
        std::fs::write(ctx.join(rel), text).unwrap();
    }
    let listing = Arc::new(listing_of(&ctx));
    let worker = worker_in(work.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run = |n: usize, excluded: &str| {
        let out = work.path().join(format!("out-{n}"));
        let given = ContextListing::ready(Arc::clone(&listing));
        let request = copy_everything(&ctx, given, Some(vec![excluded.to_owned()]), &out);
        runtime
            .block_on(build(Arc::clone(&worker), request, None))
            .unwrap();
        crate::copy_semantics::listing(&out)
    };
    assert_eq!(run(1, "b"), ["a", "sub", "sub/c"]);
    // The listing learnt the digests of the files the build read.
    let learnt: Vec<&str> = (listing.entries().iter())
        .filter(|e| e.digest().is_some())
        .map(|e| e.rel.as_str())
        .collect();
    assert_eq!(learnt, ["a", "sub/c"]);
    // Another selection of the same listing is not the first one's checksum.
    assert_eq!(run(2, "a"), ["b", "sub", "sub/c"]);
    assert_eq!(run(3, "sub"), ["a", "b"]);
    // The first again, now from what the listing remembers: the same files.
    assert_eq!(run(4, "b"), ["a", "sub", "sub/c"]);
    assert_eq!(run(5, "a"), ["b", "sub", "sub/c"]);
}

/// A work directory holding an empty context directory `ctx`.
fn empty_context() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    (work, ctx)
}

/// Runs `request` on a thread of its own (the engine's future is not `Send` for every
/// lifetime), so the test can act while the build waits.
fn build_on_a_thread(
    worker: Arc<Worker>,
    request: BuildRequest,
    events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
) -> std::thread::JoinHandle<hoist_engine::Result<hoist_engine::BuildResult>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(build(worker, request, events))
    })
}

fn worker_in(dir: &Path) -> Arc<Worker> {
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    Arc::new(Worker::open(StateDir::new(dir.join("state")), client).unwrap())
}

fn copy_everything(
    ctx: &Path,
    listing: ContextListing,
    excludes: Option<Vec<String>>,
    out: &Path,
) -> BuildRequest {
    BuildRequest {
        outputs: Output::parse_all(&[format!("type=local,dest={}", out.display())]).unwrap(),
        ..BuildRequest::new(
            Some(b"FROM scratch\nCOPY . /\n".to_vec()),
            "Dockerfile",
            ContextSource::Owned {
                dir: ctx.to_owned(),
                listing: Some(listing),
                excludes,
            },
            BuildOptions::new(Platform::host()),
        )
    }
}

#[test]
fn a_build_starts_before_its_context_arrives_and_copies_what_arrived() {
    let (work, ctx) = empty_context();
    // What an earlier transfer left, stale now: its ignore file is not read.
    std::fs::write(ctx.join(".dockerignore"), "a\n").unwrap();
    let worker = worker_in(work.path());
    let (sender, listing) = ContextListing::arriving();
    let out = work.path().join("out");
    let request = copy_everything(&ctx, listing, Some(vec!["b".to_owned()]), &out);
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let building = build_on_a_thread(worker, request, Some(events));
    // The Dockerfile is loaded while the context is still being written.
    loop {
        let event = received
            .blocking_recv()
            .expect("the build ended before it loaded its Dockerfile");
        if event.vertex.name.contains("load build definition")
            && matches!(event.kind, EventKind::Done { .. })
        {
            break;
        }
    }
    assert!(!building.is_finished());
    std::fs::remove_file(ctx.join(".dockerignore")).unwrap();
    for (rel, text) in [("a", "A\n"), ("b", "B\n"), ("c", "C\n")] {
        std::fs::write(ctx.join(rel), text).unwrap();
    }
    sender.send(Ok(Arc::new(listing_of(&ctx))));
    building.join().unwrap().unwrap();
    // Its step is shown as BuildKit shows it, though nothing was read.
    let mut steps = Vec::new();
    while let Ok(event) = received.try_recv() {
        steps.push(event.vertex.name.to_string());
    }
    assert!(
        steps.iter().any(|s| s == "[internal] load .dockerignore"),
        "{steps:?}"
    );
    // The owner's patterns (`b`), not the stale file's (`a`).
    assert_eq!(crate::copy_semantics::listing(&out), ["a", "c"]);
}

#[test]
fn the_dockerfile_and_ignore_file_of_an_arriving_context_are_read_once_it_has_come() {
    let (work, ctx) = empty_context();
    let worker = worker_in(work.path());
    let (sender, listing) = ContextListing::arriving();
    let out = work.path().join("out");
    // No Dockerfile given and no patterns from the owner: both are the directory's.
    let request = BuildRequest {
        outputs: Output::parse_all(&[format!("type=local,dest={}", out.display())]).unwrap(),
        ..BuildRequest::new(
            None,
            "Dockerfile",
            ContextSource::Owned {
                dir: ctx.clone(),
                listing: Some(listing),
                excludes: None,
            },
            BuildOptions::new(Platform::host()),
        )
    };
    let building = build_on_a_thread(worker, request, None);
    // The build has started and found an empty directory, were it to read it now.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (rel, text) in [
        ("Dockerfile", "FROM scratch\nCOPY . /\n"),
        (".dockerignore", "b\nDockerfile\n.dockerignore\n"),
        ("a", "A\n"),
        ("b", "B\n"),
    ] {
        std::fs::write(ctx.join(rel), text).unwrap();
    }
    sender.send(Ok(Arc::new(listing_of(&ctx))));
    building.join().unwrap().unwrap();
    assert_eq!(crate::copy_semantics::listing(&out), ["a"]);
}

#[test]
fn a_context_that_never_arrives_fails_the_build_with_its_owners_reason() {
    let (work, ctx) = empty_context();
    let worker = worker_in(work.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The owner says why.
    let (sender, listing) = ContextListing::arriving();
    let request = copy_everything(&ctx, listing, Some(Vec::new()), &work.path().join("out-1"));
    sender.send(Err("the client sent \"../x\"".to_owned()));
    let err = runtime
        .block_on(build(Arc::clone(&worker), request, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&ctx.display().to_string()), "{err}");
    assert!(err.contains("the client sent \"../x\""), "{err}");
    // The owner went away without a word.
    let (sender, listing) = ContextListing::arriving();
    let out = work.path().join("out-2");
    let request = copy_everything(&ctx, listing, Some(Vec::new()), &out);
    drop(sender);
    let err = runtime
        .block_on(build(worker, request, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stopped before the directory was written"),
        "{err}"
    );
    assert!(!out.exists(), "a failed build exported {}", out.display());
}
