//! A build's secrets and SSH agents asked of the client's session once the build's graph is
//! known ([`hoist_engine::InputSource`]): exactly the ids the solved graph's
//! `RUN --mount=type=secret|ssh` name — ids built from ARGs too, which the Dockerfile's text
//! does not show.
//!
//! - Secrets: `/moby.buildkit.secrets.v1.Secrets/GetSecret` per id; `NotFound` leaves it
//!   out (a missing, non-required secret mounts nothing, as in BuildKit). Values go to the
//!   build only, never to a log.
//! - Registry credentials ([`SessionCredentials`], a `hoist_registry::CredentialSource`):
//!   `Auth.Credentials` for each host when the registry client first needs it.
//! - SSH: each id the client confirms with `SSH.CheckAgent` gets a socket in a private
//!   directory under `<root>/hoistd/ssh-*` (mode 0700); each connection to it becomes one
//!   `SSH.ForwardAgent` stream (metadata `buildkit.ssh.id`), and the socket is that id's
//!   agent for the engine. The sockets live as long as this source (the build).

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hoist_engine::{GivenInputs, InputSource, WantedInputs};
use hoist_proto::sshforward::ssh_client::SshClient;
use tonic::Request;

use crate::session::Session;

const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
const FORWARD_AGENT: &str = "/moby.sshforward.v1.SSH/ForwardAgent";

/// The client's session as the source of a build's secrets and agents.
pub struct SessionInputs {
    session: Arc<Session>,
    /// How long each answer of the client may take.
    timeout: Duration,
    /// Where the forwarding sockets' directory is made (`<root>/hoistd`).
    socket_parent: PathBuf,
    /// The forwarding sockets, served until this is dropped.
    forward: Mutex<Option<SshForward>>,
}

impl SessionInputs {
    /// `None` when the session serves neither secrets nor SSH agents.
    pub fn new(
        session: Arc<Session>,
        timeout: Duration,
        socket_parent: PathBuf,
    ) -> Option<SessionInputs> {
        (session.meta.serves(GET_SECRET) || session.meta.serves(FORWARD_AGENT)).then(|| {
            SessionInputs {
                session,
                timeout,
                socket_parent,
                forward: Mutex::new(None),
            }
        })
    }

    fn session_error(message: String) -> hoist_engine::Error {
        hoist_engine::Error::LateInputs(message)
    }

    async fn secrets(
        &self,
        ids: &std::collections::BTreeSet<String>,
    ) -> hoist_engine::Result<hoist_engine::Secrets> {
        let mut secrets = hoist_engine::Secrets::new();
        if !self.session.meta.serves(GET_SECRET) {
            return Ok(secrets);
        }
        let mut client =
            hoist_proto::secrets::secrets_client::SecretsClient::new(self.session.channel());
        for id in ids {
            let request = hoist_proto::secrets::GetSecretRequest {
                id: id.clone(),
                annotations: HashMap::new(),
            };
            let answer = tokio::time::timeout(self.timeout, client.get_secret(request))
                .await
                .map_err(|_| {
                    Self::session_error(format!(
                        "the client did not answer for secret {id:?} within {}s",
                        self.timeout.as_secs()
                    ))
                })?;
            match answer {
                Ok(response) => {
                    secrets.insert(
                        id.clone(),
                        hoist_engine::SecretSource::Value(response.into_inner().data),
                    );
                }
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => {
                    return Err(Self::session_error(format!(
                        "asking the client for secret {id:?} failed: {}",
                        status.message()
                    )))
                }
            }
        }
        Ok(secrets)
    }

    async fn agents(
        &self,
        ids: &std::collections::BTreeSet<String>,
    ) -> hoist_engine::Result<hoist_engine::SshAgents> {
        let mut agents = hoist_engine::SshAgents::new();
        if ids.is_empty() || !self.session.meta.serves(FORWARD_AGENT) {
            return Ok(agents);
        }
        let io = |what: &str, err: std::io::Error| hoist_engine::Error::Io {
            action: "create",
            path: self.socket_parent.join(what),
            source: err,
        };
        std::fs::create_dir_all(&self.socket_parent).map_err(|e| io("", e))?;
        let dir = tempfile::Builder::new()
            .prefix("ssh-")
            .tempdir_in(&self.socket_parent)
            .map_err(|e| io("ssh-*", e))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("ssh-*", e))?;
        let mut forward = SshForward {
            dir,
            tasks: Vec::new(),
        };
        let mut client = SshClient::new(self.session.channel());
        for (n, id) in ids.iter().enumerate() {
            let check = hoist_proto::sshforward::CheckAgentRequest { id: id.clone() };
            match tokio::time::timeout(self.timeout, client.check_agent(check)).await {
                Ok(Ok(_)) => {}
                // The client has no such agent: the mount is then as BuildKit makes a
                // missing one (an error when required).
                Ok(Err(_)) => continue,
                Err(_) => {
                    return Err(Self::session_error(format!(
                        "the client did not answer for ssh agent {id:?} within {}s",
                        self.timeout.as_secs()
                    )))
                }
            }
            let path = forward.dir.path().join(format!("agent-{n}.sock"));
            let listener =
                tokio::net::UnixListener::bind(&path).map_err(|e| hoist_engine::Error::Io {
                    action: "bind",
                    path: path.clone(),
                    source: e,
                })?;
            let channel = self.session.channel();
            let agent_id = id.clone();
            forward.tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(forward_agent(
                        stream,
                        SshClient::new(channel.clone()),
                        agent_id.clone(),
                    ));
                }
            }));
            agents.insert(id, vec![path]);
        }
        *self.forward.lock().unwrap_or_else(PoisonError::into_inner) = Some(forward);
        Ok(agents)
    }
}

impl std::fmt::Debug for SessionInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInputs")
            .field("session", &self.session.meta.id)
            .finish_non_exhaustive()
    }
}

impl InputSource for SessionInputs {
    fn inputs<'a>(
        &'a self,
        wanted: &'a WantedInputs,
    ) -> Pin<Box<dyn Future<Output = hoist_engine::Result<GivenInputs>> + Send + 'a>> {
        Box::pin(async move {
            Ok(GivenInputs {
                secrets: self.secrets(&wanted.secrets).await?,
                ssh: self.agents(&wanted.ssh).await?,
            })
        })
    }
}

/// Sockets in a private directory, each forwarding its connections to one of the client's
/// SSH agents; the tasks end and the sockets go when this is dropped.
struct SshForward {
    dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SshForward {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One agent connection tunnelled to the client's agent `id`.
async fn forward_agent(
    stream: tokio::net::UnixStream,
    mut client: SshClient<tonic::transport::Channel>,
    id: String,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut reader, mut writer) = stream.into_split();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            let message = hoist_proto::sshforward::BytesMessage {
                data: buf[..n].to_vec(),
            };
            if n == 0 || tx.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut request = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Ok(value) = id.parse() {
        request.metadata_mut().insert("buildkit.ssh.id", value);
    }
    let Ok(response) = client.forward_agent(request).await else {
        return;
    };
    let mut incoming = response.into_inner();
    while let Ok(Some(message)) = incoming.message().await {
        if writer.write_all(&message.data).await.is_err() {
            break;
        }
    }
}

/// Registry credentials asked of the client's session (`Auth.Credentials`) when the
/// registry client first needs a host's — hosts the Dockerfile's text does not name too
/// (an ARG-built `FROM`, an uploaded context's Dockerfile) — each host once per build (Docker
/// Hub asked as `registry-1.docker.io`, as BuildKit does). No answer, an error or a silent
/// client means the next source (hoistd's docker config), then anonymous.
pub struct SessionCredentials {
    session: Arc<Session>,
    timeout: Duration,
    answers: Arc<tokio::sync::Mutex<HashMap<String, Option<hoist_registry::Auth>>>>,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("session", &self.session.meta.id)
            .finish_non_exhaustive()
    }
}

impl SessionCredentials {
    pub const METHOD: &'static str = "/moby.filesync.v1.Auth/Credentials";

    /// `None` when the session does not serve `Auth.Credentials`.
    pub fn new(session: Arc<Session>, timeout: Duration) -> Option<SessionCredentials> {
        session
            .meta
            .serves(Self::METHOD)
            .then(|| SessionCredentials {
                session,
                timeout,
                answers: Arc::default(),
            })
    }

    /// Asks for `hosts`' credentials now, in the background (all at once); a build that
    /// needs one of them meanwhile waits for the answers instead of asking again.
    pub fn prefetch(self: &Arc<Self>, hosts: Vec<String>) {
        if hosts.is_empty() {
            return;
        }
        let this = Arc::clone(self);
        // The lock is taken before this returns: a lookup that comes after waits for it.
        let Ok(mut answers) = Arc::clone(&this.answers).try_lock_owned() else {
            return;
        };
        tokio::spawn(async move {
            let asked = hosts.iter().map(|host| this.ask(host));
            let answered = futures::future::join_all(asked).await;
            answers.extend(hosts.into_iter().zip(answered));
        });
    }

    async fn ask(&self, host: &str) -> Option<hoist_registry::Auth> {
        let asked = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let mut client =
            hoist_proto::filesync::auth_client::AuthClient::new(self.session.channel());
        let request = hoist_proto::filesync::CredentialsRequest {
            host: asked.to_owned(),
        };
        let answer = tokio::time::timeout(self.timeout, client.credentials(request))
            .await
            .ok()?
            .ok()?
            .into_inner();
        if !answer.username.is_empty() {
            Some(hoist_registry::Auth::Basic {
                username: answer.username,
                password: answer.secret,
            })
        } else if !answer.secret.is_empty() {
            Some(hoist_registry::Auth::IdentityToken(answer.secret))
        } else {
            None
        }
    }
}

impl hoist_registry::CredentialSource for SessionCredentials {
    fn credentials<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<hoist_registry::Auth>> + Send + 'a>> {
        Box::pin(async move {
            // Held while asking: concurrent pulls from one host ask once.
            let mut answers = self.answers.lock().await;
            if let Some(answer) = answers.get(host) {
                return answer.clone();
            }
            let answer = self.ask(host).await;
            answers.insert(host.to_owned(), answer.clone());
            answer
        })
    }
}
