//! Build history, as BuildKit keeps it for `buildx history`: one [`BuildRecord`] per build
//! under `<state>/engine/history/<ref>/`, where `<ref>` is a random 25-character id like
//! BuildKit's.
//!
//! Each record directory holds:
//!
//! - `record.json`: the request (context, Dockerfile, target, platforms, build args,
//!   outputs), the status, times, step counts, the images written and the error, replaced
//!   only through `hoist_content::write_atomic` — once when the build starts (status
//!   `running`) and once when it ends;
//! - `events.jsonl`: every progress [`Event`] of the build, one JSON object a line, appended
//!   as the events come, so a killed build leaves a readable partial log;
//! - `lock`: flocked by the process running the build. A record still `running` whose lock
//!   no process holds is the record of a killed build, read as [`BuildStatus::Incomplete`]
//!   (liveness is a lock, never an age).
//!
//! [`HistoryStore::start`] keeps the store bounded first, as BuildKit's defaults do: at most
//! [`HistoryLimits::max_entries`] records (50) no older than [`HistoryLimits::max_age`]
//! (48 hours); records of running builds are never dropped.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs4::fs_std::FileExt;
use hoist_solver::{Digest, Event, EventKind, LogStream, SourceLines, VertexInfo};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;

use crate::build::{BuildRequest, BuildResult};
use crate::context::ContextSource;
use crate::error::{Error, Result};
use crate::state_dir::StateDir;

const RECORD_FILE: &str = "record.json";
const EVENTS_FILE: &str = "events.jsonl";
const LOCK_FILE: &str = "lock";

/// How long [`Recording::finish`] waits for progress senders still alive after the build
/// returned (ops being cancelled) before it writes the record with what it has.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How many records the store keeps, and for how long (BuildKit's `[history]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    pub max_entries: usize,
    pub max_age: Duration,
}

impl Default for HistoryLimits {
    /// BuildKit's defaults: 50 records, 48 hours.
    fn default() -> Self {
        HistoryLimits {
            max_entries: 50,
            max_age: Duration::from_secs(48 * 60 * 60),
        }
    }
}

/// How a build ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// Still running: the process that runs it holds the record's lock.
    Running,
    Completed,
    Error,
    Canceled,
    /// Recorded as running, but no process runs it any more: the build was killed.
    Incomplete,
}

/// What the build was asked to do, as shown by `history inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The main context: a directory's path, a URL, or `-` (stdin).
    pub context: String,
    /// The Dockerfile's name as the user gave it.
    pub dockerfile: String,
    pub target: Option<String>,
    /// The target platforms (the build platform when none was asked for).
    pub platforms: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    /// Each output's `type=` name.
    pub outputs: Vec<String>,
}

/// An image an output wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedImage {
    /// The output's `type=` name.
    pub output: String,
    /// The names given (`name=`).
    pub names: Vec<String>,
    /// The root's digest (index for several platforms, else manifest).
    pub digest: String,
    /// The config's digest, for a single-platform image.
    pub config_digest: Option<String>,
}

/// Why a build failed: the error, and for a failing step its name, lines and last output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildError {
    pub message: String,
    pub step: Option<String>,
    /// The Dockerfile lines of the failing step (1-based, inclusive).
    pub lines: Option<(usize, usize)>,
    /// The last lines the failing process wrote.
    pub logs: Vec<String>,
    /// The Dockerfile, when the failing step has lines in it (for an excerpt).
    pub dockerfile: Option<String>,
}

/// How many vertices the build reached, finished and took from the cache (BuildKit's
/// `NumTotalSteps`, `NumCompletedSteps` — cached ones included — and `NumCachedSteps`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    pub total: usize,
    pub completed: usize,
    pub cached: usize,
}

/// One build, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    #[serde(rename = "ref")]
    pub reference: String,
    /// buildx's build name: the context's (or Dockerfile's) directory, and the target.
    pub name: String,
    pub request: RecordedRequest,
    pub status: BuildStatus,
    /// When the build started, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// When it ended; `None` while running (or when killed).
    pub completed_unix_ms: Option<u64>,
    pub steps: StepCounts,
    pub images: Vec<RecordedImage>,
    pub error: Option<BuildError>,
}

impl BuildRecord {
    /// How long the build ran: until it ended, or until `now` when it has not.
    pub fn duration(&self, now: SystemTime) -> Duration {
        let end = self.completed_unix_ms.unwrap_or_else(|| unix_ms(now));
        Duration::from_millis(end.saturating_sub(self.created_unix_ms))
    }
}

/// The build records of a state dir.
#[derive(Debug, Clone)]
pub struct HistoryStore {
    dir: PathBuf,
    limits: HistoryLimits,
}

impl HistoryStore {
    /// The records of `state` (`<state>/engine/history`), with BuildKit's limits.
    pub fn new(state: &StateDir) -> HistoryStore {
        HistoryStore {
            dir: state.engine_dir().join("history"),
            limits: HistoryLimits::default(),
        }
    }

    /// The same store with other limits.
    pub fn with_limits(mut self, limits: HistoryLimits) -> HistoryStore {
        self.limits = limits;
        self
    }

    /// Every record, newest first.
    pub fn list(&self) -> Result<Vec<BuildRecord>> {
        let mut records = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(records),
            Err(e) => return Err(Error::io("list", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &self.dir))?;
            let Some(reference) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // A directory without its record yet is a build just starting.
            if let Some(record) = self.read(&reference)? {
                records.push(record);
            }
        }
        records.sort_by(|a, b| {
            b.created_unix_ms
                .cmp(&a.created_unix_ms)
                .then_with(|| a.reference.cmp(&b.reference))
        });
        Ok(records)
    }

    /// The record `reference`: a build id, or `^N` for the N-th newest (`^0` the latest),
    /// as buildx takes them.
    pub fn get(&self, reference: &str) -> Result<BuildRecord> {
        let not_found = || Error::HistoryNotFound {
            reference: reference.to_owned(),
        };
        if let Some(offset) = reference.strip_prefix('^') {
            let offset: usize = offset.parse().map_err(|_| not_found())?;
            return self.list()?.into_iter().nth(offset).ok_or_else(not_found);
        }
        if !is_reference(reference) {
            return Err(not_found());
        }
        self.read(reference)?.ok_or_else(not_found)
    }

    /// The progress events of the build `reference`, in the order they came. A line torn by
    /// a killed process is left out.
    pub fn events(&self, reference: &str) -> Result<Vec<Event>> {
        let record = self.get(reference)?;
        let path = self.dir.join(&record.reference).join(EVENTS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<LoggedEvent>(line).ok())
            .filter_map(LoggedEvent::into_event)
            .collect())
    }

    /// Removes the record `reference` (a build id or `^N`); a running build's cannot be.
    pub fn remove(&self, reference: &str) -> Result<()> {
        let record = self.get(reference)?;
        if record.status == BuildStatus::Running {
            return Err(Error::HistoryRunning {
                reference: record.reference,
            });
        }
        self.remove_dir(&record.reference)
    }

    /// Removes every record but those of running builds; returns how many went.
    pub fn remove_all(&self) -> Result<usize> {
        let mut removed = 0;
        for record in self.list()? {
            if record.status != BuildStatus::Running {
                self.remove_dir(&record.reference)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Starts the record of a build of `request`, dropping records beyond the limits first.
    pub fn start(&self, request: &BuildRequest) -> Result<Recording> {
        self.drop_old(SystemTime::now())?;
        fs::create_dir_all(&self.dir).map_err(Error::io("create", &self.dir))?;
        let reference = new_reference()?;
        let dir = self.dir.join(&reference);
        fs::create_dir(&dir).map_err(Error::io("create", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
        lock.lock_exclusive()
            .map_err(Error::io("lock", &lock_path))?;
        let events_path = dir.join(EVENTS_FILE);
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events_path)
            .map_err(Error::io("create", &events_path))?;
        let recorded = recorded_request(request);
        let record = BuildRecord {
            name: build_name(request, &recorded),
            reference,
            request: recorded,
            status: BuildStatus::Running,
            created_unix_ms: unix_ms(SystemTime::now()),
            completed_unix_ms: None,
            steps: StepCounts::default(),
            images: Vec::new(),
            error: None,
        };
        write_record(&dir, &record)?;
        Ok(Recording {
            dir,
            record,
            _lock: lock,
            log: Arc::new(Mutex::new(EventLog {
                file: events,
                path: events_path,
                failed: None,
                vertices: HashMap::new(),
            })),
            tee: None,
            dockerfile: request.dockerfile.clone(),
        })
    }

    /// Drops the records beyond the limits (oldest first), keeping room for one more.
    fn drop_old(&self, now: SystemTime) -> Result<()> {
        let oldest_kept = unix_ms(now)
            .saturating_sub(u64::try_from(self.limits.max_age.as_millis()).unwrap_or(u64::MAX));
        let mut kept = 0;
        for record in self.list()? {
            if record.status == BuildStatus::Running {
                continue;
            }
            if kept + 1 < self.limits.max_entries && record.created_unix_ms >= oldest_kept {
                kept += 1;
            } else {
                self.remove_dir(&record.reference)?;
            }
        }
        Ok(())
    }

    /// The record in `<dir>/<reference>`, `None` when it has none (yet); a record still
    /// running whose lock is free is [`BuildStatus::Incomplete`].
    fn read(&self, reference: &str) -> Result<Option<BuildRecord>> {
        let dir = self.dir.join(reference);
        let path = dir.join(RECORD_FILE);
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut file) => file
                .read_to_string(&mut text)
                .map_err(Error::io("read", &path))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(None),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let mut record: BuildRecord =
            serde_json::from_str(&text).map_err(|e| Error::HistoryRecord {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if record.status == BuildStatus::Running && !is_locked(&dir.join(LOCK_FILE))? {
            record.status = BuildStatus::Incomplete;
        }
        Ok(Some(record))
    }

    fn remove_dir(&self, reference: &str) -> Result<()> {
        let dir = self.dir.join(reference);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &dir)(e)),
        }
    }
}

/// The record of a build under way: [`Recording::tee`] logs its events,
/// [`Recording::finish`] writes how it ended. Holds the record's lock until dropped.
#[derive(Debug)]
pub struct Recording {
    dir: PathBuf,
    record: BuildRecord,
    _lock: File,
    log: Arc<Mutex<EventLog>>,
    tee: Option<JoinHandle<()>>,
    /// The Dockerfile as the client gave it, for the excerpt of a failing step.
    dockerfile: Option<Vec<u8>>,
}

impl Recording {
    /// The build's id.
    pub fn reference(&self) -> &str {
        &self.record.reference
    }

    /// A sender for the build's events: each is logged, counted, then passed on to `events`
    /// unchanged.
    pub fn tee(&mut self, events: Option<UnboundedSender<Event>>) -> UnboundedSender<Event> {
        let (tx, mut rx) = unbounded_channel::<Event>();
        let log = Arc::clone(&self.log);
        self.tee = Some(tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let Ok(mut log) = log.lock() {
                    log.append(&event);
                }
                if let Some(events) = &events {
                    // A closed channel means nobody renders progress any more.
                    let _ = events.send(event);
                }
            }
        }));
        tx
    }

    /// Writes how the build ended, once every event sent is logged (or after a grace time
    /// while senders of cancelled ops linger).
    pub async fn finish(mut self, outcome: &Result<BuildResult>) -> Result<()> {
        if let Some(tee) = self.tee.take() {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, tee).await;
        }
        let record = &mut self.record;
        record.completed_unix_ms = Some(unix_ms(SystemTime::now()));
        let failed = {
            let log = self
                .log
                .lock()
                .map_err(|_| Error::Task("history log".into()))?;
            record.steps = log.counts();
            log.failed
                .as_ref()
                .map(|e| (log.path.clone(), e.to_string()))
        };
        match outcome {
            Ok(result) => {
                record.status = BuildStatus::Completed;
                record.images = recorded_images(result);
            }
            Err(Error::Solve(e)) if matches!(**e, hoist_solver::Error::Cancelled) => {
                record.status = BuildStatus::Canceled;
            }
            Err(error) => {
                record.status = BuildStatus::Error;
                record.error = Some(build_error(error, self.dockerfile.as_deref()));
            }
        }
        write_record(&self.dir, record)?;
        match failed {
            Some((path, reason)) => Err(Error::HistoryRecord { path, reason }),
            None => Ok(()),
        }
    }
}

/// The events file of a recording and what its events said so far.
#[derive(Debug)]
struct EventLog {
    file: File,
    path: PathBuf,
    /// The first write that failed; the log stops there.
    failed: Option<io::Error>,
    /// Each vertex's state: `true` once finished, with whether from the cache.
    vertices: HashMap<Digest, Option<bool>>,
}

impl EventLog {
    fn append(&mut self, event: &Event) {
        let state = self.vertices.entry(event.vertex.digest).or_insert(None);
        match event.kind {
            EventKind::Cached => *state = Some(true),
            EventKind::Done { .. } => *state = Some(false),
            _ => {}
        }
        if self.failed.is_some() {
            return;
        }
        let Some(logged) = LoggedEvent::new(event) else {
            return;
        };
        // Serializing plain strings and numbers cannot fail.
        let mut line = serde_json::to_vec(&logged).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            self.failed = Some(e);
        }
    }

    fn counts(&self) -> StepCounts {
        StepCounts {
            total: self.vertices.len(),
            completed: self.vertices.values().filter(|s| s.is_some()).count(),
            cached: self.vertices.values().filter(|s| **s == Some(true)).count(),
        }
    }
}

/// One line of `events.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
struct LoggedEvent {
    vertex: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lines: Option<(usize, usize)>,
    #[serde(flatten)]
    kind: LoggedKind,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum LoggedKind {
    Started,
    Cached,
    Log {
        stderr: bool,
        elapsed_ns: u64,
        line: String,
    },
    Done {
        duration_ns: u64,
    },
    Error {
        duration_ns: u64,
        message: String,
    },
    Cancelled {
        duration_ns: u64,
    },
    /// Why the step was not cached (serialised as `cachemiss`).
    CacheMiss {
        reason: String,
    },
    /// A warning about the step (its source file's bytes are not kept: the record keeps the
    /// lines it points at).
    Warning {
        level: i64,
        short: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        detail: Vec<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        url: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ranges: Vec<(usize, usize)>,
    },
}

impl LoggedEvent {
    /// `None` for a kind of event this log does not know.
    fn new(event: &Event) -> Option<LoggedEvent> {
        let nanos = |d: &Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let kind = match &event.kind {
            EventKind::Started => LoggedKind::Started,
            EventKind::Cached => LoggedKind::Cached,
            EventKind::Log {
                stream,
                elapsed,
                line,
            } => LoggedKind::Log {
                stderr: *stream == LogStream::Stderr,
                elapsed_ns: nanos(elapsed),
                line: line.clone(),
            },
            EventKind::Done { duration } => LoggedKind::Done {
                duration_ns: nanos(duration),
            },
            EventKind::Error { duration, message } => LoggedKind::Error {
                duration_ns: nanos(duration),
                message: message.clone(),
            },
            EventKind::Cancelled { duration } => LoggedKind::Cancelled {
                duration_ns: nanos(duration),
            },
            EventKind::CacheMiss { reason } => LoggedKind::CacheMiss {
                reason: reason.clone(),
            },
            EventKind::Warning(warning) => LoggedKind::Warning {
                level: warning.level,
                short: warning.short.clone(),
                detail: warning.detail.clone(),
                url: warning.url.clone(),
                ranges: warning.ranges.iter().map(|r| (r.start, r.end)).collect(),
            },
            _ => return None,
        };
        Some(LoggedEvent {
            vertex: event.vertex.digest.to_string(),
            name: event.vertex.name.to_string(),
            lines: event.vertex.location.map(|l| (l.start, l.end)),
            kind,
        })
    }

    fn into_event(self) -> Option<Event> {
        let mut vertex = VertexInfo::new(Digest::parse(&self.vertex).ok()?, self.name);
        vertex.location = self.lines.map(|(start, end)| SourceLines { start, end });
        let kind = match self.kind {
            LoggedKind::Started => EventKind::Started,
            LoggedKind::Cached => EventKind::Cached,
            LoggedKind::Log {
                stderr,
                elapsed_ns,
                line,
            } => EventKind::Log {
                stream: if stderr {
                    LogStream::Stderr
                } else {
                    LogStream::Stdout
                },
                elapsed: Duration::from_nanos(elapsed_ns),
                line,
            },
            LoggedKind::Done { duration_ns } => EventKind::Done {
                duration: Duration::from_nanos(duration_ns),
            },
            LoggedKind::Error {
                duration_ns,
                message,
            } => EventKind::Error {
                duration: Duration::from_nanos(duration_ns),
                message,
            },
            LoggedKind::Cancelled { duration_ns } => EventKind::Cancelled {
                duration: Duration::from_nanos(duration_ns),
            },
            LoggedKind::CacheMiss { reason } => EventKind::CacheMiss { reason },
            LoggedKind::Warning {
                level,
                short,
                detail,
                url,
                ranges,
            } => EventKind::Warning(hoist_solver::Warning {
                level,
                short,
                detail,
                url,
                source: None,
                ranges: ranges
                    .into_iter()
                    .map(|(start, end)| SourceLines { start, end })
                    .collect(),
            }),
        };
        Some(Event { vertex, kind })
    }
}

fn write_record(dir: &Path, record: &BuildRecord) -> Result<()> {
    let path = dir.join(RECORD_FILE);
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::HistoryRecord {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    hoist_content::write_atomic(&path, &json)?;
    Ok(())
}

/// Whether a process holds the flock on `path` (a missing file is held by nobody).
fn is_locked(path: &Path) -> Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("open", path)(e)),
    };
    let free = FileExt::try_lock_shared(&file).map_err(Error::io("lock", path))?;
    // The shared lock taken to look goes with `file`.
    Ok(!free)
}

/// A new build id: 25 characters of `[0-9a-z]` from 128 random bits, as BuildKit's
/// `identity.NewID`.
fn new_reference() -> Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::io("read", "/dev/urandom"))?;
    let mut n = u128::from_le_bytes(bytes);
    let mut id = [b'0'; 25];
    for c in id.iter_mut().rev() {
        let digit = u8::try_from(n % 36).unwrap_or(0);
        *c = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        n /= 36;
    }
    Ok(id.iter().map(|&b| char::from(b)).collect())
}

/// Whether `s` can be a build id (and so a directory name of the store).
fn is_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn recorded_request(request: &BuildRequest) -> RecordedRequest {
    let context = match &request.context {
        ContextSource::Local(dir) | ContextSource::Owned { dir, .. } => dir.display().to_string(),
        ContextSource::Empty | ContextSource::Tar(_) => "-".to_owned(),
        ContextSource::Http(url) | ContextSource::Git(url) => url.clone(),
    };
    let platforms = if request.platforms.is_empty() {
        vec![request.options.build_platform.to_string()]
    } else {
        request.platforms.iter().map(ToString::to_string).collect()
    };
    RecordedRequest {
        context,
        dockerfile: request.dockerfile_name.clone(),
        target: request.options.target.clone(),
        platforms,
        build_args: request.options.build_args.clone(),
        outputs: request
            .outputs
            .iter()
            .map(|o| o.type_name().to_owned())
            .collect(),
    }
}

/// buildx's name for a build: `BUILDKIT_BUILD_NAME` when given; else the base name of the
/// context's directory — with the Dockerfile's directory and name when it is not called
/// `Dockerfile` — or the remote context's URL; then the target in parentheses.
fn build_name(request: &BuildRequest, recorded: &RecordedRequest) -> String {
    if let Some(name) = request.options.build_args.get("BUILDKIT_BUILD_NAME") {
        if !name.is_empty() {
            return name.clone();
        }
    }
    let base = |path: &str| {
        Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_owned())
    };
    let mut name = match &request.context {
        ContextSource::Local(dir) | ContextSource::Owned { dir, .. } => {
            let dockerfile = Path::new(&recorded.dockerfile);
            match dockerfile.file_name() {
                Some(file) if file != "Dockerfile" && recorded.dockerfile != "-" => {
                    let parent = dockerfile
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(dir);
                    let parent = std::path::absolute(parent).unwrap_or(parent.to_path_buf());
                    format!(
                        "{}/{}",
                        base(&parent.to_string_lossy()),
                        file.to_string_lossy()
                    )
                }
                _ => {
                    let dir = std::path::absolute(dir).unwrap_or(dir.clone());
                    base(&dir.to_string_lossy())
                }
            }
        }
        ContextSource::Http(url) | ContextSource::Git(url) => url.clone(),
        ContextSource::Empty | ContextSource::Tar(_) => String::new(),
    };
    if let Some(target) = &recorded.target {
        name = if name.is_empty() {
            target.clone()
        } else {
            format!("{name} ({target})")
        };
    }
    name
}

fn recorded_images(result: &BuildResult) -> Vec<RecordedImage> {
    result
        .export
        .outputs
        .iter()
        .filter_map(|output| {
            let image = output.image.as_ref()?;
            Some(RecordedImage {
                output: output.output_type.to_owned(),
                names: image.names.clone(),
                digest: image.descriptor.digest.to_string(),
                config_digest: image.config_digest.as_ref().map(ToString::to_string),
            })
        })
        .collect()
}

/// A failed build's error; a failing step's is the op's own message, as BuildKit records
/// it (the client adds `failed to solve:`).
fn build_error(error: &Error, dockerfile: Option<&[u8]>) -> BuildError {
    match error {
        Error::Step {
            step,
            message,
            output,
            location,
        } => BuildError {
            message: message.clone(),
            step: Some(step.clone()),
            lines: location.map(|l| (l.start, l.end)),
            logs: output.clone(),
            dockerfile: location
                .and(dockerfile)
                .map(|d| String::from_utf8_lossy(d).into_owned()),
        },
        other => BuildError {
            message: other.to_string(),
            step: None,
            lines: None,
            logs: Vec::new(),
            dockerfile: None,
        },
    }
}
