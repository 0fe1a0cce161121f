//! The ops a vertex can hold, as BuildKit's LLB defines them (`pb.Op`), trimmed to what a
//! Dockerfile needs and named in Rust terms.
//!
//! Field order is part of the digest encoding: append new fields at the end of a struct, and
//! give optional ones `skip_serializing_if` so older definitions keep their digests.

use serde::{Deserialize, Serialize};

/// What a vertex does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Brings files in from outside the graph; no inputs.
    Source(Source),
    /// Runs a process over mounted inputs; output 0 is the root mount's result.
    Exec(Exec),
    /// Changes files without running anything.
    File(FileOp),
    /// Layers its inputs on top of one another, the first at the bottom.
    Merge,
}

impl Op {
    /// The op's kind in one word, for messages and renderings.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Source(Source::Image { .. }) => "image",
            Op::Source(Source::Local { .. }) => "local",
            Op::Source(Source::Git { .. }) => "git",
            Op::Source(Source::Http { .. }) => "http",
            Op::Exec(_) => "exec",
            Op::File(_) => "file",
            Op::Merge => "merge",
        }
    }
}

/// Where a source op reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A registry image's root filesystem.
    Image {
        /// The reference, normalised and pinned by digest when resolved
        /// (`docker.io/library/alpine:latest@sha256:...`).
        reference: String,
        /// The platform whose manifest is used (`os/arch[/variant]`).
        platform: hoist_oci::Platform,
    },
    /// Files the client sends: the build context (`context`) or a named context.
    Local {
        name: String,
        /// Only paths matching these patterns are sent (empty: everything).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        include_patterns: Vec<String>,
        /// Paths matching these are left out (the `.dockerignore` patterns).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude_patterns: Vec<String>,
        /// The paths the build reads (and their parents), so the client sends no more.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        follow_paths: Vec<String>,
    },
    /// A git repository checked out at a ref.
    Git {
        remote: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subdir: Option<String>,
        keep_git_dir: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
    },
    /// One file downloaded over HTTP(S).
    Http {
        url: String,
        /// The name the file gets in the source's root.
        filename: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
    },
}

/// `RUN`: a process run in the first mount (the root filesystem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub args: Vec<String>,
    /// `KEY=value` entries, in order.
    pub env: Vec<String>,
    pub cwd: String,
    /// `user[:group]` as written (names are resolved in the rootfs when it runs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    pub network: Network,
    pub security: Security,
    /// The mounts; the first is `/`.
    pub mounts: Vec<Mount>,
    /// Which mount's result is the vertex's output 0 (the root: 0).
    pub output_mount: usize,
    /// Proxy variables from the build arguments: given to the process, but not part of the
    /// digest (the same build behind another proxy is the same build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyEnv>,
}

/// `HTTP_PROXY` and friends, passed to a process without being part of its identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProxyEnv {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ftp_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_proxy: Option<String>,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    #[default]
    Sandbox,
    Host,
    None,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    #[default]
    Sandbox,
    Insecure,
}

/// One mount of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: MountSource,
    /// Where it appears in the process's filesystem (absolute).
    pub target: String,
    pub readonly: bool,
    /// The directory of the input that is mounted (`/` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    pub kind: MountKind,
}

/// What a mount shows before the process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountSource {
    /// The vertex's input with this index.
    Input(usize),
    /// An empty directory.
    Scratch,
}

/// How a mount behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A snapshot of the source; writes to a non-root bind mount are discarded.
    Bind,
    /// A persistent cache directory shared between builds by `id`.
    Cache { id: String, sharing: Sharing },
    /// A memory filesystem (`size` in bytes, 0 for the default).
    Tmpfs { size: u64 },
    /// A secret file (or variable when `env` is set) from the client.
    Secret {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// An SSH agent socket forwarded from the client.
    Ssh {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// A chain of file actions applied one after another to a base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    pub base: FileBase,
    pub actions: Vec<FileAction>,
}

/// What the first file action starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileBase {
    /// The vertex's input with this index.
    Input(usize),
    /// An empty filesystem.
    Scratch,
}

/// One change to the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    Copy(Copy),
    Mkdir(Mkdir),
    Mkfile(Mkfile),
    Rm(Rm),
}

/// `user[:group]` for new files, as written: names are looked up in the destination's
/// `/etc/passwd` and `/etc/group` by the engine, numbers are used as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Owner {
    /// Splits `user[:group]`.
    pub fn parse(spec: &str) -> Owner {
        match spec.split_once(':') {
            Some((user, group)) => Owner {
                user: user.to_string(),
                group: Some(group.to_string()),
            },
            None => Owner {
                user: spec.to_string(),
                group: None,
            },
        }
    }
}

/// A file mode: bits, or a symbolic `chmod` expression applied to each file's mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileMode {
    Octal(u32),
    Symbolic(String),
}

/// Copies `src_path` of input `src` to `dest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// The input to copy from.
    pub src: usize,
    /// An absolute path in the input, possibly with wildcards.
    pub src_path: String,
    /// An absolute path; a trailing `/` means "into this directory".
    pub dest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    pub follow_symlinks: bool,
    /// Copy a directory's contents rather than the directory itself.
    pub dir_contents_only: bool,
    pub create_dest_path: bool,
    pub allow_wildcard: bool,
    /// A wildcard matching nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Unpack a local tar archive into `dest` (ADD).
    pub attempt_unpack: bool,
    /// Only paths under the source matching these are copied (`COPY --parents`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_patterns: Vec<String>,
    /// Paths matching these are left out (`--exclude`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
    /// Paths that must exist (`COPY --parents` without wildcards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_paths: Vec<String>,
    /// Keep the source paths' parent directories under `dest` (`COPY --parents`).
    pub parents: bool,
}

impl Copy {
    /// A copy with every flag off; set what applies.
    pub fn new(src: usize, src_path: &str, dest: &str) -> Copy {
        Copy {
            src,
            src_path: src_path.to_string(),
            dest: dest.to_string(),
            owner: None,
            mode: None,
            follow_symlinks: false,
            dir_contents_only: false,
            create_dest_path: false,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            attempt_unpack: false,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            required_paths: Vec::new(),
            parents: false,
        }
    }
}

/// Creates a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkdir {
    pub path: String,
    pub mode: u32,
    pub make_parents: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The modification time to give new directories, in Unix seconds (from
    /// `SOURCE_DATE_EPOCH`); the current time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

/// Creates a file with the given content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkfile {
    pub path: String,
    pub data: String,
    pub mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// Removes a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rm {
    pub path: String,
    pub allow_not_found: bool,
    pub allow_wildcard: bool,
}
