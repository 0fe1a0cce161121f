//! The backend seam: [`Executor`] and the closed [`AnyExecutor`] (plus, with the `testing`
//! feature, the scripted stand-in for tests of callers).

use crate::output::OutputSink;
use crate::{BuiltinExecutor, CancelToken, ExitStatus, OciRuntimeExecutor, Result, RunSpec};

/// Runs one process described by a [`RunSpec`] to completion.
///
/// Runs are blocking (they wait for the process); async callers use a blocking thread.
pub trait Executor {
    /// Runs `spec`, handing its output to `sink` line by line as it comes; once `cancel` is
    /// set, kills the process tree and returns [`crate::Error::Cancelled`].
    fn run_cancellable(
        &self,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus>;

    /// [`run_cancellable`](Executor::run_cancellable) with a token nobody cancels.
    fn run(&self, spec: &RunSpec, sink: &mut dyn OutputSink) -> Result<ExitStatus> {
        self.run_cancellable(spec, sink, &CancelToken::new())
    }
}

/// Every backend, chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnyExecutor {
    /// The built-in namespaces runtime (the default: needs nothing installed).
    Builtin(BuiltinExecutor),
    /// An OCI runtime binary (runc, crun).
    OciRuntime(OciRuntimeExecutor),
    /// A test's closure in place of a process (the `testing` feature).
    #[cfg(feature = "testing")]
    Scripted(crate::ScriptedExecutor),
}

impl Executor for AnyExecutor {
    fn run_cancellable(
        &self,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        match self {
            AnyExecutor::Builtin(builtin) => builtin.run_cancellable(spec, sink, cancel),
            AnyExecutor::OciRuntime(oci) => oci.run_cancellable(spec, sink, cancel),
            #[cfg(feature = "testing")]
            AnyExecutor::Scripted(scripted) => scripted.run_cancellable(spec, sink, cancel),
        }
    }
}

impl AnyExecutor {
    /// A short name for messages: `builtin`, or the runtime binary's file name.
    pub fn name(&self) -> String {
        match self {
            AnyExecutor::Builtin(_) => "builtin".to_owned(),
            AnyExecutor::OciRuntime(oci) => oci.runtime().file_name().map_or_else(
                || oci.runtime().display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            #[cfg(feature = "testing")]
            AnyExecutor::Scripted(_) => "scripted".to_owned(),
        }
    }
}
