//! The gateway's file calls on a solved ref (`LLBBridge.ReadFile`, `ReadDir`, `StatFile`),
//! answered from the ref's filesystem as BuildKit's bridge answers them: paths resolve
//! inside the result (hoist-engine's [`ResultRoot`]: `..` stops at its root, symlinks —
//! absolute ones too — are followed inside it, the last one included), `ReadFile` honours
//! its range, `ReadDir` lists a directory's own entries (sorted by name, those matching
//! `include_pattern` when set, a moby/patternmatcher pattern), each as fsutil's `Stat`
//! named by its name in the directory; `StatFile`'s `Stat` is named by the resolved file's
//! base name.

use std::path::Path;

use hoist_engine::ResultRoot;
use hoist_proto::fsutil_types::Stat;
use hoist_proto::gateway::{
    ReadDirRequest, ReadDirResponse, ReadFileRequest, ReadFileResponse, StatFileRequest,
    StatFileResponse,
};
use hoist_session::fsutil::walk::{walk, WalkError};
use hoist_session::fsutil::Filter;
use tonic::Status;

/// A file call, with the ref it names.
#[derive(Debug)]
pub(crate) enum FileRequest {
    Read(ReadFileRequest),
    Dir(ReadDirRequest),
    Stat(StatFileRequest),
}

/// A file call's answer.
#[derive(Debug)]
pub(crate) enum FileAnswer {
    Read(ReadFileResponse),
    Dir(ReadDirResponse),
    Stat(StatFileResponse),
}

impl FileRequest {
    /// The ref the call names.
    pub(crate) fn reference(&self) -> &str {
        match self {
            FileRequest::Read(r) => &r.r#ref,
            FileRequest::Dir(r) => &r.r#ref,
            FileRequest::Stat(r) => &r.r#ref,
        }
    }

    /// The answer from `root`, the ref's filesystem.
    pub(crate) fn answer(&self, root: &ResultRoot) -> Result<FileAnswer, Status> {
        match self {
            FileRequest::Read(request) => read_file(root, request).map(FileAnswer::Read),
            FileRequest::Dir(request) => read_dir(root, request).map(FileAnswer::Dir),
            FileRequest::Stat(request) => stat_file(root, request).map(FileAnswer::Stat),
        }
    }
}

/// An engine error as the call's status: NotFound for a missing file.
fn engine_status(err: hoist_engine::Error) -> Status {
    match &err {
        hoist_engine::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Status::not_found(err.to_string())
        }
        hoist_engine::Error::Io { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::IsADirectory | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Status::invalid_argument(err.to_string())
        }
        _ => Status::unknown(err.to_string()),
    }
}

fn io_status(action: &str, path: &str, err: &std::io::Error) -> Status {
    let message = format!("cannot {action} {path}: {err}");
    match err.kind() {
        std::io::ErrorKind::NotFound => Status::not_found(message),
        std::io::ErrorKind::NotADirectory => Status::invalid_argument(message),
        _ => Status::unknown(message),
    }
}

fn read_file(root: &ResultRoot, request: &ReadFileRequest) -> Result<ReadFileResponse, Status> {
    let range = match &request.range {
        None => None,
        Some(range) => {
            let offset = u64::try_from(range.offset).map_err(|_| {
                Status::invalid_argument(format!(
                    "reading {}: negative offset {}",
                    request.file_path, range.offset
                ))
            })?;
            let length = u64::try_from(range.length).map_err(|_| {
                Status::invalid_argument(format!(
                    "reading {}: negative length {}",
                    request.file_path, range.length
                ))
            })?;
            Some((offset, length))
        }
    };
    // Never more than one answer can carry is read into memory.
    let (offset, length) = range.unwrap_or((0, u64::MAX));
    let bounded = Some((offset, length.min(MAX_READ + 1)));
    let data = root
        .read_file(&request.file_path, bounded)
        .map_err(engine_status)?;
    if data.len() as u64 > MAX_READ {
        return Err(Status::resource_exhausted(format!(
            "reading {}: more than {} MiB in one ReadFile (a gRPC message's limit); read it in ranges",
            request.file_path,
            MAX_READ >> 20
        )));
    }
    Ok(ReadFileResponse { data })
}

/// The most bytes one `ReadFile` answers: BuildKit's clients take messages of up to 16 MiB.
const MAX_READ: u64 = 16 << 20;

fn fsutil_stat(name: &str, host: &Path, shown: &str) -> Result<Stat, Status> {
    let meta = std::fs::symlink_metadata(host).map_err(|e| io_status("stat", shown, &e))?;
    hoist_session::fsutil::walk::stat(name, host, &meta)
        .map_err(|e| Status::unknown(format!("cannot stat {shown}: {e}")))
}

fn read_dir(root: &ResultRoot, request: &ReadDirRequest) -> Result<ReadDirResponse, Status> {
    let shown = &request.dir_path;
    let dir = root.resolve(shown).map_err(engine_status)?;
    if request.include_pattern.is_empty() {
        return list_dir(&dir, shown);
    }
    // fsutil's walk with the pattern as include pattern, as BuildKit's ReadDir: the
    // directory's own entries that match, and those directories holding a match deeper
    // down (fsutil sends a filtered-out directory once something inside it is sent).
    let filter = Filter {
        include: vec![request.include_pattern.clone()],
        ..Filter::default()
    };
    let mut entries = Vec::new();
    walk(&dir, &filter, |entry| {
        if !entry.stat.path.contains('/') {
            entries.push(entry.stat);
        }
        Ok(())
    })
    .map_err(|err| match &err {
        WalkError::Pattern { .. } => Status::invalid_argument(format!(
            "invalid include pattern {:?}: {err}",
            request.include_pattern
        )),
        WalkError::Io { source, .. } => io_status("read directory", shown, source),
        _ => Status::unknown(format!("cannot read directory {shown}: {err}")),
    })?;
    Ok(ReadDirResponse { entries })
}

/// Every entry of `dir`, sorted by name.
fn list_dir(dir: &Path, shown: &str) -> Result<ReadDirResponse, Status> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_status("read directory", shown, &e))? {
        let entry = entry.map_err(|e| io_status("read directory", shown, &e))?;
        let name = entry.file_name().into_string().map_err(|name| {
            Status::unknown(format!(
                "{shown}: the name {name:?} is not UTF-8 (fsutil's paths are strings)"
            ))
        })?;
        names.push(name);
    }
    names.sort_unstable();
    let entries = names
        .iter()
        .map(|name| fsutil_stat(name, &dir.join(name), &format!("{shown}/{name}")))
        .collect::<Result<_, _>>()?;
    Ok(ReadDirResponse { entries })
}

fn stat_file(root: &ResultRoot, request: &StatFileRequest) -> Result<StatFileResponse, Status> {
    let host = root.resolve(&request.path).map_err(engine_status)?;
    let name = host
        .strip_prefix(root.path())
        .ok()
        .and_then(|rel| rel.file_name())
        .map_or_else(|| "/".to_owned(), |n| n.to_string_lossy().into_owned());
    let stat = fsutil_stat(&name, &host, &request.path)?;
    Ok(StatFileResponse { stat: Some(stat) })
}
