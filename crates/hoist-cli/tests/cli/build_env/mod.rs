//! What `build_conformance` and `build_e2e` share: a [`TestRegistry`] holding the busybox
//! base images (also as `library/busybox`, `alpine` and `library/alpine`), a registry config
//! file making it the `docker.io` mirror so that `FROM busybox` resolves to it, a state
//! directory, and the built `hoist` binary run against them.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::images::{BaseImages, ALPINE_STAND_IN};
use hoist_testkit::registry::TestRegistry;

/// A registry with the base images, a config naming it the `docker.io` mirror, and a state
/// directory.
pub struct BuildEnv {
    pub registry: TestRegistry,
    pub dir: tempfile::TempDir,
}

impl BuildEnv {
    /// `None` (with the reason printed) when builds cannot run here: not root, no
    /// `docker-registry`, or no busybox .debs.
    pub fn new() -> Option<BuildEnv> {
        if std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1)
            != 0
        {
            hoist_testkit::skip("hoist build runs RUN steps in namespaces and chowns: needs root");
            return None;
        }
        let images = BaseImages::get()?;
        let registry = TestRegistry::start()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            images.push(&registry).await.unwrap();
            images
                .push_repositories(&registry, &ALPINE_STAND_IN)
                .await
                .unwrap();
        });
        let dir = tempfile::Builder::new()
            .prefix("hoist-build-env-")
            .tempdir()
            .unwrap();
        let host = registry.host();
        std::fs::write(
            dir.path().join("registries.toml"),
            format!(
                "[registry.\"docker.io\"]\nmirrors = [\"{host}\"]\n\n\
                 [registry.\"{host}\"]\nhttp = true\n"
            ),
        )
        .unwrap();
        Some(BuildEnv { registry, dir })
    }

    /// The state directory (`--root`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The registry config file (`--config`).
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("registries.toml")
    }

    /// A new empty directory under the environment's temporary directory.
    pub fn fresh_dir(&self, prefix: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{prefix}-{}", unique()));
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// `hoist --root STATE --config FILE ARGS` with no ambient docker or hoist settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
        command
            .arg("--root")
            .arg(self.root())
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("HOIST_ROOT")
            .env_remove("HOIST_CONFIG");
        command
    }

    /// Runs `hoist ARGS` to the end.
    pub fn hoist(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// How many blobs the state directory's content store holds.
    pub fn blob_count(&self) -> usize {
        count_files(&self.root().join("content/blobs/sha256"))
    }
}

/// Regular files directly in `dir` (0 when it does not exist).
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .count()
        })
        .unwrap_or(0)
}

/// A number not handed out before in this process.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A tar file's regular entries, by path (leading `./` dropped).
pub fn tar_entries(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut out = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").to_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

/// Every regular file under `dir` (not following links) whose bytes contain `marker`.
pub fn files_containing(dir: &Path, marker: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(marker.len()).any(|w| w == marker) {
                    hits.push(path);
                }
            }
        }
    }
    hits
}
