//! An owned context with its listing (hoistd's copy of a client's context): the build
//! selects from the listing instead of walking the directory, and each selection's
//! checksum is remembered in the listing, so a rebuild from the same listing selects
//! nothing — but another selection of it (other excludes) is its own checksum.

use std::path::Path;
use std::sync::Arc;

use hoist_engine::{build, BuildRequest, ContextSource, StateDir, Worker};
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
    let client = RegistryClient::new(RegistryConfig::default(), Credentials::anonymous());
    let worker = Arc::new(Worker::open(StateDir::new(work.path().join("state")), client).unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let run = |n: usize, excluded: &str| {
        let out = work.path().join(format!("out-{n}"));
        let mut options = BuildOptions::new(Platform::host());
        options.context_excludes = vec![excluded.to_owned()];
        let request = BuildRequest {
            outputs: Output::parse_all(&[format!("type=local,dest={}", out.display())]).unwrap(),
            ..BuildRequest::new(
                Some(b"FROM scratch\nCOPY . /\n".to_vec()),
                "Dockerfile",
                ContextSource::Owned {
                    dir: ctx.clone(),
                    listing: Some(Arc::clone(&listing)),
                },
                options,
            )
        };
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
