//! Git contexts (`hoist build https://host/repo.git#ref:subdir`, `--build-context
//! name=git@host:repo.git`): the one function [`checkout`] that puts a repository's files
//! into a context root. Everything else about such a context (its directory, its removal,
//! reading the Dockerfile from it, the build that follows) is the same as for a tarball.

use std::path::Path;

use crate::error::{Error, Result};
use crate::worker::Worker;

/// Checks out the Git context `url` (BuildKit's form: the remote, then `#ref:subdir` or
/// query options) into the empty directory `root`, without `.git` (BuildKit keeps it only
/// when asked), as the build context's files.
///
/// TO BE FILLED IN by the lead once crate `hoist-git` lands: parse `url` with it, fetch
/// through it (credentials, `--ssh`, the worker's state dir for its cache) and check out
/// the tree into `root`. Until then a Git context is refused with a clear error.
pub(crate) async fn checkout(worker: &Worker, url: &str, root: &Path) -> Result<()> {
    let _ = (worker, root);
    Err(Error::Context {
        input: url.to_owned(),
        reason: "Git repositories as build contexts are not supported yet".to_owned(),
    })
}
