//! Git sources (`ADD https://host/repo.git#ref:dir /dst`): one commit of a repository
//! checked out into a snapshot of its own, which the ADD's copy then copies into place.
//!
//! Behaviour follows BuildKit's git source, through [`hoist_git`]:
//!
//! - cache key: the ref is resolved to a commit (`git ls-remote`, or the SHA itself) when
//!   the solver asks for the key, and the key is that commit plus the subdir, whether the
//!   `.git` is kept (then also the ref name, which the kept `.git` holds) and whether
//!   submodules are checked out — not the URL, as in BuildKit's `shaToCacheKey`. A moved
//!   branch is a new key; the same commit under another URL is the same key;
//! - the checkout is of exactly the commit the key was made from (kept for the run), so
//!   files and key agree even if the branch moves in between;
//! - `ADD --checksum=<sha>` must match the resolved commit (or an annotated tag's object),
//!   or the step fails before anything is fetched;
//! - credentials come from the build's secrets `GIT_AUTH_TOKEN[.<host>]` and
//!   `GIT_AUTH_HEADER[.<host>]` ([`hoist_git::Auth::from_secrets`]); ssh remotes use the
//!   `--ssh` agent `default`, as in BuildKit (a key-file agent served on a private socket
//!   while git runs);
//! - a bare repository per remote under `<state>/engine/git/` keeps what was fetched, so a
//!   second build fetches only what changed; prune does not remove it yet.
//!
//! git runs on a blocking thread (never forked from a tokio worker).

use std::sync::{Arc, Mutex, PoisonError};

use hoist_git::{Auth, GitRef, Resolved};
use hoist_snapshot::Snapshotter as _;

use super::EngineOp;
use crate::error::{Error, Result};
use crate::ssh::{HostSocket, DEFAULT_ID as DEFAULT_SSH_ID};
use crate::worker::Ref;

/// The resolution of one op, shared by its clones between `cache_map` and `exec`.
pub(crate) type Slot = Arc<Mutex<Option<Resolved>>>;

/// The git source of `op` as a [`GitRef`], with the vertex's options applied.
fn git_ref(op: &EngineOp) -> Result<GitRef> {
    let hoist_graph::Op::Source(hoist_graph::Source::Git {
        remote,
        reference,
        subdir,
        keep_git_dir,
        checksum,
    }) = &op.vertex.op
    else {
        return Err(Error::InvalidGraph("not a git source".into()));
    };
    let mut git_ref = GitRef::from_parts(remote, reference.as_deref(), subdir.as_deref())?;
    if *keep_git_dir {
        git_ref.keep_git_dir = Some(true);
    }
    if let Some(checksum) = checksum {
        git_ref.checksum = Some(checksum.clone());
    }
    Ok(git_ref)
}

/// The credentials for `git_ref`'s remote: the build's secrets, and for ssh remotes the
/// `--ssh` agent `default` (held open by the returned socket while git runs).
fn auth(op: &EngineOp, git_ref: &GitRef) -> Result<(Auth, Option<HostSocket>)> {
    let auth = Auth::from_secrets(&git_ref.remote, |id| op.secrets.get(id).map(<[u8]>::to_vec));
    if !matches!(git_ref.remote.scheme(), hoist_git::Scheme::Ssh) {
        return Ok((auth, None));
    }
    match op.run.ssh.host_socket(DEFAULT_SSH_ID)? {
        Some(socket) => Ok((auth.with_ssh_agent(socket.path()), Some(socket))),
        None => Ok((auth, None)),
    }
}

/// The digest the solver keys the source on (see the module docs).
pub(super) async fn cache_key(op: &EngineOp) -> Result<hoist_solver::Digest> {
    let resolved = op
        .blocking(|op| {
            let git_ref = git_ref(&op)?;
            let (auth, _socket) = auth(&op, &git_ref)?;
            Ok(hoist_git::resolve_commit(&git_ref, &auth)?)
        })
        .await?;
    let git_ref = git_ref(op)?;
    let keep_git_dir = git_ref.keep_git_dir.unwrap_or(false) && git_ref.subdir.is_none();
    let key = serde_json::json!({
        "kind": "hoist-git-source/v1",
        "commit": resolved.commit,
        // A kept .git names the ref (and holds an annotated tag's object).
        "ref": keep_git_dir.then_some(&resolved.ref_name),
        "tag_object": keep_git_dir.then_some(&resolved.tag_object),
        "subdir": git_ref.subdir,
        "keep_git_dir": keep_git_dir,
        "submodules": git_ref.submodules.unwrap_or(true),
    });
    *op.git.lock().unwrap_or_else(PoisonError::into_inner) = Some(resolved);
    Ok(hoist_solver::Digest::of(key.to_string().as_bytes()))
}

/// Makes the snapshot holding the checkout.
pub(super) async fn exec(op: &EngineOp) -> Result<Ref> {
    let known = op
        .git
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    op.blocking(move |op| {
        let git_ref = git_ref(&op)?;
        let (auth, _socket) = auth(&op, &git_ref)?;
        let resolved = match known {
            Some(resolved) => resolved,
            None => hoist_git::resolve_commit(&git_ref, &auth)?,
        };
        let snapshotter = op.worker.snapshotter();
        let key = op.worker.unique_key("git");
        let mount = snapshotter.prepare(&key, &[])?;
        let cache_dir = op.worker.engine_dir().join("git");
        let checked_out =
            hoist_git::checkout_resolved(&git_ref, &resolved, mount.path(), &auth, &cache_dir);
        if let Err(e) = checked_out {
            let _ = snapshotter.remove(&key);
            return Err(e.into());
        }
        super::commit(&op, &key, None)
    })
    .await
}
