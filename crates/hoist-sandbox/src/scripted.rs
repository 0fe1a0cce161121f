//! [`ScriptedExecutor`] (the `testing` feature): a RUN backend that calls a closure in this
//! process instead of starting one, so callers test what they do around a RUN (snapshots,
//! layers, caching) without root, namespaces or a shell in the rootfs.

use std::fmt;
use std::sync::Arc;

use crate::executor::Executor;
use crate::output::OutputSink;
use crate::{CancelToken, Error, ExitStatus, Result, RunSpec};

/// What a [`ScriptedExecutor`] calls for each run: the spec (its `rootfs` is the prepared
/// directory the writes land in) and the sink for output lines; an I/O error fails the run
/// naming the rootfs.
pub type Script =
    dyn Fn(&RunSpec, &mut dyn OutputSink) -> std::io::Result<ExitStatus> + Send + Sync;

/// Runs a test's closure in place of a process. The spec is checked as the real backends
/// check it, and a cancelled token stops the run before the closure is called.
#[derive(Clone)]
pub struct ScriptedExecutor {
    script: Arc<Script>,
}

impl ScriptedExecutor {
    pub fn new(
        script: impl Fn(&RunSpec, &mut dyn OutputSink) -> std::io::Result<ExitStatus>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        ScriptedExecutor {
            script: Arc::new(script),
        }
    }
}

impl fmt::Debug for ScriptedExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedExecutor").finish_non_exhaustive()
    }
}

impl Executor for ScriptedExecutor {
    fn run_cancellable(
        &self,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        spec.validate()?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        (self.script)(spec, sink).map_err(|e| Error::io("run the script in", &spec.rootfs, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CollectedOutput;

    #[test]
    fn the_script_writes_into_the_rootfs_and_reports_its_status() {
        let rootfs = tempfile::tempdir().unwrap();
        let executor = ScriptedExecutor::new(|spec, sink| {
            std::fs::write(spec.rootfs.join("out"), spec.args.join(" "))?;
            sink.line(crate::OutputStream::Stdout, b"done\n");
            Ok(ExitStatus::Code(3))
        });
        let mut output = CollectedOutput::default();
        let spec = RunSpec::new(rootfs.path(), ["make", "it"]);
        assert_eq!(
            executor.run(&spec, &mut output).unwrap(),
            ExitStatus::Code(3)
        );
        assert_eq!(
            std::fs::read_to_string(rootfs.path().join("out")).unwrap(),
            "make it"
        );
        assert_eq!(output.stdout_text(), "done\n");
    }

    #[test]
    fn invalid_specs_cancellation_and_io_errors_fail_the_run() {
        let rootfs = tempfile::tempdir().unwrap();
        let executor = ScriptedExecutor::new(|spec, _| {
            std::fs::read(spec.rootfs.join("missing"))?;
            Ok(ExitStatus::Code(0))
        });
        let mut output = CollectedOutput::default();
        let empty = RunSpec::new(rootfs.path(), Vec::<String>::new());
        assert!(matches!(
            executor.run(&empty, &mut output),
            Err(Error::InvalidSpec { .. })
        ));
        let spec = RunSpec::new(rootfs.path(), ["x"]);
        let cancel = CancelToken::new();
        cancel.cancel();
        assert!(matches!(
            executor.run_cancellable(&spec, &mut output, &cancel),
            Err(Error::Cancelled)
        ));
        let err = executor.run(&spec, &mut output).unwrap_err();
        assert!(
            err.to_string()
                .contains(&rootfs.path().display().to_string()),
            "{err}"
        );
    }
}
