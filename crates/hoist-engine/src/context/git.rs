//! Git contexts (`hoist build https://host/repo.git#ref:subdir`, `--build-context
//! name=git@host:repo.git`): [`checkout`] puts one commit of the repository into a context
//! root through [`hoist_git`], as BuildKit's dockerui makes a Git context of a git source.
//! Everything else about such a context (its directory, its removal, reading the
//! Dockerfile from it, the build that follows) is the same as for a tarball.
//!
//! - The ref and subdir come from the URL (`#ref:subdir` or BuildKit's query form); the
//!   remote's default branch when none is named.
//! - Credentials are the build's `GIT_AUTH_TOKEN[.host]` / `GIT_AUTH_HEADER[.host]`
//!   secrets; ssh remotes use the `--ssh` agent `default`.
//! - `.git` is dropped unless `--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1` asks to keep it
//!   (BuildKit's rule; a URL's own `?keep-git-dir=` also counts).
//! - The bare repository per remote under `<state>/engine/git/` is shared with `ADD <git
//!   url>`, so a second build fetches only what changed.

use std::path::{Path, PathBuf};

use hoist_git::{Auth, GitRef};

use super::GitSettings;
use crate::error::{Error, Result};
use crate::worker::Worker;

/// Checks out the Git context `url` into the empty directory `root` (see the module docs).
pub(crate) async fn checkout(
    worker: &Worker,
    url: &str,
    root: &Path,
    settings: &GitSettings<'_>,
) -> Result<()> {
    let failed = |input: &str, e: hoist_git::Error| Error::Context {
        input: input.to_owned(),
        reason: e.to_string(),
    };
    let mut git_ref = GitRef::parse(url).map_err(|e| failed(url, e))?;
    // How messages name the context: credentials in the URL masked, the fragment kept.
    let shown = match url.split_once('#') {
        Some((_, fragment)) => format!("{}#{fragment}", git_ref.remote.redacted()),
        None => git_ref.remote.redacted(),
    };
    if settings.keep_git_dir {
        git_ref.keep_git_dir = Some(true);
    }
    let mut auth = Auth::from_secrets(&git_ref.remote, |id| {
        settings.secrets.get(id).map(<[u8]>::to_vec)
    });
    // Held while git runs: a key-file agent is served only as long as this lives.
    let socket = match git_ref.remote.scheme() {
        hoist_git::Scheme::Ssh => {
            settings
                .ssh
                .host_socket(crate::ssh::DEFAULT_ID)
                .map_err(|e| Error::Context {
                    input: shown.clone(),
                    reason: e.to_string(),
                })?
        }
        _ => None,
    };
    if let Some(socket) = &socket {
        auth = auth.with_ssh_agent(socket.path());
    }
    let cache_dir = worker.engine_dir().join("git");
    let root: PathBuf = root.to_owned();
    tokio::task::spawn_blocking(move || {
        let checked_out = hoist_git::checkout(&git_ref, &root, &auth, &cache_dir);
        drop(socket);
        checked_out
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
    .map_err(|e| failed(&shown, e))?;
    Ok(())
}
