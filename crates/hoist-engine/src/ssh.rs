//! SSH agents a build forwards (`--ssh`), for `RUN --mount=type=ssh` (and, through
//! [`SshStore::socket_for`], for git sources over ssh).
//!
//! - [`SshAgents`]: what the build was given, by id: nothing (the agent at
//!   `$SSH_AUTH_SOCK`), one agent socket, or private key files.
//! - [`SshStore::load`]: checked and read once, before any step runs, as BuildKit's client
//!   does: a missing `$SSH_AUTH_SOCK`, socket or key file, or a key that does not parse,
//!   fails the build naming the id.
//! - [`SshStore::serve`]: for one RUN mount, a socket of its own in a private temporary
//!   directory (owner and mode from the mount), served until the returned [`ServedSocket`]
//!   is dropped; the sandbox bind-mounts it. Each connection is answered message by message:
//!   for a socket id, listing and signing requests go to the user's agent and anything else
//!   (adding or removing keys, locking) is refused, as BuildKit's read-only agent does; for
//!   key files, an agent in this process answers from the keys it loaded.
//!
//! Keys live only in this process's memory: nothing of them is written to the state dir,
//! a layer or a record. The agent protocol (draft-miller-ssh-agent) is framed by hand — the
//! three messages served are a few lines each — while keys, public-key blobs and signatures
//! are `ssh-key`'s (RustCrypto). `ssh-agent-lib` was not used: its server is an async
//! session trait over its own tokio listener and codec stack, more machinery than a blocking
//! socket per RUN needs, and it would still leave the read-only filtering to us.
//!
//! Limits: keys must be unencrypted OpenSSH private keys (`ssh-keygen`'s format; a
//! passphrase-protected key belongs in an agent, forwarded by socket); RSA keys sign with
//! `rsa-sha2-256` or `rsa-sha2-512` as the client asks, never SHA-1.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The id `--ssh default` and a mount without `id=` use.
pub const DEFAULT_ID: &str = "default";

/// Agent protocol message numbers.
const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
/// Sign-request flags asking for an RSA signature over SHA-256 or SHA-512.
const RSA_SHA2_256: u32 = 2;
const RSA_SHA2_512: u32 = 4;
/// The longest message accepted (OpenSSH's agent uses the same bound).
const MAX_MESSAGE: usize = 256 * 1024;

/// The SSH agents a build is given (`--ssh ID[=SOCKET|KEY[,KEY…]]`), by id: the paths as
/// given; none means the agent at `$SSH_AUTH_SOCK`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshAgents {
    by_id: BTreeMap<String, Vec<PathBuf>>,
}

impl SshAgents {
    /// No agent.
    pub fn new() -> SshAgents {
        SshAgents::default()
    }

    /// Adds agent `id` (empty: `default`) from `paths`; an id given twice keeps the last, as
    /// buildx does.
    pub fn insert(&mut self, id: &str, paths: Vec<PathBuf>) {
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        self.by_id.insert(id.to_owned(), paths);
    }

    /// Adds `other`'s agents; its ids replace these.
    pub fn extend(&mut self, other: &SshAgents) {
        self.by_id
            .extend(other.by_id.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// Whether no agent was given.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// One agent, checked and loaded.
enum Agent {
    /// A running agent's socket (the user's `ssh-agent`).
    Socket(PathBuf),
    /// Keys read from files, answered by this process.
    Keys(Vec<ssh_key::PrivateKey>),
}

/// The build's agents, loaded before any step runs.
#[derive(Clone, Default)]
pub struct SshStore {
    agents: BTreeMap<String, Arc<Agent>>,
}

impl fmt::Debug for SshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.agents.keys()).finish()
    }
}

/// Who may use a served socket: its owner and permission bits (`RUN --mount=type=ssh`'s
/// `uid`, `gid` and `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOwner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl SshStore {
    /// Checks every agent: `$SSH_AUTH_SOCK` set where no path was given, each path there,
    /// a socket alone or key files only, each key an unencrypted OpenSSH private key.
    pub fn load(agents: &SshAgents) -> Result<SshStore> {
        let mut loaded = BTreeMap::new();
        for (id, paths) in &agents.by_id {
            let fail = |reason: String| Error::SshAgent {
                id: id.clone(),
                reason,
            };
            let paths = if paths.is_empty() || paths.iter().all(|p| p.as_os_str().is_empty()) {
                match std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
                    Some(socket) => vec![PathBuf::from(socket)],
                    None => {
                        return Err(fail(
                            "invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
                                .to_owned(),
                        ))
                    }
                }
            } else {
                paths.clone()
            };
            let mut sockets = Vec::new();
            let mut keys = Vec::new();
            for path in &paths {
                let meta = std::fs::metadata(path)
                    .map_err(|e| fail(format!("stat {}: {e}", path.display())))?;
                if meta.file_type().is_socket() {
                    sockets.push(path.clone());
                    continue;
                }
                let bytes = std::fs::read(path)
                    .map_err(|e| fail(format!("failed to read {}: {e}", path.display())))?;
                let key = ssh_key::PrivateKey::from_openssh(&bytes).map_err(|e| {
                    fail(format!(
                        "failed to parse {}: {e} (not an OpenSSH private key)",
                        path.display()
                    ))
                })?;
                if key.is_encrypted() {
                    return Err(fail(format!(
                        "failed to parse {}: the key is passphrase-protected; add it to an \
                         ssh-agent and forward the agent's socket instead",
                        path.display()
                    )));
                }
                keys.push(key);
            }
            let agent = match (sockets.as_slice(), keys.is_empty()) {
                ([], _) => Agent::Keys(keys),
                ([socket], true) => Agent::Socket(socket.clone()),
                (_, false) => {
                    return Err(fail("invalid combination of keys and sockets".to_owned()))
                }
                (_, true) => return Err(fail("only single socket allowed".to_owned())),
            };
            loaded.insert(id.clone(), Arc::new(agent));
        }
        Ok(SshStore { agents: loaded })
    }

    /// Whether agent `id` was given.
    pub fn contains(&self, id: &str) -> bool {
        self.agents.contains_key(id)
    }

    /// The user's agent socket behind `id`, when `id` forwards one (`--ssh default` or
    /// `--ssh ID=SOCKET`); `None` for key files and unknown ids, which
    /// [`serve`](SshStore::serve) answers instead. For clients on the host (git over ssh).
    pub fn socket_for(&self, id: &str) -> Option<&Path> {
        match self.agents.get(id)?.as_ref() {
            Agent::Socket(path) => Some(path),
            Agent::Keys(_) => None,
        }
    }

    /// Serves agent `id` on a new socket owned and moded as `owner` says, until the result
    /// is dropped; `None` when the build was not given `id`.
    pub fn serve(&self, id: &str, owner: SocketOwner) -> Result<Option<ServedSocket>> {
        let Some(agent) = self.agents.get(id) else {
            return Ok(None);
        };
        ServedSocket::start(Arc::clone(agent), owner).map(Some)
    }
}

/// An agent socket a client on the host can use (git fetching an ssh remote): the user's
/// own agent socket, or one this process serves from key files while it lives.
#[derive(Debug)]
pub(crate) struct HostSocket {
    path: PathBuf,
    _served: Option<ServedSocket>,
}

impl HostSocket {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl SshStore {
    /// Agent `id` for a client running as this process (`None` when the build was not
    /// given `id`): BuildKit fetches ssh remotes with the `default` agent.
    pub(crate) fn host_socket(&self, id: &str) -> Result<Option<HostSocket>> {
        if let Some(path) = self.socket_for(id) {
            return Ok(Some(HostSocket {
                path: path.to_owned(),
                _served: None,
            }));
        }
        let owner = SocketOwner {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            mode: 0o600,
        };
        Ok(self.serve(id, owner)?.map(|served| HostSocket {
            path: served.path(),
            _served: Some(served),
        }))
    }
}

/// A socket answering for one agent, in a private temporary directory; stops serving and
/// goes when dropped.
pub struct ServedSocket {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for ServedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServedSocket").field(&self.path()).finish()
    }
}

impl ServedSocket {
    fn start(agent: Arc<Agent>, owner: SocketOwner) -> Result<ServedSocket> {
        let dir = tempfile::Builder::new()
            .prefix("hoist-ssh-")
            .tempdir()
            .map_err(Error::io("create a directory in", std::env::temp_dir()))?;
        // Others may reach the socket (the mount's uid), not list the directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .map_err(Error::io("chmod", dir.path()))?;
        let path = dir.path().join("ssh_auth_sock");
        let listener = UnixListener::bind(&path).map_err(Error::io("listen on", &path))?;
        std::os::unix::fs::chown(&path, Some(owner.uid), Some(owner.gid))
            .map_err(Error::io("chown", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(owner.mode & 0o7777))
            .map_err(Error::io("chmod", &path))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for connection in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(connection) = connection else { continue };
                    let agent = Arc::clone(&agent);
                    std::thread::spawn(move || {
                        let _ = answer(&agent, connection);
                    });
                }
            })
        };
        Ok(ServedSocket {
            dir,
            stop,
            thread: Some(thread),
        })
    }

    /// The socket's path on the host.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("ssh_auth_sock")
    }
}

impl Drop for ServedSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(self.path());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one client until it hangs up.
fn answer(agent: &Agent, mut client: UnixStream) -> std::io::Result<()> {
    let mut upstream: Option<UnixStream> = None;
    while let Some(request) = read_message(&mut client)? {
        let reply = match agent {
            Agent::Socket(path) => match request.first() {
                Some(&REQUEST_IDENTITIES | &SIGN_REQUEST) => {
                    let agent = match &mut upstream {
                        Some(agent) => agent,
                        None => upstream.insert(UnixStream::connect(path)?),
                    };
                    write_message(agent, &request)?;
                    read_message(agent)?.unwrap_or_else(|| vec![FAILURE])
                }
                // Adding, removing, locking, extensions: BuildKit's agent is read-only.
                _ => vec![FAILURE],
            },
            Agent::Keys(keys) => answer_from_keys(keys, &request),
        };
        write_message(&mut client, &reply)?;
    }
    Ok(())
}

/// The reply of the in-process agent holding `keys` to `request`.
fn answer_from_keys(keys: &[ssh_key::PrivateKey], request: &[u8]) -> Vec<u8> {
    match request.split_first() {
        Some((&REQUEST_IDENTITIES, _)) => {
            let mut reply = vec![IDENTITIES_ANSWER];
            let listed: Vec<(Vec<u8>, &str)> = keys
                .iter()
                .filter_map(|key| Some((key.public_key().to_bytes().ok()?, key.comment())))
                .collect();
            put_u32(&mut reply, listed.len());
            for (blob, comment) in listed {
                put_string(&mut reply, &blob);
                put_string(&mut reply, comment.as_bytes());
            }
            reply
        }
        Some((&SIGN_REQUEST, mut body)) => {
            let signed = (|| {
                let blob = take_string(&mut body)?;
                let data = take_string(&mut body)?;
                let flags = take_u32(&mut body)?;
                let key = keys
                    .iter()
                    .find(|key| key.public_key().to_bytes().ok().as_deref() == Some(blob))?;
                sign(key, data, flags)
            })();
            match signed {
                Some(signature) => {
                    let mut reply = vec![SIGN_RESPONSE];
                    put_string(&mut reply, &signature);
                    reply
                }
                None => vec![FAILURE],
            }
        }
        _ => vec![FAILURE],
    }
}

/// The signature blob (algorithm name, then the signature) of `data` by `key`.
fn sign(key: &ssh_key::PrivateKey, data: &[u8], flags: u32) -> Option<Vec<u8>> {
    use ssh_key::private::KeypairData;
    use ssh_key::{Algorithm, HashAlg};

    let signature = match key.key_data() {
        KeypairData::Rsa(rsa_key) => {
            use rsa::signature::{SignatureEncoding as _, Signer as _};
            let private = rsa_private_key(rsa_key)?;
            let (hash, bytes) = if flags & RSA_SHA2_512 != 0 {
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private);
                (HashAlg::Sha512, signer.try_sign(data).ok()?.to_vec())
            } else if flags & RSA_SHA2_256 != 0 {
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
                (HashAlg::Sha256, signer.try_sign(data).ok()?.to_vec())
            } else {
                // ssh-rsa (SHA-1) is refused, as OpenSSH's own agent may.
                return None;
            };
            ssh_key::Signature::new(Algorithm::Rsa { hash: Some(hash) }, bytes).ok()?
        }
        _ => {
            use rsa::signature::Signer as _;
            key.try_sign(data).ok()?
        }
    };
    let mut blob = Vec::new();
    put_string(&mut blob, signature.algorithm().as_str().as_bytes());
    put_string(&mut blob, signature.as_bytes());
    Some(blob)
}

/// The `rsa` crate's key for an OpenSSH RSA key. Built from the components here because
/// ssh-key 0.6.7's own conversion passes `p` twice where it means `p` and `q`, which the
/// `rsa` crate rejects.
fn rsa_private_key(key: &ssh_key::private::RsaKeypair) -> Option<rsa::RsaPrivateKey> {
    let number =
        |mpint: &ssh_key::Mpint| mpint.as_positive_bytes().map(rsa::BigUint::from_bytes_be);
    rsa::RsaPrivateKey::from_components(
        number(&key.public.n)?,
        number(&key.public.e)?,
        number(&key.private.d)?,
        vec![number(&key.private.p)?, number(&key.private.q)?],
    )
    .ok()
}

/// One length-prefixed message; `None` at a clean end of stream.
fn read_message(stream: &mut UnixStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    match stream.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length == 0 || length > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("agent message of {length} bytes"),
        ));
    }
    let mut message = vec![0u8; length];
    stream.read_exact(&mut message)?;
    Ok(Some(message))
}

fn write_message(stream: &mut UnixStream, message: &[u8]) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(message.len() + 4);
    put_string(&mut framed, message);
    stream.write_all(&framed)
}

fn put_u32(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn take_u32(input: &mut &[u8]) -> Option<u32> {
    let (head, rest) = input.split_first_chunk::<4>()?;
    *input = rest;
    Some(u32::from_be_bytes(*head))
}

fn take_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = take_u32(input)? as usize;
    if input.len() < length {
        return None;
    }
    let (head, rest) = input.split_at(length);
    *input = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_short_input_is_refused() {
        let mut out = Vec::new();
        put_string(&mut out, b"abc");
        put_u32(&mut out, 7);
        let mut input = out.as_slice();
        assert_eq!(take_string(&mut input), Some(&b"abc"[..]));
        assert_eq!(take_u32(&mut input), Some(7));
        assert_eq!(take_u32(&mut input), None);
        let mut short: &[u8] = &[0, 0, 0, 9, 1];
        assert_eq!(take_string(&mut short), None);
    }

    #[test]
    fn unknown_requests_get_failure() {
        assert_eq!(answer_from_keys(&[], &[17]), vec![FAILURE]);
        assert_eq!(
            answer_from_keys(&[], &[REQUEST_IDENTITIES]),
            vec![IDENTITIES_ANSWER, 0, 0, 0, 0]
        );
        assert_eq!(answer_from_keys(&[], &[SIGN_REQUEST, 0, 0]), vec![FAILURE]);
    }
}
