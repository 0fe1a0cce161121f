//! Git sources as BuildKit reads them, fetched with the `git` program (see
//! `docs/dev/git.md` for why the CLI and not a library).
//!
//! - [`GitRef`] / [`Remote`] ([`git_ref`]): git URLs with BuildKit's rules — https, http,
//!   ssh (`ssh://` and scp-style `git@host:repo`) and `git://` remotes, the `#ref:subdir`
//!   fragment and the `?ref=&tag=&branch=&subdir=&checksum=&keep-git-dir=&submodules=`
//!   query; [`is_git_url`] says whether a build context names a repository. Pure.
//! - [`Auth`]: an http `Authorization` header from the build's `GIT_AUTH_TOKEN[.<host>]` /
//!   `GIT_AUTH_HEADER[.<host>]` secrets, an ssh agent socket, known hosts.
//! - [`resolve_commit`]: which commit a ref names now (`git ls-remote`), checked against a
//!   pinned checksum — a git source's cache key.
//! - [`checkout`] / [`checkout_resolved`]: one commit into a directory (submodules, `.git`
//!   kept or not, a subdir only), through a bare repository per remote under a cache
//!   directory the caller names, shared safely by processes (flock).
//!
//! git always runs in a clean environment (no user or system config, no prompts, secrets
//! passed in the environment rather than on its command line), with `--` before every
//! value a user wrote; errors name the remote with credentials masked, the ref, and what
//! git said, scrubbed of secrets.

mod auth;
mod checkout;
mod command;
mod error;
pub mod git_ref;

pub use auth::{Auth, AUTH_HEADER_SECRET, AUTH_TOKEN_SECRET};
pub use checkout::{checkout, checkout_resolved, resolve_commit, Checkout, Resolved};
pub use error::{Error, Result};
pub use git_ref::{is_commit_sha, is_git_url, GitRef, Remote, Scheme};
