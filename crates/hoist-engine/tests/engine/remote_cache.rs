//! `--cache-to` / `--cache-from` seen from `build`: a cache exported from one state dir
//! makes every step CACHED in an empty one (local directory and registry), `mode=min`
//! carries only the final stage, and a missing or corrupt cache is a warning.

use std::path::Path;

use hoist_engine::{CacheExport, CacheImport, CacheOptions};
use hoist_sandbox::ExitStatus;
use hoist_solver::EventKind;
use hoist_testkit::registry::TestRegistry;

use crate::case::{Built, Case};

const DOCKERFILE: &str = "FROM scratch AS builder\nCOPY a.txt /a.txt\nRUN stamp\n\
                          FROM scratch\nCOPY --from=builder /stamp /stamp\nCOPY b.txt /b.txt\n";

/// A case whose RUN writes `/stamp` holding how many runs came before it.
fn stamping_case() -> Case {
    let case = Case::new(DOCKERFILE, &[("a.txt", "a\n"), ("b.txt", "b\n")]);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    case.script(move |spec, _| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::fs::write(spec.rootfs.join("stamp"), n.to_string())?;
        Ok(ExitStatus::Code(0))
    })
}

fn cache_to(spec: &str) -> CacheOptions {
    CacheOptions {
        imports: Vec::new(),
        exports: vec![CacheExport::parse(spec).unwrap()],
    }
}

fn cache_from(spec: &str) -> CacheOptions {
    CacheOptions {
        imports: vec![CacheImport::parse(spec).unwrap()],
        exports: Vec::new(),
    }
}

fn build(case: &Case, cache: CacheOptions) -> Built {
    case.build_with(|r| r.cache = cache).unwrap()
}

fn diff_ids(built: &Built) -> Vec<String> {
    built.result.images[0]
        .layers
        .iter()
        .map(|l| l.diff_id.to_string())
        .collect()
}

/// The log lines of every step whose name contains `part`.
fn logs(built: &Built, part: &str) -> Vec<String> {
    built
        .events
        .iter()
        .filter(|e| e.vertex.name.contains(part))
        .filter_map(|e| match &e.kind {
            EventKind::Log { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn all_cached(built: &Built) {
    let mut outcomes = built.outcomes();
    outcomes.retain(|name, _| !name.starts_with("importing cache"));
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert!(outcomes.values().all(|o| *o == "cached"), "{outcomes:?}");
}

/// The records of the cache tagged `latest` in the local cache dir `dir`.
fn local_records(dir: &Path) -> Vec<String> {
    let read = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let root = &index["manifests"][0];
    assert_eq!(
        root["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let manifest = read(root["digest"].as_str().unwrap());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );
    let config = read(manifest["config"]["digest"].as_str().unwrap());
    let mut records: Vec<String> = config["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_owned())
        .collect();
    records.sort();
    records
}

#[test]
fn a_local_max_cache_makes_every_step_cached_in_an_empty_state_dir() {
    let case = stamping_case();
    let cache = case.context_dir().join("../cache");
    let first = build(
        &case,
        cache_to(&format!("type=local,dest={},mode=max", cache.display())),
    );
    assert_eq!(first.read("stamp"), "0");
    assert!(
        logs(&first, "exporting cache")
            .iter()
            .any(|l| l.contains("4 records")),
        "{:?}",
        logs(&first, "exporting cache")
    );

    case.reset_state();
    let second = build(
        &case,
        cache_from(&format!("type=local,src={}", cache.display())),
    );
    all_cached(&second);
    assert_eq!(case.runs(), 1, "no RUN ran again");
    assert_eq!(second.read("stamp"), "0", "the first build's RUN result");
    assert_eq!(diff_ids(&first), diff_ids(&second));

    // Imported records became local ones: a third build needs no import.
    let third = build(&case, CacheOptions::default());
    all_cached(&third);
}

#[test]
fn mode_min_exports_only_the_final_stages_steps() {
    let case = stamping_case();
    let min = case.context_dir().join("../min");
    let max = case.context_dir().join("../max");
    let mut options = cache_to(&format!("type=local,dest={}", min.display()));
    options
        .exports
        .push(CacheExport::parse(&format!("type=local,dest={},mode=max", max.display())).unwrap());
    build(&case, options);
    let (min, max) = (local_records(&min), local_records(&max));
    // The final stage's two COPYs; max adds the builder's COPY and RUN.
    assert_eq!(min.len(), 2, "{min:?}");
    assert_eq!(max.len(), 4, "{max:?}");
    assert!(min.iter().all(|r| max.contains(r)));
}

#[test]
fn a_missing_or_corrupt_local_cache_is_a_warning() {
    let case = stamping_case();
    let missing = case.context_dir().join("../nothing-here");
    let built = build(
        &case,
        cache_from(&format!("type=local,src={}", missing.display())),
    );
    let warned = logs(&built, "importing cache manifest");
    assert!(
        warned
            .iter()
            .any(|l| l.starts_with("WARNING:") && l.contains("nothing-here")),
        "{warned:?}"
    );
    assert_eq!(built.read("stamp"), "0");

    // A cache whose config blob is garbage (with a matching digest: not a transfer error).
    let cache = case.context_dir().join("../cache");
    build(
        &case,
        cache_to(&format!("type=local,dest={},mode=max", cache.display())),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let root_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let root_path = cache.join("blobs/sha256").join(&root_digest[7..]);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&root_path).unwrap()).unwrap();
    let garbage = b"{\"records\": 42}";
    let garbage_digest = hoist_oci::Digest::sha256_of(garbage);
    std::fs::write(
        cache.join("blobs/sha256").join(garbage_digest.encoded()),
        garbage,
    )
    .unwrap();
    manifest["config"]["digest"] = garbage_digest.to_string().into();
    manifest["config"]["size"] = garbage.len().into();
    std::fs::write(&root_path, serde_json::to_vec(&manifest).unwrap()).unwrap();

    case.reset_state();
    let built = build(
        &case,
        cache_from(&format!("type=local,src={}", cache.display())),
    );
    let warned = logs(&built, "importing cache manifest");
    assert!(
        warned.iter().any(|l| l.starts_with("WARNING:")),
        "a corrupt manifest (its digest no longer matches) warns: {warned:?}"
    );
    assert_eq!(
        built.outcome("RUN stamp"),
        "done",
        "built without the cache"
    );
}

#[test]
fn a_corrupt_layer_in_a_local_cache_is_not_stored_and_the_step_runs() {
    let case = stamping_case();
    let cache = case.context_dir().join("../cache");
    build(
        &case,
        cache_to(&format!("type=local,dest={},mode=max", cache.display())),
    );
    // Every layer blob of the cache flipped in its last byte: same size, wrong digest.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let root = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cache.join("blobs/sha256").join(&root[7..])).unwrap(),
    )
    .unwrap();
    let mut corrupted = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let path = cache.join("blobs/sha256").join(&digest[7..]);
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        corrupted.push(digest.to_owned());
    }

    case.reset_state();
    let built = build(
        &case,
        cache_from(&format!("type=local,src={}", cache.display())),
    );
    assert_eq!(built.outcome("RUN stamp"), "done");
    assert_eq!(case.runs(), 2);
    let warned = logs(&built, "importing cache record");
    assert!(
        warned.iter().any(|l| l.starts_with("WARNING:")),
        "{warned:?}"
    );
    let store = hoist_engine::ContentStore::open(case.state().root()).unwrap();
    for digest in &corrupted {
        let digest = hoist_oci::Digest::parse(digest).unwrap();
        assert!(!store.has(&digest), "{digest} stored although corrupt");
    }
}

#[test]
fn a_failed_export_warns_unless_ignore_error_is_false() {
    let case = stamping_case();
    // A file where the cache directory should be.
    let blocked = case.context_dir().join("Dockerfile");
    let built = build(
        &case,
        cache_to(&format!("type=local,dest={}", blocked.display())),
    );
    let warned = logs(&built, "exporting cache");
    assert!(
        warned.iter().any(|l| l.starts_with("WARNING:")),
        "{warned:?}"
    );
    let err = case
        .build_with(|r| {
            r.cache = cache_to(&format!(
                "type=local,dest={},ignore-error=false",
                blocked.display()
            ))
        })
        .err()
        .expect("ignore-error=false fails the build");
    assert!(err.to_string().contains("Dockerfile"), "{err}");
}

#[test]
fn a_registry_max_cache_makes_every_step_cached_in_an_empty_state_dir() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let reference = format!("{}/app/cache:main", registry.host());
    let case = stamping_case();
    let first = build(
        &case,
        cache_to(&format!("type=registry,ref={reference},mode=max")),
    );
    let exported = logs(&first, "exporting cache to registry");
    assert!(
        exported
            .iter()
            .any(|l| l.contains("4 records") && l.contains("4 uploaded")),
        "{exported:?}"
    );

    // Exported again from a warm state dir: no layer is sent twice (the cache config is
    // new when the second ticked: it dates the records).
    let again = build(
        &case,
        cache_to(&format!("type=registry,ref={reference},mode=max")),
    );
    let exported = logs(&again, "exporting cache to registry");
    // `N blobs: U uploaded, A already there`: at most the config goes again.
    let counts = exported.iter().find_map(|l| {
        let (_, rest) = l.split_once(" blobs: ")?;
        let (uploaded, rest) = rest.split_once(" uploaded, ")?;
        let (there, _) = rest.split_once(" already there")?;
        Some((
            uploaded.parse::<usize>().ok()?,
            there.parse::<usize>().ok()?,
        ))
    });
    let (uploaded, there) = counts.unwrap_or_else(|| panic!("{exported:?}"));
    assert!(uploaded <= 1 && there >= 3, "{exported:?}");

    case.reset_state();
    let second = build(&case, cache_from(&reference));
    all_cached(&second);
    assert_eq!(case.runs(), 1);
    assert_eq!(second.read("stamp"), "0");
    assert_eq!(diff_ids(&first), diff_ids(&second));

    // A reference that does not exist: a warning, and the build goes on.
    case.reset_state();
    let missing = build(
        &case,
        cache_from(&format!("{}/app/cache:nope", registry.host())),
    );
    let warned = logs(&missing, "importing cache manifest");
    assert!(
        warned
            .iter()
            .any(|l| l.starts_with("WARNING:") && l.contains("nope")),
        "{warned:?}"
    );
    assert_eq!(missing.outcome("RUN stamp"), "done");
}
