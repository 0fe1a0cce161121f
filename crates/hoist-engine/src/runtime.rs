//! What runs `RUN` steps: [`Runtime`], `hoist build --runtime` as a typed request, turned
//! into the sandbox's executor by [`Runtime::executor`]; and [`init_if_requested`], the
//! entry point of the built-in runtime, which a binary embedding the engine calls first
//! thing in `main` (the runtime re-executes that binary as its helper);
//! [`remove_orphan_containers`]: what killed builds left running in an OCI runtime.

use crate::error::{Error, Result};

pub use hoist_sandbox::{init_if_requested, AnyExecutor};

/// The program that runs `RUN` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// hoist's own sandbox (namespaces and `pivot_root`, no other program needed).
    Builtin,
    /// An OCI runtime such as runc or crun: a binary looked up in `PATH`, or a path.
    Oci(String),
}

impl Runtime {
    /// The runtime a `--runtime` value names: `builtin`, else an OCI runtime.
    pub fn from_flag(value: &str) -> Runtime {
        match value {
            "builtin" => Runtime::Builtin,
            other => Runtime::Oci(other.to_owned()),
        }
    }

    /// Its executor, for [`Worker::with_executor`](crate::Worker::with_executor);
    /// [`Error::RuntimeNotFound`] when the OCI runtime is not there.
    pub fn executor(&self) -> Result<AnyExecutor> {
        match self {
            Runtime::Builtin => Ok(AnyExecutor::Builtin(hoist_sandbox::BuiltinExecutor::new())),
            Runtime::Oci(name) => hoist_sandbox::OciRuntimeExecutor::find(name)
                .map(AnyExecutor::OciRuntime)
                .ok_or_else(|| Error::RuntimeNotFound {
                    runtime: name.clone(),
                }),
        }
    }
}

/// Stops and deletes the OCI runtime containers of killed builds (with `executor`'s runtime
/// when it is one, and with each of [`hoist_sandbox::KNOWN_RUNTIMES`] in `PATH`, under the
/// default state root), before the snapshot sweep unmounts their root file systems. Only the
/// containers of builds on the state dir `root` are touched. Nothing runs when no runtime is
/// installed or no hoist container is there.
pub(crate) fn remove_orphan_containers(
    executor: Option<&AnyExecutor>,
    root: &std::path::Path,
) -> hoist_sandbox::OrphanContainers {
    let mut runtimes: Vec<hoist_sandbox::OciRuntimeExecutor> = match executor {
        Some(AnyExecutor::OciRuntime(oci)) => vec![oci.clone()],
        _ => Vec::new(),
    };
    for found in hoist_sandbox::KNOWN_RUNTIMES
        .iter()
        .filter_map(|name| hoist_sandbox::OciRuntimeExecutor::find(name))
    {
        let known = runtimes
            .iter()
            .any(|r| r.runtime() == found.runtime() && r.state_root() == found.state_root());
        if !known {
            runtimes.push(found);
        }
    }
    let mut report = hoist_sandbox::OrphanContainers::default();
    for runtime in runtimes {
        let swept = runtime.remove_orphans(Some(root));
        report.removed.extend(swept.removed);
        report.failed.extend(swept.failed);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_oci_runtime_is_named_with_the_fix() {
        assert_eq!(Runtime::from_flag("builtin"), Runtime::Builtin);
        let missing = Runtime::from_flag("no-such-runtime-here");
        assert_eq!(
            missing.executor().unwrap_err().to_string(),
            "OCI runtime \"no-such-runtime-here\" not found in PATH: install runc or crun, \
             or use --runtime=builtin"
        );
        let by_path = Runtime::from_flag("/nonexistent/runc");
        assert_eq!(
            by_path.executor().unwrap_err().to_string(),
            "OCI runtime \"/nonexistent/runc\" not found: install runc or crun, \
             or use --runtime=builtin"
        );
        assert!(matches!(
            Runtime::Builtin.executor(),
            Ok(AnyExecutor::Builtin(_))
        ));
    }
}
