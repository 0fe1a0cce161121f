//! `hoist du` and `hoist prune` against real builds in a temp `--root`: records listed,
//! removed (all, or least recently used first down to a size), rebuilt after; cache records
//! keeping their blobs through a content GC; a record whose blob went missing rebuilding;
//! and a prune running next to a build leaving that build's records alone.
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::build_env::{count_files, BuildEnv};

struct Case {
    env: BuildEnv,
    ctx: PathBuf,
}

impl Case {
    fn new() -> Option<Case> {
        let env = BuildEnv::new()?;
        let ctx = env.fresh_dir("ctx");
        Some(Case { env, ctx })
    }

    fn dockerfile(&self, text: &str) {
        std::fs::write(self.ctx.join("Dockerfile"), text).unwrap();
    }

    /// `hoist build --progress=plain ARGS CTX`, failing the test when it fails; the
    /// progress text.
    fn build(&self, args: &[&str]) -> String {
        let ctx = self.ctx.display().to_string();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(&ctx);
        let out = self.env.hoist(&all);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hoist build failed:\n{stderr}");
        stderr
    }

    /// `hoist ARGS` with stdin closed, failing the test when it fails; stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "hoist {args:?} failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn output(&self, args: &[&str]) -> Output {
        self.env
            .command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn oci_spec(&self) -> (PathBuf, String) {
        let dest = self.env.fresh_dir("out").join("image.tar");
        let spec = format!("type=oci,dest={}", dest.display());
        (dest, spec)
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The Dockerfile steps (`FROM ...`, `RUN ...`; not `[internal]` or `exporting` ones) of
/// plain progress, each with whether it was CACHED.
fn dockerfile_steps(progress: &str) -> Vec<(String, bool)> {
    let mut steps: Vec<(String, String, bool)> = Vec::new();
    for line in progress.lines() {
        let Some((n, rest)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if !n.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        match steps.iter_mut().find(|(id, _, _)| id == n) {
            Some(step) => step.2 |= rest == "CACHED",
            None => steps.push((n.to_owned(), rest.to_owned(), false)),
        }
    }
    steps
        .into_iter()
        .filter(|(_, name, _)| is_instruction(name))
        .map(|(_, name, cached)| (name, cached))
        .collect()
}

/// `[stage i/n] RUN …` or `FROM …`, not `[internal] …` nor `exporting to …`.
fn is_instruction(step: &str) -> bool {
    if step.starts_with("[internal]") {
        return false;
    }
    let step = match step.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or("", |(_, name)| name),
        None => step,
    };
    let word = step.split(' ').next().unwrap_or("");
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase())
}

fn all_cached(progress: &str) -> bool {
    let steps = dockerfile_steps(progress);
    !steps.is_empty() && steps.iter().all(|(_, cached)| *cached)
}

fn step_cached(progress: &str, part: &str) -> bool {
    dockerfile_steps(progress)
        .iter()
        .find(|(name, _)| name.contains(part))
        .unwrap_or_else(|| panic!("no step {part:?} in:\n{progress}"))
        .1
}

/// The data rows of `hoist du`'s table (not the header, not the summary, not the line of
/// what no record accounts for).
pub(crate) fn du_rows(du: &str) -> Vec<String> {
    du.lines()
        .skip(1)
        .filter(|l| !l.starts_with("unreferenced"))
        .take_while(|l| {
            !["Reclaimable:", "Shared:", "Total:"]
                .iter()
                .any(|summary| l.starts_with(summary))
        })
        .map(str::to_owned)
        .collect()
}

fn committed_snapshots(root: &Path) -> usize {
    std::fs::read_dir(root.join("snapshots/committed"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// An OCI archive's manifest layers (base first), every digest its index and manifests
/// reference, and the blobs it holds.
struct Archive {
    layers: Vec<String>,
    diff_ids: Vec<String>,
    referenced: Vec<String>,
    held: Vec<String>,
}

impl Archive {
    fn read(path: &Path) -> Archive {
        let entries = crate::build_env::tar_entries(path);
        let held = entries
            .keys()
            .filter_map(|k| k.strip_prefix("blobs/sha256/"))
            .map(|hex| format!("sha256:{hex}"))
            .collect();
        let mut archive = Archive {
            layers: Vec::new(),
            diff_ids: Vec::new(),
            referenced: Vec::new(),
            held,
        };
        let mut queue = vec![entries["index.json"].clone()];
        while let Some(doc) = queue.pop() {
            let json: serde_json::Value = serde_json::from_slice(&doc).unwrap();
            let digest = |d: &serde_json::Value| d["digest"].as_str().unwrap().to_owned();
            for d in json["manifests"].as_array().into_iter().flatten() {
                let hex = digest(d).trim_start_matches("sha256:").to_owned();
                queue.extend(entries.get(&format!("blobs/sha256/{hex}")).cloned());
                archive.referenced.push(digest(d));
            }
            for d in json["layers"].as_array().into_iter().flatten() {
                archive.layers.push(digest(d));
                archive.referenced.push(digest(d));
            }
            if json["config"].is_object() {
                archive.referenced.push(digest(&json["config"]));
                let hex = digest(&json["config"])
                    .trim_start_matches("sha256:")
                    .to_owned();
                let config: serde_json::Value =
                    serde_json::from_slice(&entries[&format!("blobs/sha256/{hex}")]).unwrap();
                for d in config["rootfs"]["diff_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    archive.diff_ids.push(d.as_str().unwrap().to_owned());
                }
            }
        }
        archive
    }

    fn assert_complete(&self) {
        assert!(self.layers.len() >= 2, "{:?}", self.layers);
        for digest in &self.referenced {
            assert!(
                self.held.contains(digest),
                "{digest} missing from the archive"
            );
        }
    }
}

#[test]
fn du_lists_records_and_prune_all_empties_them_then_rebuilds() {
    let Some(case) = Case::new() else { return };
    case.dockerfile(
        "FROM busybox\nRUN echo one > /one\nRUN cat /one > /two\n\
         RUN --mount=type=cache,target=/var/cache/t echo c > /var/cache/t/c\n",
    );
    let (_, spec) = case.oci_spec();
    case.build(&["-o", &spec]);

    let du = case.run(&["du"]);
    let mut lines = du.lines();
    assert_eq!(
        lines.next(),
        Some("ID\t\t\t\t\t\tRECLAIMABLE\tSIZE\t\tLAST ACCESSED"),
        "{du}"
    );
    let rows = du_rows(&du);
    assert!(
        rows.len() >= 5,
        "want the base image, three RUNs, a cache mount:\n{du}"
    );
    let mounts = rows
        .iter()
        .filter(|r| r.split('\t').next().unwrap().trim_end().ends_with('*'));
    assert_eq!(
        mounts.count(),
        1,
        "the cache mount is not marked mutable:\n{du}"
    );
    for row in &rows {
        assert!(row.contains("\ttrue \t"), "a record not reclaimable:\n{du}");
        assert!(row.ends_with(" ago"), "no last access time:\n{du}");
    }
    assert!(du.contains("\nReclaimable:\t"), "{du}");
    let total = du.lines().last().unwrap();
    assert!(
        total.starts_with("Total:\t\t") && total != "Total:\t\t0B",
        "{du}"
    );

    let verbose = case.run(&["du", "--verbose"]);
    assert!(verbose.contains("Usage count:\t1\n"), "{verbose}");
    assert!(verbose.contains("Type:\t\tregular\n"), "{verbose}");
    assert!(verbose.contains("Type:\t\texec.cachemount\n"), "{verbose}");

    let pruned = case.run(&["prune", "-f", "--all"]);
    let total = pruned.lines().last().unwrap();
    assert!(
        total.starts_with("Total:\t") && total != "Total:\t0B",
        "{pruned}"
    );
    assert_eq!(du_rows(&pruned).len(), rows.len(), "{pruned}");
    let du = case.run(&["du"]);
    assert!(
        du_rows(&du).is_empty(),
        "records left after prune --all:\n{du}"
    );
    assert!(du.ends_with("Reclaimable:\t0B\nTotal:\t\t0B\n"), "{du}");
    let root = case.env.root();
    assert_eq!(committed_snapshots(&root), 0, "snapshots left");
    assert_eq!(case.env.blob_count(), 0, "blobs left with no name");
    assert_eq!(count_files(&root.join("engine/layers")), 0);
    let mounts = std::fs::read_dir(root.join("engine/cache-mounts")).unwrap();
    assert_eq!(mounts.count(), 0, "cache mounts left");

    // Nothing is left to reclaim, and the next build runs every step again.
    assert_eq!(case.run(&["prune", "-f", "--all"]), "Total:\t0B\n");
    let rebuilt = case.build(&["-o", &spec]);
    assert!(!step_cached(&rebuilt, "echo one"), "{rebuilt}");
    assert!(!step_cached(&rebuilt, "cat /one"), "{rebuilt}");
    assert!(!step_cached(&rebuilt, "echo c"), "{rebuilt}");
    assert!(all_cached(&case.build(&["-o", &spec])));
}

#[test]
fn prune_without_force_refuses_when_stdin_is_not_a_terminal() {
    let Some(case) = Case::new() else { return };
    let out = case.output(&["prune"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a terminal") && stderr.contains("-f"),
        "{stderr}"
    );
    let out = case.output(&["prune", "-f", "--filter", "color=red"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn keep_storage_keeps_the_most_recently_used() {
    let Some(case) = Case::new() else { return };
    let (_, spec) = case.oci_spec();
    // Random bytes do not compress: each RUN brings ~3 MB of snapshot and ~3 MB of blob.
    let old = "FROM busybox\nRUN head -c 3000000 /dev/urandom > /old\n";
    let new = "FROM busybox\nRUN head -c 3000000 /dev/urandom > /new\n";
    case.dockerfile(old);
    case.build(&["-o", &spec]);
    std::thread::sleep(Duration::from_millis(20));
    case.dockerfile(new);
    case.build(&["-o", &spec]);
    let before = du_rows(&case.run(&["du"])).len();

    // ~15 MB in all: removing the least recently used record (the old RUN) is enough.
    let pruned = case.run(&["prune", "-f", "--keep-storage", "10mb"]);
    assert_eq!(du_rows(&pruned).len(), 1, "{pruned}");
    assert_eq!(du_rows(&case.run(&["du"])).len(), before - 1);

    let again = case.build(&["-o", &spec]);
    assert!(all_cached(&again), "the recent build was pruned:\n{again}");
    case.dockerfile(old);
    let rebuilt = case.build(&["-o", &spec]);
    assert!(step_cached(&rebuilt, "FROM"), "{rebuilt}");
    assert!(!step_cached(&rebuilt, "/old"), "{rebuilt}");
}

#[test]
fn content_gc_keeps_every_blob_the_cache_refers_to() {
    let Some(case) = Case::new() else { return };
    case.dockerfile("FROM busybox\nRUN echo kept > /kept\n");
    let (_, spec) = case.oci_spec();
    case.build(&["-o", &spec]);

    // Nothing names the build's blobs in index.json: only the records' named leases keep
    // them, the base image's manifest and config with its layers.
    let store = hoist_engine::ContentStore::open(case.env.root()).unwrap();
    let report = store.gc(&[]).unwrap();
    let leases = store.named_leases().unwrap();
    assert!(!leases.is_empty());
    for digest in leases.values().flatten() {
        assert!(store.has(digest), "{digest} of a record was collected");
    }
    let base_config = leases.values().flatten().any(|digest| {
        let bytes = store.read_blob(digest).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|json| json["rootfs"]["diff_ids"].is_array())
    });
    assert!(base_config, "no record keeps the base image's config");
    // What the export assembled in the store for the archive is nobody's: it goes.
    assert!(!report.removed.is_empty(), "GC found nothing to collect");

    let (archive, spec) = case.oci_spec();
    let rebuilt = case.build(&["-o", &spec]);
    assert!(
        all_cached(&rebuilt),
        "{:?}\n{rebuilt}",
        dockerfile_steps(&rebuilt)
    );
    Archive::read(&archive).assert_complete();
}

#[test]
fn a_record_whose_blob_was_removed_rebuilds() {
    let Some(case) = Case::new() else { return };
    case.dockerfile("FROM busybox\nRUN echo lost > /lost\nRUN cat /lost > /found\n");
    let (archive, spec) = case.oci_spec();
    case.build(&["-o", &spec]);
    // Layers are base first: the first RUN's is the one before last. The record keeps it
    // uncompressed (its blob is its diff id); the archive has its gzip variant.
    let diff_ids = Archive::read(&archive).diff_ids;
    let lost = diff_ids[diff_ids.len() - 2].trim_start_matches("sha256:");
    std::fs::remove_file(case.env.root().join("content/blobs/sha256").join(lost)).unwrap();

    let (archive, spec) = case.oci_spec();
    let rebuilt = case.build(&["-o", &spec]);
    assert!(step_cached(&rebuilt, "FROM"), "{rebuilt}");
    assert!(!step_cached(&rebuilt, "echo lost"), "{rebuilt}");
    Archive::read(&archive).assert_complete();
}

#[test]
fn prune_next_to_a_build_keeps_what_the_build_uses() {
    let Some(case) = Case::new() else { return };
    case.dockerfile("FROM busybox\nRUN echo a > /a\n");
    let (_, spec) = case.oci_spec();
    case.build(&["-o", &spec]);
    let before = du_rows(&case.run(&["du"])).len();
    case.dockerfile("FROM busybox\nRUN echo a > /a\nRUN sleep 3 && cat /a > /b\n");
    let ctx = case.ctx.display().to_string();
    let build = case
        .env
        .command(&["build", "--progress=plain", "-o", &spec, &ctx])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The sleep is running by now: the base and first RUN are loaded from the cache.
    std::thread::sleep(Duration::from_millis(1500));
    let pruned = case.run(&["prune", "-f", "--all", "--verbose"]);
    eprintln!("prune next to the build:\n{pruned}");
    let out = build.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the build failed next to prune:\n{}\nprune:\n{pruned}",
        text(&out)
    );
    // The records the build used survived; the last build is all cached.
    assert_eq!(du_rows(&case.run(&["du"])).len(), before + 1);
    assert!(all_cached(&case.build(&["-o", &spec])));
}

#[test]
fn prune_without_all_keeps_cache_shared_with_named_images() {
    let Some(case) = Case::new() else { return };
    case.dockerfile("FROM busybox\nRUN echo named > /named\n");
    // A tag and no output: the image is named in the state dir's store.
    case.build(&["-t", "example.com/prune/named:v1"]);
    let du = case.run(&["du"]);
    let rows = du_rows(&du);
    assert!(!rows.is_empty(), "{du}");
    for row in &rows {
        let size = row.split('\t').nth(3).unwrap().trim_end();
        assert!(size.ends_with('*'), "a record not shown shared:\n{du}");
    }
    assert!(du.contains("\nShared:\t"), "{du}");

    // No record goes (the pulled base's unnamed manifest and config may).
    let pruned = case.run(&["prune", "-f"]);
    assert!(
        pruned.lines().count() == 1 && pruned.starts_with("Total:\t"),
        "{pruned}"
    );
    assert_eq!(du_rows(&case.run(&["du"])).len(), rows.len());
    assert!(all_cached(
        &case.build(&["-t", "example.com/prune/named:v1"])
    ));

    let pruned = case.run(&["prune", "-f", "--all"]);
    assert_eq!(du_rows(&pruned).len(), rows.len(), "{pruned}");
    assert!(du_rows(&case.run(&["du"])).is_empty());
}

#[test]
fn prune_removes_what_a_killed_build_left() {
    let Some(case) = Case::new() else { return };
    case.dockerfile("FROM busybox\nRUN echo before > /before\nRUN sleep 4848\n");
    let (_, spec) = case.oci_spec();
    let ctx = case.ctx.display().to_string();
    let mut child = case
        .env
        .command(&["build", "--progress=plain", "-o", &spec, &ctx])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the RUN of the sleep to have its snapshot prepared, then SIGKILL the build.
    let active = case.env.root().join("snapshots/active");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let preparing_exec = || {
        std::fs::read_dir(&active)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("exec-"))
                    .count()
            })
            .unwrap_or(0)
    };
    // The base layer and the first RUN are committed; the second RUN sleeps prepared.
    while std::time::Instant::now() < deadline
        && !(preparing_exec() > 0 && committed_snapshots(&case.env.root()) >= 2)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    // The sandbox dies with hoist (its parent-death signal); give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        preparing_exec() > 0,
        "the killed build left no prepared snapshot"
    );

    case.run(&["prune", "-f", "--all"]);
    let left: Vec<_> = std::fs::read_dir(&active)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "active snapshots left: {left:?}");
    assert_eq!(committed_snapshots(&case.env.root()), 0);

    case.dockerfile("FROM busybox\nRUN echo before > /before\n");
    case.build(&["-o", &spec]);
}

/// `[worker.oci]` gc settings appended to the environment's registry config.
fn set_gc(case: &Case, registries: &str, gc: &str) {
    std::fs::write(
        case.env.config(),
        format!("{registries}\n[worker.oci]\n{gc}\n"),
    )
    .unwrap();
}

#[test]
fn automatic_gc_follows_the_config_and_keeps_the_last_build() {
    let Some(case) = Case::new() else { return };
    let registries = std::fs::read_to_string(case.env.config()).unwrap_or_default();
    let (_, spec) = case.oci_spec();
    // Random bytes do not compress: each RUN brings ~3 MB of snapshot and ~3 MB of blob.
    case.dockerfile("FROM busybox\nRUN head -c 3000000 /dev/urandom > /old\n");
    case.build(&["-o", &spec]);
    let old = du_rows(&case.run(&["du"]));

    // gc off: a tiny reserve removes nothing, and the output has no gc step.
    set_gc(&case, &registries, "gc = false\ngckeepstorage = 1");
    std::thread::sleep(Duration::from_millis(20));
    case.dockerfile("FROM busybox\nRUN head -c 3000000 /dev/urandom > /new\n");
    let progress = case.build(&["-o", &spec]);
    assert!(!progress.contains("[internal] gc"), "{progress}");
    let both = du_rows(&case.run(&["du"]));
    assert_eq!(both.len(), old.len() + 1, "{both:?}");

    // A 1 MB reserve: everything the last build did not use goes, after its output.
    set_gc(&case, &registries, "gc = true\ngckeepstorage = \"1MB\"");
    std::thread::sleep(Duration::from_millis(20));
    case.dockerfile("FROM busybox\nRUN head -c 3000000 /dev/urandom > /new\n");
    let progress = case.build(&["-o", &spec]);
    assert!(all_cached(&progress), "{progress}");
    let gc_line = progress
        .lines()
        .find(|l| l.ends_with("[internal] gc"))
        .unwrap_or_else(|| panic!("no gc step in:\n{progress}"));
    assert!(
        progress.trim_end().lines().last().unwrap().contains("DONE"),
        "{progress}"
    );
    assert!(
        progress.contains("removed 1 cache records"),
        "{gc_line}\n{progress}"
    );
    let after = du_rows(&case.run(&["du"]));
    assert_eq!(after.len(), both.len() - 1, "{after:?}");
    // The kept records are the last build's: it is all cached once more.
    assert!(all_cached(&case.build(&["-o", &spec])));

    // A bad value fails before building, naming the file and the key.
    set_gc(&case, &registries, "reservedSpace = \"lots\"");
    let out = case.output(&["build", "--progress=plain", &case.ctx.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("worker.oci.reservedSpace")
            && stderr.contains(&case.env.config().display().to_string()),
        "{stderr}"
    );
}
