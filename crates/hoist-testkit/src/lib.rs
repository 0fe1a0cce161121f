//! Test fixtures shared by hoist's crates (a dev-dependency only).
//!
//! - [`conformance_dir`]: where the third-party conformance vectors live.
//! - [`skip`]: the one way a test says it cannot run here, and why.
//! - [`registry::TestRegistry`]: a real Distribution registry (Debian's `docker-registry`) on a
//!   free loopback port, optionally behind htpasswd Basic auth, killed on drop.
//! - [`images`]: busybox base images (linux/amd64, arm64, arm/v7) from Debian's
//!   `busybox-static`, as root filesystems ([`images::busybox_rootfs`]) or pushed to a
//!   [`registry::TestRegistry`] ([`images::BaseImages`]).
//! - [`http::FileServer`]: a small HTTP file server on loopback for `ADD <url>` tests
//!   (`ETag`, `Last-Modified`, `304`s, a count of bodies sent, faults on demand).
//! - [`git`]: git servers on loopback (`git http-backend` over smart HTTP, optionally
//!   asking for a token; `git daemon` for `git://`) and [`git::Repo`] to make repositories
//!   with commits, tags, branches and submodules.
//! - [`integration`]: BuildKit's Dockerfile integration cases as typed data
//!   ([`integration::cases`]), materialised into temporary build contexts with upstream's
//!   modes ([`integration::IntegrationCase::materialize`]).
//! - [`kube_api::KubeApiServer`]: an in-process Kubernetes API server on loopback (discovery,
//!   namespaces, config maps, deployments, statefulsets, pods as real processes, exec over
//!   WebSocket), for the `kubernetes` driver and checked with the real `kubectl`.
//! - [`TestkitError`]: what could not be made.

use std::path::{Path, PathBuf};

mod error;
pub mod git;
pub mod http;
pub mod images;
pub mod integration;
pub mod kube_api;
pub mod registry;
pub mod trees;

pub use error::{Result, TestkitError};

/// The environment variable that points at the conformance folder.
pub const CONFORMANCE_ENV: &str = "HOIST_CONFORMANCE";

/// The folder `sub` of the conformance data (`buildkit-shell-lexer`, ...), or `None` (after
/// printing why) when it is absent. The data lives in `../shared/conformance` beside the
/// repository unless `HOIST_CONFORMANCE` says otherwise; it is never copied into the project.
pub fn conformance_dir(sub: &str) -> Option<PathBuf> {
    let root = match std::env::var_os(CONFORMANCE_ENV) {
        Some(dir) => PathBuf::from(dir),
        // `shared/` sits beside the repository; look upwards so that git worktrees nested
        // deeper than the main checkout find it too.
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("shared/conformance"))
            .find(|dir| dir.is_dir())
            .unwrap_or_else(|| PathBuf::from("../shared/conformance")),
    };
    let dir = root.join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        skip(&format!(
            "conformance data {} is absent (set {CONFORMANCE_ENV} to the conformance folder)",
            dir.display()
        ));
        None
    }
}

/// Whether the test runs with effective uid 0 (`/proc/self/status` says so without unsafe
/// code or a libc binding). Tests that build, mount or register handlers skip otherwise.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Says on stderr that a test is skipped and why. The test then returns early and passes.
pub fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
}

/// The file `name` in one of the `PATH` directories.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
