//! `hoist_engine::build` on `FROM scratch` Dockerfiles: no registry and no RUN, so these run
//! anywhere (the copy snapshotter is used without root). Context selection, the on-disk
//! cache across workers, and multi-platform outputs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hoist_engine::StateDir;
use hoist_engine::{build, BuildRequest, BuildResult, Worker};
use hoist_export::Output;
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_solver::{Event, EventKind};

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(files: &[(&str, &str)]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join("ctx").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Case { dir }
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("ctx").join(name), text).unwrap();
    }

    /// Builds with a fresh worker on the case's state dir; returns the result and events.
    fn build(&self, platforms: &[&str], outputs: &[String]) -> (BuildResult, Vec<Event>) {
        let context = self.dir.path().join("ctx");
        let dockerfile = std::fs::read(context.join("Dockerfile")).unwrap();
        let request = BuildRequest {
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
            outputs: Output::parse_all(outputs).unwrap(),
            ..BuildRequest::new(
                Some(dockerfile),
                context.join("Dockerfile").display().to_string(),
                context.into(),
                BuildOptions::new(Platform::host()),
            )
        };
        let client = RegistryClient::new(RegistryConfig::default(), Credentials::default());
        let state = StateDir::new(self.dir.path().join("state"));
        let worker = Arc::new(Worker::open(state, client).unwrap());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let result = runtime.block_on(build(worker, request, Some(tx))).unwrap();
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        (result, events)
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
}

/// Vertex name → whether it was cached, ran, or both.
/// The outcome of each Dockerfile step, by its name without BuildKit's `[i/n] ` numbering
/// (internal steps, which always run, are left out).
fn outcomes(events: &[Event]) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    for event in events {
        let kind = match event.kind {
            EventKind::Cached => "cached",
            EventKind::Done { .. } => "done",
            _ => continue,
        };
        let name = event.vertex.name.to_string();
        if name.starts_with("[internal]") || name.starts_with("exporting") {
            continue;
        }
        let name = match name.strip_prefix('[') {
            Some(rest) => rest
                .split_once("] ")
                .map_or(name.clone(), |(_, n)| n.to_owned()),
            None => name,
        };
        out.insert(name, kind);
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn copy_respects_dockerignore_and_second_build_is_cached() {
    let case = Case::new(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY . /app/\nCOPY --chmod=600 one.txt /one\n",
        ),
        (".dockerignore", "secret.txt\n*.log\n"),
        ("one.txt", "1\n"),
        ("secret.txt", "no\n"),
        ("debug.log", "no\n"),
        ("sub/two.txt", "2\n"),
    ]);
    let out = case.path("out");
    let (_, events) = case.build(&[], &[format!("type=local,dest={}", out.display())]);
    assert_eq!(read(&out.join("app/one.txt")), "1\n");
    assert_eq!(read(&out.join("app/sub/two.txt")), "2\n");
    assert!(!out.join("app/secret.txt").exists());
    assert!(!out.join("app/debug.log").exists());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(out.join("one"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        outcomes(&events).values().all(|o| *o == "done"),
        "{events:?}"
    );

    // An ignored file changing is no change; a new worker reads the cache from disk.
    case.write("secret.txt", "changed");
    let (_, events) = case.build(&[], &[]);
    let outcomes = outcomes(&events);
    assert!(!outcomes.is_empty());
    assert!(outcomes.values().all(|o| *o == "cached"), "{outcomes:?}");

    case.write("one.txt", "changed\n");
    let (_, events) = case.build(&[], &[]);
    assert!(outcomes_ran(&events, "COPY . /app/"), "{events:?}");
}

fn outcomes_ran(events: &[Event], part: &str) -> bool {
    outcomes(events)
        .iter()
        .any(|(name, o)| name.contains(part) && *o == "done")
}

#[test]
fn two_platforms_give_an_index_of_two_manifests() {
    let case = Case::new(&[
        ("Dockerfile", "FROM scratch\nCOPY a.txt /\nCMD [\"/a\"]\n"),
        ("a.txt", "a\n"),
    ]);
    let layout = case.path("layout");
    let (result, _) = case.build(
        &["linux/amd64", "linux/arm64"],
        &[format!("type=oci,dest={},tar=false", layout.display())],
    );
    assert_eq!(result.images.len(), 2);
    assert_eq!(result.images[0].layers, result.images[1].layers);
    let index: serde_json::Value = serde_json::from_str(&read(&layout.join("index.json"))).unwrap();
    let root = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(root.trim_start_matches("sha256:"));
    let inner: serde_json::Value = serde_json::from_str(&read(&blob)).unwrap();
    let platforms: Vec<String> = inner["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
}

#[test]
fn copy_is_keyed_by_the_files_it_reads() {
    let case = Case::new(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY a.txt /a\nCOPY b*.txt /b/\n",
        ),
        ("a.txt", "a\n"),
        ("b1.txt", "b\n"),
    ]);
    case.build(&[], &[]);
    case.write("b1.txt", "changed\n");
    let (_, events) = case.build(&[], &[]);
    let outcomes = outcomes(&events);
    assert_eq!(
        outcomes.get("COPY a.txt /a"),
        Some(&"cached"),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.get("COPY b*.txt /b/"),
        Some(&"done"),
        "{outcomes:?}"
    );

    // A new file matching the wildcard is a change too.
    case.write("b2.txt", "new\n");
    let out = case.path("out");
    let (_, events) = case.build(&[], &[format!("type=local,dest={}", out.display())]);
    assert!(outcomes_ran(&events, "COPY b*.txt"), "{events:?}");
    assert_eq!(read(&out.join("b/b2.txt")), "new\n");
    assert_eq!(read(&out.join("a")), "a\n");
}

#[test]
fn add_unpacks_a_local_tar_and_copies_other_files() {
    let case = Case::new(&[
        (
            "Dockerfile",
            "FROM scratch\nADD files.tar /x/\nADD plain.txt /y/\nWORKDIR /w\n",
        ),
        ("plain.txt", "plain\n"),
    ]);
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, "in/tar.txt", &b"tar\n"[..])
        .unwrap();
    std::fs::write(case.path("ctx/files.tar"), builder.into_inner().unwrap()).unwrap();

    let out = case.path("out");
    let (result, _) = case.build(&[], &[format!("type=local,dest={}", out.display())]);
    assert_eq!(read(&out.join("x/in/tar.txt")), "tar\n");
    assert_eq!(read(&out.join("y/plain.txt")), "plain\n");
    assert!(out.join("w").is_dir());
    let image = &result.images[0];
    let with_layer = image
        .config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .count();
    assert_eq!(with_layer, image.layers.len(), "{:?}", image.config.history);
}

#[test]
fn an_edit_keeping_size_and_mtime_still_misses() {
    // Files older than a few seconds have their digests remembered by stat; an edit that
    // keeps the size and puts the mtime back (`touch -r`) still changes the ctime.
    let case = Case::new(&[
        ("Dockerfile", "FROM scratch\nCOPY a.txt /a\n"),
        ("a.txt", "one\n"),
    ]);
    let a = case.path("ctx/a.txt");
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(&a, old).unwrap();
    case.build(&[], &[]);
    let (_, events) = case.build(&[], &[]);
    assert_eq!(outcomes(&events).get("COPY a.txt /a"), Some(&"cached"));

    case.write("a.txt", "two\n");
    filetime::set_file_mtime(&a, old).unwrap();
    let out = case.path("out");
    let (_, events) = case.build(&[], &[format!("type=local,dest={}", out.display())]);
    assert_eq!(outcomes(&events).get("COPY a.txt /a"), Some(&"done"));
    assert_eq!(read(&out.join("a")), "two\n");
}
