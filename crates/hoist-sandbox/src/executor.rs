//! The backend seam: [`Executor`] and the closed [`AnyExecutor`].

use crate::output::OutputSink;
use crate::{BuiltinExecutor, ExitStatus, OciRuntimeExecutor, Result, RunSpec};

/// Runs one process described by a [`RunSpec`] to completion.
///
/// Runs are blocking (they wait for the process); async callers use a blocking thread.
pub trait Executor {
    /// Runs `spec`, handing its output to `sink` line by line as it comes.
    fn run(&self, spec: &RunSpec, sink: &mut dyn OutputSink) -> Result<ExitStatus>;
}

/// Every backend, chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnyExecutor {
    /// The built-in namespaces runtime (the default: needs nothing installed).
    Builtin(BuiltinExecutor),
    /// An OCI runtime binary (runc, crun).
    OciRuntime(OciRuntimeExecutor),
}

impl Executor for BuiltinExecutor {
    fn run(&self, spec: &RunSpec, sink: &mut dyn OutputSink) -> Result<ExitStatus> {
        BuiltinExecutor::run(self, spec, sink)
    }
}

impl Executor for OciRuntimeExecutor {
    fn run(&self, spec: &RunSpec, sink: &mut dyn OutputSink) -> Result<ExitStatus> {
        OciRuntimeExecutor::run(self, spec, sink)
    }
}

impl Executor for AnyExecutor {
    fn run(&self, spec: &RunSpec, sink: &mut dyn OutputSink) -> Result<ExitStatus> {
        match self {
            AnyExecutor::Builtin(builtin) => builtin.run(spec, sink),
            AnyExecutor::OciRuntime(oci) => oci.run(spec, sink),
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
        }
    }
}
