//! [`EmbeddedDriver`]: the build engine inside the hoist process — the `default` builder.
//! Always running; it executes the native platforms and those binfmt_misc emulates.

use hoist_engine::binfmt::{native_platforms, ExecSupport};

use super::{Driver, Features, Info, Status, EMBEDDED};
use crate::error::{Error, Result};
use crate::node_group::Node;

/// The in-process engine.
#[derive(Debug, Default)]
pub struct EmbeddedDriver {}

impl EmbeddedDriver {
    /// Checks the node: no driver options, no daemon flags (there is no daemon).
    pub fn new(node: &Node) -> Result<EmbeddedDriver> {
        if let Some(key) = node.driver_opts.keys().next() {
            return Err(Error::UnknownDriverOpt {
                key: key.clone(),
                driver: EMBEDDED,
            });
        }
        if !node.buildkitd_flags.is_empty() {
            return Err(Error::Invalid(
                "setting buildkit flags is not supported for embedded driver".to_owned(),
            ));
        }
        Ok(EmbeddedDriver {})
    }
}

impl Driver for EmbeddedDriver {
    fn name(&self) -> &'static str {
        EMBEDDED
    }

    fn bootstrap(&self) -> Result<()> {
        Ok(())
    }

    fn info(&self) -> Info {
        let platforms = ExecSupport::detect()
            .map(|support| support.platforms())
            .unwrap_or_else(|_| native_platforms());
        Info {
            status: Status::Running,
            unreachable: None,
            platforms,
        }
    }

    fn version(&self) -> String {
        concat!("hoist v", env!("CARGO_PKG_VERSION")).to_owned()
    }

    fn stop(&self) -> Result<()> {
        Ok(())
    }

    fn rm(&self, _keep_state: bool) -> Result<()> {
        Ok(())
    }

    fn features(&self) -> Features {
        Features::from([
            ("OCI exporter", true),
            ("Docker exporter", true),
            ("Multi-platform build", true),
            (
                "Automatically load images to the Docker Engine image store",
                false,
            ),
        ])
    }
}
