//! BuildKit's Dockerfile integration cases (`buildkit-dockerfile-integration` in the
//! conformance data) as typed data: each [`IntegrationCase`] has a build context, a
//! Dockerfile, the images it uses and one or more [`Run`]s (frontend attributes, export type,
//! what must hold afterwards). Nothing here builds; the engine's runner does.
//!
//! ```no_run
//! let Some(cases) = hoist_testkit::integration::cases() else { return };
//! for case in &cases {
//!     let ctx = case.materialize().unwrap(); // a temp dir with the upstream modes
//!     for run in &case.runs {
//!         let dockerfile = ctx.dockerfile(case, run);
//!         // build ctx.context() with dockerfile and run.frontend_attrs, then check
//!         // run.expect_files, run.image_config_checks() ...
//!     }
//! }
//! ```

mod check;

pub use check::{known_failures, unexpected_and_fixed};
mod config_check;
mod materialize;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hoist_oci::Platform;
use serde::{Deserialize, Deserializer};

pub use config_check::{ConfigCheck, ConfigCheckKind};
pub use materialize::MaterializedCase;

use crate::error::{Result, TestkitError};

/// The conformance folder of these cases.
pub const FOLDER: &str = "buildkit-dockerfile-integration";

/// Every case, in folder order; `None` (after [`crate::skip`]) when the conformance data is
/// absent.
///
/// # Panics
///
/// When a case does not load: the data is fixed, so that is a bug here or in the data, and
/// [`load_cases`] says which file.
pub fn cases() -> Option<Vec<IntegrationCase>> {
    let dir = crate::conformance_dir(FOLDER)?;
    match load_cases(&dir) {
        Ok(cases) => Some(cases),
        Err(err) => panic!("cannot load the {FOLDER} cases: {err}"),
    }
}

/// Loads every case under `dir/cases`, sorted by id.
pub fn load_cases(dir: &Path) -> Result<Vec<IntegrationCase>> {
    let cases_dir = dir.join("cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .map_err(TestkitError::io("read directory", &cases_dir))?
        .map(|entry| {
            entry
                .map(|e| e.path())
                .map_err(TestkitError::io("read directory", &cases_dir))
        })
        .collect::<Result<_>>()?;
    dirs.retain(|path| path.join("case.json").is_file());
    dirs.sort();
    dirs.iter()
        .map(|path| IntegrationCase::load(path))
        .collect()
}

/// One case: a context, a Dockerfile and the builds made from them.
#[derive(Debug, Clone)]
pub struct IntegrationCase {
    /// The folder name (`08-copy-chown`).
    pub id: String,
    /// The case folder.
    pub dir: PathBuf,
    /// Where upstream has it.
    pub upstream: Upstream,
    /// Which branch of the upstream test (the Linux one).
    pub variant: String,
    /// Images the Dockerfiles name (`busybox`, `alpine`, `busybox:latest`).
    pub images_used: Vec<String>,
    /// Where context and Dockerfile are, and what the context holds.
    pub layout: Layout,
    /// Extra Dockerfiles by name (`with-final-stage` → `variants/with-final-stage/Dockerfile`).
    pub variants: BTreeMap<String, String>,
    /// The builds, in order.
    pub runs: Vec<Run>,
    /// `expect.md`: the expectations in words.
    pub expect_md: String,
}

/// The upstream test a case comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `https://github.com/moby/buildkit`.
    pub repository: String,
    /// The commit read.
    pub commit: String,
    /// The Go file (`frontend/dockerfile/dockerfile_copy_test.go`).
    pub file: String,
    /// The Go function (`testCopyChown`).
    pub function: String,
}

/// Where a case's files are, relative to the case folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// The folder holding the Dockerfile (`context` mostly; case 16 has `dockerfile-dir`).
    pub dockerfile_dir: String,
    /// The build context folder.
    pub context_dir: String,
    /// What the context holds, with upstream's modes.
    pub context_listing: Vec<Entry>,
    /// What the Dockerfile folder holds when it is not the context.
    #[serde(default)]
    pub dockerfile_dir_listing: Vec<Entry>,
}

/// A file, directory or symlink of a context, as upstream created it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Entry {
    /// A regular file.
    File {
        /// Path inside the folder.
        path: String,
        /// Upstream's permission bits.
        upstream_mode: Mode,
        /// Its size in bytes.
        size: u64,
    },
    /// A directory.
    Dir {
        /// Path inside the folder.
        path: String,
        /// Upstream's permission bits.
        upstream_mode: Mode,
    },
    /// A symbolic link.
    Symlink {
        /// Path inside the folder.
        path: String,
        /// The link text.
        target: String,
    },
}

impl Entry {
    /// The path inside the folder.
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

/// Permission bits, written in case.json as an octal string (`"0600"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        u32::from_str_radix(&text, 8)
            .ok()
            .filter(|mode| *mode <= 0o7777)
            .map(Mode)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid octal mode {text:?}")))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// What a build exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Export {
    /// The final stage's filesystem into a directory.
    Local,
    /// An image whose config is inspected.
    Image,
    /// An OCI layout tarball.
    Oci,
}

/// One build of a case and what must hold after it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Options for the Dockerfile frontend (`build-arg:NAME`, `target`, `platform`, ...).
    pub frontend_attrs: FrontendAttrs,
    /// A variant Dockerfile (path relative to the case folder) instead of the context's.
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// What is exported; `None`: build only (success is the assertion).
    pub export: Option<Export>,
    /// Whether the build succeeds.
    pub expect_success: bool,
    /// Substrings of the error text of a failing build.
    #[serde(default)]
    pub expect_error_contains: Vec<String>,
    /// Exact contents of exported regular files (paths relative to the export root).
    #[serde(default)]
    pub expect_files: BTreeMap<String, String>,
    /// Exact contents read through symlinks.
    #[serde(default)]
    pub expect_files_following_symlinks: BTreeMap<String, String>,
    /// Symlinks and their link text.
    #[serde(default)]
    pub expect_entries: BTreeMap<String, String>,
    /// Substrings each file must contain.
    #[serde(default)]
    pub expect_file_contains: BTreeMap<String, Vec<String>>,
    /// Substrings each file must not contain.
    #[serde(default)]
    pub expect_file_not_contains: BTreeMap<String, Vec<String>>,
    /// Paths that must not exist.
    #[serde(default)]
    pub expect_absent: Vec<String>,
    /// Paths that must be directories.
    #[serde(default)]
    pub expect_dirs: Vec<String>,
    /// Paths that must be empty directories.
    #[serde(default)]
    pub expect_empty_dirs: Vec<String>,
    /// Checks on the image config, raw (see [`Run::image_config_checks`]).
    #[serde(default)]
    pub expect_image_config: BTreeMap<String, serde_json::Value>,
    /// What the exported OCI layout holds.
    #[serde(default)]
    pub expect_oci: Option<ExpectOci>,
    /// A remark on the run.
    #[serde(default)]
    pub note: Option<String>,
}

impl Run {
    /// [`Run::expect_image_config`] as typed checks (`config.Env contains`, `history.length`,
    /// placeholders), in key order.
    pub fn image_config_checks(&self) -> Result<Vec<ConfigCheck>, String> {
        self.expect_image_config
            .iter()
            .map(|(key, value)| ConfigCheck::parse(key, value.clone()))
            .collect()
    }
}

/// The frontend attributes of a run, typed. Unknown keys are refused when loading, so a new
/// attribute in the data shows up here first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct FrontendAttrs {
    /// `build-arg:NAME` → value.
    pub build_args: BTreeMap<String, String>,
    /// `label:NAME` → value.
    pub labels: BTreeMap<String, String>,
    /// `target`: the stage to build.
    pub target: Option<String>,
    /// `platform`: the target platforms (comma-separated upstream).
    pub platforms: Vec<Platform>,
    /// `filename`: the Dockerfile's name inside the Dockerfile folder.
    pub filename: Option<String>,
    /// Every attribute as written.
    pub raw: BTreeMap<String, String>,
}

impl FrontendAttrs {
    /// The attributes as flags `docker build` and `hoist build` both take (`--build-arg`,
    /// `--label`, `--target`, `--platform`).
    pub fn cli_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (name, value) in &self.build_args {
            flags.push(format!("--build-arg={name}={value}"));
        }
        for (name, value) in &self.labels {
            flags.push(format!("--label={name}={value}"));
        }
        if let Some(target) = &self.target {
            flags.push(format!("--target={target}"));
        }
        if let Some(platform) = self.raw.get("platform") {
            flags.push(format!("--platform={platform}"));
        }
        flags
    }
}

impl TryFrom<BTreeMap<String, String>> for FrontendAttrs {
    type Error = String;

    fn try_from(raw: BTreeMap<String, String>) -> std::result::Result<Self, String> {
        let mut attrs = FrontendAttrs {
            raw: raw.clone(),
            ..FrontendAttrs::default()
        };
        for (key, value) in raw {
            if let Some(name) = key.strip_prefix("build-arg:") {
                attrs.build_args.insert(name.to_owned(), value);
            } else if let Some(name) = key.strip_prefix("label:") {
                attrs.labels.insert(name.to_owned(), value);
            } else {
                match key.as_str() {
                    "target" => attrs.target = Some(value),
                    "filename" => attrs.filename = Some(value),
                    "platform" => {
                        attrs.platforms = Platform::parse_list(&value)
                            .map_err(|err| format!("platform {value:?}: {err}"))?
                    }
                    other => return Err(format!("unknown frontend attribute {other:?}")),
                }
            }
        }
        Ok(attrs)
    }
}

/// What an exported OCI layout must hold.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectOci {
    /// What `index.json`'s first manifest is, in words.
    #[serde(rename = "index.json manifests[0]", default)]
    pub index_json_manifest: Option<String>,
    /// The manifests of that index, in order.
    pub manifests: Vec<ExpectOciManifest>,
}

/// One manifest of an exported OCI index.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpectOciManifest {
    /// Its platform (`linux/amd64`).
    pub platform: String,
    /// How many layers it has.
    pub layers: usize,
    /// Config fields by dotted path (`config.Entrypoint`); `null` means absent.
    #[serde(flatten)]
    pub config: BTreeMap<String, serde_json::Value>,
}

/// case.json as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    upstream: Upstream,
    variant: String,
    images_used: Vec<String>,
    layout: Layout,
    #[serde(default)]
    variants: BTreeMap<String, String>,
    runs: Vec<Run>,
}

impl IntegrationCase {
    /// Loads the case in `dir` (its `case.json` and `expect.md`).
    pub fn load(dir: &Path) -> Result<IntegrationCase> {
        let id = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let json_path = dir.join("case.json");
        let text = std::fs::read(&json_path).map_err(TestkitError::io("read", &json_path))?;
        let file: CaseFile =
            serde_json::from_slice(&text).map_err(|source| TestkitError::Json {
                path: json_path.clone(),
                source,
            })?;
        let md_path = dir.join("expect.md");
        let expect_md =
            std::fs::read_to_string(&md_path).map_err(TestkitError::io("read", &md_path))?;
        let case = IntegrationCase {
            id,
            dir: dir.to_owned(),
            upstream: file.upstream,
            variant: file.variant,
            images_used: file.images_used,
            layout: file.layout,
            variants: file.variants,
            runs: file.runs,
            expect_md,
        };
        case.check_paths()?;
        Ok(case)
    }

    /// The build context in the conformance folder (read-only, modes not upstream's: build
    /// from [`IntegrationCase::materialize`] instead).
    pub fn context_dir(&self) -> PathBuf {
        self.dir.join(&self.layout.context_dir)
    }

    /// The Dockerfile `run` uses, in the conformance folder: the run's variant, else the
    /// `filename` attribute (or `Dockerfile`) in the Dockerfile folder. A Dockerfile the
    /// listing has as a symlink (case 09) is followed to its target here, because the
    /// conformance copy holds the link text as a plain file.
    pub fn dockerfile(&self, run: &Run) -> PathBuf {
        let mut relative = self.dockerfile_relative(run);
        let folder = Path::new(&self.layout.dockerfile_dir);
        let listing = if self.layout.dockerfile_dir == self.layout.context_dir {
            &self.layout.context_listing
        } else {
            &self.layout.dockerfile_dir_listing
        };
        // A few hops at most; a loop in the listing ends here rather than spinning.
        for _ in 0..8 {
            let Ok(inside) = relative.strip_prefix(folder) else {
                break;
            };
            let link = listing.iter().find_map(|entry| match entry {
                Entry::Symlink { path, target } if Path::new(path) == inside => Some(target),
                _ => None,
            });
            let Some(target) = link else { break };
            let parent = inside.parent().unwrap_or(Path::new(""));
            relative = folder.join(parent).join(target);
        }
        self.dir.join(relative)
    }

    /// Whether any run expects the build to fail.
    pub fn expects_error(&self) -> bool {
        self.runs.iter().any(|run| !run.expect_success)
    }

    /// Whether the case needs base images (and so a way to pull them and, mostly, to RUN).
    pub fn needs_images(&self) -> bool {
        !self.images_used.is_empty()
    }

    pub(crate) fn dockerfile_relative(&self, run: &Run) -> PathBuf {
        match &run.dockerfile {
            Some(variant) => PathBuf::from(variant),
            None => Path::new(&self.layout.dockerfile_dir).join(
                run.frontend_attrs
                    .filename
                    .as_deref()
                    .unwrap_or("Dockerfile"),
            ),
        }
    }

    /// Every path the case names stays inside the case folder.
    fn check_paths(&self) -> Result<()> {
        let listed = self
            .layout
            .context_listing
            .iter()
            .chain(&self.layout.dockerfile_dir_listing)
            .map(Entry::path);
        let folders = [
            self.layout.context_dir.as_str(),
            self.layout.dockerfile_dir.as_str(),
        ];
        let variants = self.variants.values().map(String::as_str);
        let runs = self.runs.iter().filter_map(|run| run.dockerfile.as_deref());
        for path in listed.chain(folders).chain(variants).chain(runs) {
            if !is_inside(path) {
                return Err(self.error(format!("path {path:?} leaves the case folder")));
            }
        }
        Ok(())
    }

    pub(crate) fn error(&self, message: String) -> TestkitError {
        TestkitError::Case {
            case: self.id.clone(),
            message,
        }
    }
}

/// A relative path with no `..`.
fn is_inside(path: &str) -> bool {
    let path = Path::new(path);
    path.is_relative()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}
