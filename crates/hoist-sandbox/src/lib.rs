//! Run one process in a prepared root file system, the way a Dockerfile `RUN` step needs.
//!
//! - [`RunSpec`]: what to run (rootfs, args, env, cwd, [`User`], hostname, [`Network`],
//!   [`BindMount`]s, [`TmpfsMount`]s, extra `/etc/hosts` [`HostEntry`]s, the `/dev/shm`
//!   size, [`Ulimit`]s, [`Confinement`] — Docker's defaults or BuildKit's insecure mode —
//!   and a cgroup parent); [`ExitStatus`]: how it ended.
//! - [`resolve_user`]: a `USER` string to numeric ids, from the rootfs's passwd and group;
//!   [`resolve_owner`]: the owner BuildKit's file ops give files (`COPY --chown`, WORKDIR);
//!   [`home_dir`]: the `HOME` a process gets when its environment has none.
//! - [`Executor`] with the closed [`AnyExecutor`] over the backends:
//!   [`BuiltinExecutor`] (namespaces + `pivot_root`, nothing to install; the default) and
//!   [`OciRuntimeExecutor`] (runc or crun on a generated bundle; its `remove_orphans`
//!   stops what killed builds left running, reported as [`OrphanContainers`]); with the `testing`
//!   feature also `ScriptedExecutor`, a closure run in place of a process, so callers
//!   test what happens around a RUN without root.
//! - [`CancelToken`]: stop a run from another thread.
//! - [`OutputSink`]: output streamed line by line while the process runs;
//!   [`CollectedOutput`] keeps it all.
//! - [`binfmt`]: which platforms run here (native or through a `binfmt_misc` QEMU handler),
//!   and registering or removing those handlers.
//! - [`init_if_requested`]: every binary using [`BuiltinExecutor::new`] calls it first in
//!   `main`, since the built-in runtime re-executes the binary as its helper.
//!
//! Why the built-in runtime is hand-written rather than youki's `libcontainer`:
//! `docs/dev/runtime.md`.

pub mod binfmt;
mod builtin;
mod cancel;
mod cgroup;
mod defaults;
mod error;
mod etc_files;
mod executor;
mod mounts;
mod oci;
mod output;
#[cfg(feature = "testing")]
mod scripted;
mod spec;
mod stubs;
mod ulimit;
mod user;

pub use builtin::init::init_if_requested;
pub use builtin::BuiltinExecutor;
pub use cancel::CancelToken;
pub use error::{Error, Result};
pub use executor::{AnyExecutor, Executor};
pub use oci::{OciRuntimeExecutor, OrphanContainers, DEFAULT_STATE_ROOT, KNOWN_RUNTIMES};
pub use output::{CollectedOutput, OutputSink, OutputStream, MAX_LINE};
#[cfg(feature = "testing")]
pub use scripted::{Script, ScriptedExecutor};
pub use spec::{
    BindMount, Confinement, ExitStatus, HostEntry, Network, RunSpec, TmpfsMount, User,
    DEFAULT_HOSTNAME, DEFAULT_PATH,
};
pub use ulimit::Ulimit;
pub use user::{home_dir, resolve_owner, resolve_user};
