//! `ADD <url>` from a file server on loopback (`hoist_testkit::http`): the download lands
//! with mode 0600 and the server's `Last-Modified`, an unchanged `ETag` is revalidated
//! without a download, a changed file is fetched and rebuilt, and the record of a pruned
//! step does not stop a revalidation from hitting again.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, UNIX_EPOCH};

use hoist_testkit::http::{FileServer, Served};

use crate::case::Case;

const DATE: &str = "Tue, 15 Nov 1994 08:12:31 GMT";
const DATE_SECS: u64 = 784_887_151;

fn case(server: &FileServer, path: &str) -> Case {
    Case::new(
        &format!("FROM scratch\nADD {} /dst/\n", server.url(path)),
        &[],
    )
}

#[test]
fn add_url_is_revalidated_by_etag_and_downloaded_again_when_it_changes() {
    let server = FileServer::start().unwrap();
    server.serve(
        "/files/a.txt",
        Served::new("hello\n").etag("\"v1\"").last_modified(DATE),
    );
    let case = case(&server, "/files/a.txt");

    let built = case.build();
    assert_eq!(built.outcome("ADD"), "done");
    assert_eq!(built.read("dst/a.txt"), "hello\n");
    let meta = std::fs::metadata(built.out.join("dst/a.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        meta.modified().unwrap(),
        UNIX_EPOCH + Duration::from_secs(DATE_SECS)
    );
    assert_eq!(server.bodies_sent("/files/a.txt"), 1);

    // Unchanged: asked with If-None-Match, answered without a body, the step is cached.
    let asked = server.requests("/files/a.txt");
    let built = case.build();
    assert_eq!(built.outcome("ADD"), "cached");
    assert_eq!(built.read("dst/a.txt"), "hello\n");
    assert!(
        server.requests("/files/a.txt") > asked,
        "the server was asked again"
    );
    assert_eq!(server.bodies_sent("/files/a.txt"), 1);

    // New content and ETag: downloaded and rebuilt.
    server.serve(
        "/files/a.txt",
        Served::new("changed\n").etag("\"v2\"").last_modified(DATE),
    );
    let built = case.build();
    assert_eq!(built.outcome("ADD"), "done");
    assert_eq!(built.read("dst/a.txt"), "changed\n");
    assert_eq!(server.bodies_sent("/files/a.txt"), 2);
}

#[test]
fn add_url_without_etag_downloads_each_time_and_hits_on_equal_bytes() {
    let server = FileServer::start().unwrap();
    server.serve("/plain.txt", Served::new("same\n"));
    let case = case(&server, "/plain.txt");
    assert_eq!(case.build().outcome("ADD"), "done");
    let built = case.build();
    assert_eq!(built.outcome("ADD"), "cached");
    assert_eq!(server.bodies_sent("/plain.txt"), 2);
    // No Last-Modified: the Unix epoch, as BuildKit sets it.
    let meta = std::fs::metadata(built.out.join("dst/plain.txt")).unwrap();
    assert_eq!(meta.modified().unwrap(), UNIX_EPOCH);
}

#[test]
fn add_url_with_a_failing_server_names_the_url_and_status() {
    let server = FileServer::start().unwrap();
    let case = case(&server, "/missing.txt");
    let err = case
        .build_with(|_| {})
        .err()
        .expect("the build fails")
        .to_string();
    let url = server.url("/missing.txt");
    assert!(
        err.contains(&format!(
            "failed to download {url}: invalid response status 404"
        )),
        "{err}"
    );
}
