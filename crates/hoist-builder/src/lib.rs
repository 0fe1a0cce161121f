//! Builders, as buildx has them: named groups of nodes, each reached through a driver.
//!
//! - [`BuilderStore`] / [`Txn`]: the builders on disk (`~/.config/hoist/builders`, see
//!   [`store::default_dir`]), one buildx-shaped JSON file per builder and the current
//!   selection, changed only under the store's `flock` by atomic replace.
//! - [`NodeGroup`] / [`Node`]: one builder and its nodes (buildx's store types and their
//!   `Update`/`Leave` rules).
//! - [`create()`], [`leave`], [`remove`]: the store changes of `create`, `create --leave`
//!   and `rm`, everything checked before anything is written.
//! - [`Driver`] / [`AnyDriver`]: `embedded` (the in-process engine, the builder
//!   [`DEFAULT_BUILDER`]), `remote` (`unix://`, `tcp://`, mutual TLS options), `docker`
//!   (the BuildKit inside a Docker daemon), `docker-container` (hoistd in a Docker
//!   container, dialled by `exec hoistd dial-stdio`) and `kubernetes` (hoistd pods of a
//!   Deployment or StatefulSet, dialled by pod exec of `hoistd dial-stdio`); [`report`]:
//!   every node's status, asked in parallel, for `ls` and `inspect`.
//! - [`merge`]: the `oci`/`local`/`tar` outputs of a build spread over several nodes, joined
//!   on the client (one layout with one index; a directory per platform).

pub mod create;
pub mod driver;
mod error;
pub mod merge;
mod name;
mod node_group;
pub mod report;
pub mod store;

pub use create::{
    create, keeps_failed_bootstrap, leave, load_buildkitd_config, remove, CreateRequest,
};
pub use driver::{AnyDriver, Driver, Endpoint, Info, Status};
pub use error::{Error, Result};
pub use name::{generate_name, validate_name};
pub use node_group::{Node, NodeGroup, NodeUpdate, BUILDKITD_CONFIG_FILE};
pub use report::{GroupReport, NodeReport};
pub use store::{BuilderStore, Snapshot, Txn};

/// The implicit builder: the embedded engine, selected unless another is.
pub const DEFAULT_BUILDER: &str = "default";
