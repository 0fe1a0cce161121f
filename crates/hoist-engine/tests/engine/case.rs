//! [`Case`]: one build context and state dir in a temp dir, built with `hoist_engine::build`
//! through a fresh [`Worker`] each time (so the cache is read back from disk), RUN steps
//! answered by a [`Script`] in this process instead of a sandbox: no root needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hoist_engine::StateDir;
use hoist_engine::{build, BuildRequest, BuildResult, Worker};
use hoist_export::Output;
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};
use hoist_sandbox::{AnyExecutor, ExitStatus, OutputSink, RunSpec, Script, ScriptedExecutor};
use hoist_solver::{Event, EventKind};

pub struct Case {
    dir: tempfile::TempDir,
    script: Arc<Script>,
    /// How many RUN steps the script ran, over every build of the case.
    runs: Arc<AtomicUsize>,
}

/// One finished build: what `build` returned, its progress events and the exported tree.
pub struct Built {
    pub result: BuildResult,
    pub events: Vec<Event>,
    pub out: PathBuf,
}

impl Case {
    /// A context holding `Dockerfile` and `files` (`name`, content); RUN steps fail until
    /// [`Case::script`] says what they do.
    pub fn new(dockerfile: &str, files: &[(&str, &str)]) -> Case {
        let case = Case {
            dir: tempfile::tempdir().unwrap(),
            script: Arc::new(|spec: &RunSpec, _: &mut dyn OutputSink| {
                Err(std::io::Error::other(format!(
                    "no script for RUN {:?}",
                    spec.args
                )))
            }),
            runs: Arc::new(AtomicUsize::new(0)),
        };
        case.write("Dockerfile", dockerfile);
        for (name, text) in files {
            case.write(name, text);
        }
        case
    }

    /// RUN steps call `script` with the spec (its rootfs is the step's snapshot).
    pub fn script(
        mut self,
        script: impl Fn(&RunSpec, &mut dyn OutputSink) -> std::io::Result<ExitStatus>
            + Send
            + Sync
            + 'static,
    ) -> Case {
        self.script = Arc::new(script);
        self
    }

    /// Writes the context file `name`.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join("ctx").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The context directory (`ctx/`, holding the Dockerfile).
    pub fn context_dir(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    pub fn state(&self) -> StateDir {
        StateDir::new(self.dir.path().join("state"))
    }

    /// Removes the state dir: the next build starts with an empty cache.
    pub fn reset_state(&self) {
        let _ = std::fs::remove_dir_all(self.dir.path().join("state"));
    }

    /// How many RUN steps ran so far.
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Builds for the host platform, exporting to a fresh `out/`.
    pub fn build(&self) -> Built {
        self.build_with(|_| {}).unwrap()
    }

    /// [`Case::build`] after `edit` changed the request.
    pub fn build_with(
        &self,
        edit: impl FnOnce(&mut BuildRequest),
    ) -> Result<Built, hoist_engine::Error> {
        let context = self.dir.path().join("ctx");
        let out = self.dir.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let mut request = BuildRequest {
            outputs: Output::parse_all(&[format!("type=local,dest={}", out.display())]).unwrap(),
            ..BuildRequest::new(
                Some(std::fs::read(context.join("Dockerfile")).unwrap()),
                context.join("Dockerfile").display().to_string(),
                context.into(),
                BuildOptions::new(Platform::host()),
            )
        };
        edit(&mut request);
        let (script, runs) = (Arc::clone(&self.script), Arc::clone(&self.runs));
        let executor = ScriptedExecutor::new(move |spec, sink| {
            runs.fetch_add(1, Ordering::SeqCst);
            script(spec, sink)
        });
        let client = RegistryClient::new(RegistryConfig::default(), Credentials::default());
        let worker =
            Worker::with_executor(self.state(), client, AnyExecutor::Scripted(executor)).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let result = runtime.block_on(build(Arc::new(worker), request, Some(tx)))?;
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        Ok(Built {
            result,
            events,
            out,
        })
    }
}

impl Built {
    /// The outcome (`cached` or `done`) of each Dockerfile step, by its name without
    /// BuildKit's `[i/n] ` numbering (internal and export steps left out).
    pub fn outcomes(&self) -> BTreeMap<String, &'static str> {
        let mut out = BTreeMap::new();
        for event in &self.events {
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

    /// The outcome of the one step whose name contains `part`.
    pub fn outcome(&self, part: &str) -> &'static str {
        let outcomes = self.outcomes();
        let found: Vec<_> = outcomes
            .iter()
            .filter(|(name, _)| name.contains(part))
            .collect();
        assert_eq!(found.len(), 1, "one step {part:?} in {outcomes:?}");
        found[0].1
    }

    /// The exported file `rel`.
    pub fn read(&self, rel: &str) -> String {
        read(&self.out.join(rel))
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
