//! [`DockerContainerDriver`]: hoistd in a container of a Docker daemon (the node's endpoint,
//! `create`'s `unix://PATH` or `tcp://HOST:PORT`; else `DOCKER_HOST`, the docker context's
//! endpoint, `/var/run/docker.sock`; podman's compatible API should do too),
//! managed through the Engine API — never the `docker` CLI — as buildx's `docker-container`
//! driver manages buildkitd:
//!
//! - the container `hoist_buildkit_<node>`, privileged, host network unless `network=`
//!   says otherwise, its state on the named volume `hoist_buildkit_<node>_state` at
//!   `/var/lib/hoist`, the node's `buildkitd.toml` copied in as hoistd's `--config`;
//! - its image assembled by hoist from its own `hoistd` and loaded as
//!   `hoist/hoistd:<version>` ([`hoistd_image`](super::hoistd_image)), unless `image=`
//!   names one (pulled when the daemon does not have it);
//! - reached by `exec hoistd dial-stdio` in the container, its hijacked connection carrying
//!   BuildKit's gRPC ([`DockerContainerDriver::channel`]).
//!
//! Driver options: `image`, `network`, `env.NAME=VALUE`, `memory`, `memory-swap`,
//! `cpu-quota`, `cpu-period`, `cpu-shares`, `cpuset-cpus`, `restart-policy`,
//! `default-load`; all checked at `create`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_export::DockerEndpoint;
use hoist_oci::Platform;
use hyper::{Method, StatusCode};
use tonic::transport::{Channel, Endpoint, Uri};

use super::docker_api::{DockerApi, ExecStream};
use super::hoistd_image;
use super::{block_on, grpc, Driver, Features, Info, Status, DOCKER_CONTAINER};
use crate::error::{Error, Result};
use crate::node_group::{Node, BUILDKITD_CONFIG_FILE};

/// The prefix of the containers (and, with `_state`, the volumes) this driver makes.
pub const CONTAINER_PREFIX: &str = "hoist_buildkit_";
/// hoistd's state dir in the container (the volume's mount point).
const STATE_ROOT: &str = "/var/lib/hoist";
/// hoistd's socket in the container.
const SOCKET: &str = "unix:///run/hoistd/hoistd.sock";
/// Where the node's `buildkitd.toml` goes in the container.
const CONFIG_DIR: &str = "etc/hoist";
/// How long `bootstrap` waits for a started hoistd to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a status question (exec + Info + ListWorkers) may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);

/// hoistd in a Docker container.
#[derive(Debug)]
pub struct DockerContainerDriver {
    api: DockerApi,
    container: String,
    volume: String,
    image: Option<String>,
    network: String,
    env: Vec<String>,
    resources: serde_json::Map<String, serde_json::Value>,
    restart_policy: serde_json::Value,
    config: Option<Vec<u8>>,
    flags: Vec<String>,
    default_load: bool,
    /// The version a status question learnt, for [`Driver::version`].
    version: Mutex<Option<String>>,
    /// The stderr of the last `dial-stdio` exec, for errors.
    last_stderr: Mutex<Option<Arc<Mutex<Vec<u8>>>>>,
}

impl DockerContainerDriver {
    /// Checks the node's options (an unknown or malformed one is refused) and finds the
    /// Docker daemon's endpoint; nothing is asked of the daemon.
    pub fn new(node: &Node) -> Result<DockerContainerDriver> {
        let mut image = None;
        let mut network = "host".to_owned();
        let mut env = Vec::new();
        let mut resources = serde_json::Map::new();
        let mut restart_policy = serde_json::json!({ "Name": "unless-stopped" });
        let mut default_load = false;
        for (key, value) in &node.driver_opts {
            let bad = |message: &str| Error::BadDriverOpt {
                key: key.clone(),
                value: value.clone(),
                driver: DOCKER_CONTAINER,
                message: message.to_owned(),
            };
            match key.as_str() {
                "image" => {
                    if value.is_empty() {
                        return Err(bad("empty image name"));
                    }
                    image = Some(value.clone());
                }
                "network" => {
                    if value.is_empty() {
                        return Err(bad("empty network name"));
                    }
                    network = value.clone();
                }
                "memory" | "memory-swap" => {
                    let bytes = parse_bytes(value).ok_or_else(|| {
                        bad("expected a size in bytes with an optional unit (b, k, m, g)")
                    })?;
                    let name = if key == "memory" {
                        "Memory"
                    } else {
                        "MemorySwap"
                    };
                    resources.insert(name.to_owned(), bytes.into());
                }
                "cpu-quota" | "cpu-period" | "cpu-shares" => {
                    let number: i64 = value.parse().map_err(|_| bad("expected an integer"))?;
                    let name = match key.as_str() {
                        "cpu-quota" => "CpuQuota",
                        "cpu-period" => "CpuPeriod",
                        _ => "CpuShares",
                    };
                    resources.insert(name.to_owned(), number.into());
                }
                "cpuset-cpus" => {
                    let ok = !value.is_empty()
                        && value
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == ',' || c == '-');
                    if !ok {
                        return Err(bad("expected a CPU list such as 0-3 or 0,2"));
                    }
                    resources.insert("CpusetCpus".to_owned(), value.clone().into());
                }
                "restart-policy" => {
                    restart_policy = parse_restart_policy(value).ok_or_else(|| {
                        bad("expected no, always, unless-stopped or on-failure[:max-retries]")
                    })?
                }
                "default-load" => {
                    default_load = value.parse().map_err(|_| bad("expected true or false"))?;
                }
                _ => match key.strip_prefix("env.") {
                    Some(name) if !name.is_empty() && !name.contains('=') => {
                        env.push(format!("{name}={value}"));
                    }
                    _ => {
                        return Err(Error::UnknownDriverOpt {
                            key: key.clone(),
                            driver: DOCKER_CONTAINER,
                        })
                    }
                },
            }
        }
        // `create`'s ENDPOINT names the daemon; else the docker CLI's choice.
        let endpoint = match node.endpoint.as_str() {
            "" | crate::DEFAULT_BUILDER => DockerEndpoint::from_environment(),
            given => DockerEndpoint::parse(given),
        }
        .map_err(|e| Error::Invalid(format!("cannot find the Docker daemon: {e}")))?;
        let container = format!("{CONTAINER_PREFIX}{}", node.name);
        Ok(DockerContainerDriver {
            api: DockerApi { endpoint },
            volume: format!("{container}_state"),
            container,
            image,
            network,
            env,
            resources,
            restart_policy,
            config: node.files.get(BUILDKITD_CONFIG_FILE).cloned(),
            flags: node.buildkitd_flags.clone(),
            default_load,
            version: Mutex::new(None),
            last_stderr: Mutex::new(None),
        })
    }

    /// The container's name.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The state volume's name.
    pub fn volume(&self) -> &str {
        &self.volume
    }

    /// The Docker daemon's endpoint.
    pub fn docker_endpoint(&self) -> &DockerEndpoint {
        &self.api.endpoint
    }

    /// `default-load`: load results into the Docker daemon when no output is given.
    pub fn default_load(&self) -> bool {
        self.default_load
    }

    /// The image the container runs: `image=`, else hoist's own.
    pub fn image(&self) -> String {
        self.image.clone().unwrap_or_else(default_image)
    }

    /// A gRPC channel to the container's hoistd: each connection is an `exec hoistd
    /// dial-stdio` whose hijacked stream carries the HTTP/2.
    pub async fn channel(&self) -> Result<Channel> {
        let api = self.api.clone();
        let container = self.container.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        let connector = tower::service_fn(move |_: Uri| {
            let api = api.clone();
            let container = container.clone();
            let sender = sender.clone();
            async move {
                let stream: ExecStream = api
                    .exec(&container, &["hoistd", "dial-stdio", "--addr", SOCKET])
                    .await
                    .map_err(std::io::Error::other)?;
                let _ = sender.send(stream.stderr());
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        });
        let connected = Endpoint::from_static("http://hoistd.invalid")
            .connect_timeout(ASK_TIMEOUT)
            .connect_with_connector(connector)
            .await;
        if let Some(stderr) = receiver.try_iter().last() {
            *self.last_stderr.lock().unwrap_or_else(|e| e.into_inner()) = Some(stderr);
        }
        connected
            .map_err(|e| self.docker_error(format!("cannot dial hoistd: {}", super::chain(&e))))
    }

    /// What the last `dial-stdio` wrote to stderr, trimmed (empty when nothing).
    pub fn dial_stderr(&self) -> String {
        let last = self.last_stderr.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .map(|s| {
                let bytes = s.lock().unwrap_or_else(|e| e.into_inner());
                String::from_utf8_lossy(&bytes).trim().to_owned()
            })
            .unwrap_or_default()
    }

    fn docker_error(&self, message: String) -> Error {
        let stderr = self.dial_stderr();
        Error::Docker {
            container: self.container.clone(),
            message: if stderr.is_empty() {
                message
            } else {
                format!("{message} (dial-stdio: {stderr})")
            },
        }
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        Error::Docker {
            container: self.container.clone(),
            message: message.into(),
        }
    }

    /// hoistd's version and its worker's platforms, over the dial.
    async fn ask(&self) -> Result<(String, Vec<Platform>)> {
        let channel = self.channel().await?;
        let (version, platforms) = grpc::ask(channel)
            .await
            .map_err(|e| self.docker_error(format!("hoistd did not answer: {}", e.message())))?;
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some(version.clone());
        Ok((version, platforms))
    }

    /// The container's state (`running`, `exited`, …), `None` when there is no container.
    async fn state(&self) -> Result<Option<ContainerState>> {
        let answer = self
            .api
            .call_json(
                Method::GET,
                &format!("/containers/{}/json", self.container),
                &serde_json::Value::Null,
            )
            .await
            .map_err(|e| self.fail(e))?;
        match answer.status {
            StatusCode::OK => {
                #[derive(serde::Deserialize)]
                struct Inspect {
                    #[serde(rename = "State")]
                    state: ContainerState,
                }
                let inspect: Inspect =
                    answer.json("container inspect").map_err(|e| self.fail(e))?;
                Ok(Some(inspect.state))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(self.fail(format!("inspect: {} ({status})", answer.message()))),
        }
    }

    /// The image is in the daemon: loaded from hoist's own hoistd, or pulled for `image=`.
    async fn ensure_image(&self) -> Result<String> {
        let image = self.image();
        // hoist's own image needs hoistd, even when an image is loaded: it may be stale.
        let hoistd = match self.image {
            Some(_) => None,
            None => Some(hoistd_image::find_hoistd().map_err(|e| self.fail(e))?),
        };
        let inspect = self
            .api
            .call_json(
                Method::GET,
                &format!("/images/{image}/json"),
                &serde_json::Value::Null,
            )
            .await
            .map_err(|e| self.fail(e))?;
        if self.image.is_some() {
            if inspect.status == StatusCode::OK {
                return Ok(image);
            }
            self.pull(&image).await?;
            return Ok(image);
        }
        let Some(hoistd) = hoistd else {
            return Ok(image);
        };
        let digest = hoistd_image::file_digest(&hoistd).map_err(|e| self.fail(e))?;
        if inspect.status == StatusCode::OK {
            let labels: serde_json::Value =
                inspect.json("image inspect").map_err(|e| self.fail(e))?;
            let loaded = &labels["Config"]["Labels"][hoistd_image::DIGEST_LABEL];
            if loaded.as_str() == Some(digest.to_string().as_str()) {
                return Ok(image);
            }
        }
        let archive =
            hoistd_image::docker_archive(&hoistd, &digest, &image).map_err(|e| self.fail(e))?;
        let answer = self
            .api
            .call(
                Method::POST,
                "/images/load?quiet=1",
                "application/x-tar",
                archive,
            )
            .await
            .map_err(|e| self.fail(e))?;
        check_stream(&answer.body)
            .and_then(|()| {
                (answer.status == StatusCode::OK)
                    .then_some(())
                    .ok_or_else(|| answer.message())
            })
            .map_err(|e| self.fail(format!("cannot load the image {image}: {e}")))?;
        Ok(image)
    }

    async fn pull(&self, image: &str) -> Result<()> {
        let (name, tag) = split_tag(image);
        let mut path = format!("/images/create?fromImage={}", query_escape(name));
        if let Some(tag) = tag {
            path.push_str(&format!("&tag={}", query_escape(tag)));
        }
        let answer = self
            .api
            .call(Method::POST, &path, "application/json", Vec::new())
            .await
            .map_err(|e| self.fail(e))?;
        let ok = if answer.status == StatusCode::OK {
            check_stream(&answer.body)
        } else {
            Err(answer.message())
        };
        ok.map_err(|e| self.fail(format!("cannot pull the image {image}: {e}")))
    }

    /// Creates the volume and the container, copies the config in. `privileged`: Docker's
    /// privileged mode; else every capability but those this process lacks, no seccomp or
    /// AppArmor profile, nothing masked in `/proc` (see [`Self::ensure_running`]).
    async fn create_container(&self, privileged: bool) -> Result<()> {
        let image = self.ensure_image().await?;
        let volume = self
            .api
            .call_json(
                Method::POST,
                "/volumes/create",
                &serde_json::json!({ "Name": self.volume, "Labels": { "org.hoist.builder": "true" } }),
            )
            .await
            .map_err(|e| self.fail(e))?;
        if volume.status != StatusCode::CREATED && volume.status != StatusCode::OK {
            return Err(self.fail(format!(
                "cannot create the volume {}: {}",
                self.volume,
                volume.message()
            )));
        }
        let mut cmd = vec![
            "hoistd".to_owned(),
            "--root".to_owned(),
            STATE_ROOT.to_owned(),
            "--addr".to_owned(),
            SOCKET.to_owned(),
        ];
        if self.config.is_some() {
            cmd.push("--config".to_owned());
            cmd.push(format!("/{CONFIG_DIR}/{BUILDKITD_CONFIG_FILE}"));
        }
        cmd.extend(self.flags.iter().cloned());
        let mut host_config = serde_json::json!({
            "Privileged": privileged,
            "NetworkMode": self.network,
            "Mounts": [{ "Type": "volume", "Source": self.volume, "Target": STATE_ROOT }],
            "RestartPolicy": self.restart_policy,
            // Docker's init as pid 1, hoistd its child: the sandbox helper takes a parent
            // of pid 1 for a sign that hoistd died, so hoistd cannot be pid 1 itself.
            "Init": true,
        });
        if !privileged {
            host_config["CapAdd"] = serde_json::json!(["ALL"]);
            host_config["CapDrop"] = serde_json::json!(missing_capabilities());
            host_config["SecurityOpt"] =
                serde_json::json!(["seccomp=unconfined", "apparmor=unconfined"]);
            host_config["MaskedPaths"] = serde_json::json!([]);
            host_config["ReadonlyPaths"] = serde_json::json!([]);
        }
        for (key, value) in &self.resources {
            host_config[key] = value.clone();
        }
        let body = serde_json::json!({
            "Image": image,
            "Cmd": cmd,
            "Env": self.env,
            "Labels": { "org.hoist.builder": "true" },
            "HostConfig": host_config,
        });
        let created = self
            .api
            .call_json(
                Method::POST,
                &format!("/containers/create?name={}", self.container),
                &body,
            )
            .await
            .map_err(|e| self.fail(e))?;
        if created.status != StatusCode::CREATED {
            return Err(self.fail(format!("cannot create: {}", created.message())));
        }
        if let Some(config) = &self.config {
            let tar = config_tar(config).map_err(|e| self.fail(e.to_string()))?;
            let put = self
                .api
                .call(
                    Method::PUT,
                    &format!("/containers/{}/archive?path=/", self.container),
                    "application/x-tar",
                    tar,
                )
                .await
                .map_err(|e| self.fail(e))?;
            if put.status != StatusCode::OK {
                return Err(self.fail(format!(
                    "cannot copy {BUILDKITD_CONFIG_FILE} in: {}",
                    put.message()
                )));
            }
        }
        Ok(())
    }

    async fn start(&self) -> Result<()> {
        let answer = self
            .api
            .call_json(
                Method::POST,
                &format!("/containers/{}/start", self.container),
                &serde_json::Value::Null,
            )
            .await
            .map_err(|e| self.fail(e))?;
        match answer.status {
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED => Ok(()),
            _ => Err(self.fail(format!("cannot start: {}", answer.message()))),
        }
    }

    /// The last lines the container wrote (stdout and stderr), for errors.
    async fn logs(&self) -> String {
        let path = format!(
            "/containers/{}/logs?stdout=1&stderr=1&tail=10",
            self.container
        );
        match self
            .api
            .call_json(Method::GET, &path, &serde_json::Value::Null)
            .await
        {
            Ok(answer) if answer.status == StatusCode::OK => {
                let text = demux_all(&answer.body);
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" | ")
            }
            _ => String::new(),
        }
    }

    /// Creates and starts the container as needed (a stopped one is started), then waits
    /// until its hoistd answers: what `bootstrap` does, for callers already in async code.
    pub async fn ensure_running(&self) -> Result<()> {
        match self.state().await? {
            None => {
                self.create_container(true).await?;
                if let Err(e) = self.start().await {
                    // A daemon that itself runs without some capabilities (as in some
                    // sandboxes and CI runners) cannot start a privileged container: then
                    // every capability it can grant, unconfined, which hoistd needs alike.
                    if !e.to_string().contains("caps") {
                        return Err(e);
                    }
                    self.rm_async(true).await?;
                    self.create_container(false).await?;
                    self.start().await.map_err(|second| {
                        self.fail(format!("{e}; unprivileged with every capability: {second}"))
                    })?;
                }
            }
            Some(state) if !state.running => self.start().await?,
            Some(_) => {}
        }
        let started = Instant::now();
        loop {
            match self.state().await? {
                Some(state) if state.running && !state.restarting => {}
                // Exited, or exited and being restarted by its restart policy.
                Some(state) => {
                    let logs = self.logs().await;
                    return Err(self.fail(format!(
                        "the container stopped ({}, exit code {}): {logs}",
                        state.status, state.exit_code
                    )));
                }
                None => return Err(self.fail("the container went away")),
            }
            let asked = tokio::time::timeout(ASK_TIMEOUT, self.ask()).await;
            let why = match asked {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(Error::Docker { message, .. })) => message,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer".to_owned(),
            };
            if started.elapsed() > READY_TIMEOUT {
                return Err(self.fail(format!(
                    "hoistd did not answer within {}s: {why}",
                    READY_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn info_async(&self) -> Info {
        let inactive = |unreachable| Info {
            status: Status::Inactive,
            unreachable,
            platforms: Vec::new(),
        };
        match self.state().await {
            Err(e) => inactive(Some(e.to_string())),
            Ok(None) => inactive(None),
            Ok(Some(state)) if !state.running || state.restarting => Info {
                status: Status::Stopped,
                unreachable: None,
                platforms: Vec::new(),
            },
            Ok(Some(_)) => match tokio::time::timeout(ASK_TIMEOUT, self.ask()).await {
                Ok(Ok((_, platforms))) => Info {
                    status: Status::Running,
                    unreachable: None,
                    platforms,
                },
                Ok(Err(e)) => inactive(Some(e.to_string())),
                Err(_) => inactive(Some(
                    self.fail(format!("hoistd did not answer within {ASK_TIMEOUT:?}"))
                        .to_string(),
                )),
            },
        }
    }

    async fn stop_async(&self) -> Result<()> {
        let answer = self
            .api
            .call_json(
                Method::POST,
                &format!("/containers/{}/stop?t=10", self.container),
                &serde_json::Value::Null,
            )
            .await
            .map_err(|e| self.fail(e))?;
        match answer.status {
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.fail(format!("cannot stop: {}", answer.message()))),
        }
    }

    async fn rm_async(&self, keep_state: bool) -> Result<()> {
        let answer = self
            .api
            .call_json(
                Method::DELETE,
                &format!("/containers/{}?force=1&v=1", self.container),
                &serde_json::Value::Null,
            )
            .await
            .map_err(|e| self.fail(e))?;
        if !matches!(
            answer.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND
        ) {
            return Err(self.fail(format!("cannot remove: {}", answer.message())));
        }
        if keep_state {
            return Ok(());
        }
        let answer = self
            .api
            .call_json(
                Method::DELETE,
                &format!("/volumes/{}", self.volume),
                &serde_json::Value::Null,
            )
            .await
            .map_err(|e| self.fail(e))?;
        match answer.status {
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.fail(format!(
                "cannot remove the volume {}: {}",
                self.volume,
                answer.message()
            ))),
        }
    }
}

/// Linux capabilities by number, as Docker names them.
const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities missing from this process's bounding set (`CapBnd` of
/// `/proc/self/status`): a local daemon started alongside it most likely lacks them too.
fn missing_capabilities() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    let Some(bounding) = bounding else {
        return Vec::new();
    };
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// `hoist/hoistd:<hoist's version>`.
pub fn default_image() -> String {
    concat!("hoist/hoistd:", env!("CARGO_PKG_VERSION")).to_owned()
}

#[derive(Debug, serde::Deserialize)]
struct ContainerState {
    #[serde(rename = "Running", default)]
    running: bool,
    #[serde(rename = "Restarting", default)]
    restarting: bool,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "ExitCode", default)]
    exit_code: i64,
}

impl Driver for DockerContainerDriver {
    fn name(&self) -> &'static str {
        DOCKER_CONTAINER
    }

    fn bootstrap(&self) -> Result<()> {
        block_on(self.ensure_running())?
    }

    fn info(&self) -> Info {
        block_on(self.info_async()).unwrap_or_else(|e| Info {
            status: Status::Inactive,
            unreachable: Some(e.to_string()),
            platforms: Vec::new(),
        })
    }

    fn version(&self) -> String {
        if let Some(version) = self
            .version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return version;
        }
        block_on(async {
            tokio::time::timeout(ASK_TIMEOUT, self.ask())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|(version, _)| version)
                .unwrap_or_default()
        })
        .unwrap_or_default()
    }

    fn stop(&self) -> Result<()> {
        block_on(self.stop_async())?
    }

    fn rm(&self, keep_state: bool) -> Result<()> {
        block_on(self.rm_async(keep_state))?
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

/// A JSON message stream (`/images/load`, `/images/create`): the first `error` in it.
fn check_stream(body: &[u8]) -> std::result::Result<(), String> {
    for message in serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>() {
        let Ok(message) = message else { break };
        if let Some(error) = message.get("error").and_then(|e| e.as_str()) {
            return Err(error.to_owned());
        }
        if let Some(error) = message
            .get("errorDetail")
            .and_then(|e| e.get("message"))
            .and_then(|e| e.as_str())
        {
            return Err(error.to_owned());
        }
    }
    Ok(())
}

/// Docker's multiplexed log stream (8-byte headers) as text; a body without headers (a
/// TTY container's) as it is.
fn demux_all(body: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 8 && matches!(rest[0], 0..=2) && rest[1..4] == [0, 0, 0] {
        let size = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + size).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    String::from_utf8_lossy(&out).into_owned()
}

/// `name[:tag]` (a digest reference keeps its `@`); the tag split off a name whose last
/// `:` comes after its last `/`.
fn split_tag(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (image, None),
    }
}

fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/:@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A tar with `etc/hoist/buildkitd.toml` (for `PUT /containers/{id}/archive?path=/`).
fn config_tar(config: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut path = String::new();
    for part in CONFIG_DIR.split('/') {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(config.len() as u64);
    builder.append_data(
        &mut header,
        format!("{CONFIG_DIR}/{BUILDKITD_CONFIG_FILE}"),
        config,
    )?;
    builder.into_inner()
}

/// Docker's `RAMInBytes`: a number with an optional binary unit `b`, `k`, `m`, `g`, `t`,
/// `p` (an optional trailing `b`, any case).
fn parse_bytes(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let multiplier: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    let bytes = number * multiplier;
    (bytes.is_finite() && bytes >= 0.0 && bytes < i64::MAX as f64).then_some(bytes as i64)
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]` → the Engine API's `RestartPolicy`.
fn parse_restart_policy(text: &str) -> Option<serde_json::Value> {
    let (name, retries) = match text.split_once(':') {
        Some((name, retries)) => (name, Some(retries.parse::<u32>().ok()?)),
        None => (text, None),
    };
    match (name, retries) {
        ("no" | "always" | "unless-stopped", None) => Some(serde_json::json!({ "Name": name })),
        ("on-failure", retries) => Some(serde_json::json!({
            "Name": name,
            "MaximumRetryCount": retries.unwrap_or(0),
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(opts: &[(&str, &str)]) -> Node {
        Node {
            name: "b0".to_owned(),
            endpoint: "default".to_owned(),
            driver_opts: opts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Node::default()
        }
    }

    #[test]
    fn options_are_checked_and_become_the_container_settings() {
        let driver = DockerContainerDriver::new(&node(&[
            ("image", "example/hoistd:1"),
            ("network", "bridge"),
            ("env.HTTP_PROXY", "http://proxy:3128"),
            ("memory", "512m"),
            ("cpu-quota", "50000"),
            ("cpu-period", "100000"),
            ("cpu-shares", "512"),
            ("cpuset-cpus", "0-1"),
            ("restart-policy", "on-failure:3"),
        ]))
        .unwrap();
        assert_eq!(driver.container(), "hoist_buildkit_b0");
        assert_eq!(driver.volume(), "hoist_buildkit_b0_state");
        assert_eq!(driver.image(), "example/hoistd:1");
        assert_eq!(driver.network, "bridge");
        assert_eq!(driver.env, ["HTTP_PROXY=http://proxy:3128"]);
        assert_eq!(driver.resources["Memory"], 512 * 1024 * 1024);
        assert_eq!(driver.resources["CpuQuota"], 50000);
        assert_eq!(driver.resources["CpusetCpus"], "0-1");
        assert_eq!(
            driver.restart_policy,
            serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        let plain = DockerContainerDriver::new(&node(&[])).unwrap();
        assert_eq!(plain.image(), default_image());
        assert_eq!(plain.network, "host");

        for (key, value, message) in [
            ("colour", "red", "invalid driver option colour for docker-container driver"),
            ("env.", "x", "invalid driver option env. for docker-container driver"),
            (
                "memory",
                "lots",
                "invalid driver option memory=\"lots\" for docker-container driver: expected a size in bytes with an optional unit (b, k, m, g)",
            ),
            (
                "cpu-shares",
                "1.5",
                "invalid driver option cpu-shares=\"1.5\" for docker-container driver: expected an integer",
            ),
            (
                "restart-policy",
                "sometimes",
                "invalid driver option restart-policy=\"sometimes\" for docker-container driver: expected no, always, unless-stopped or on-failure[:max-retries]",
            ),
        ] {
            let err = DockerContainerDriver::new(&node(&[(key, value)])).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn sizes_parse_as_docker_reads_them() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("1k"), Some(1024));
        assert_eq!(parse_bytes("1.5GB"), Some(1536 * 1024 * 1024));
        assert_eq!(parse_bytes("2mib"), Some(2 * 1024 * 1024));
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("1x"), None);
        assert_eq!(parse_bytes(""), None);
    }

    #[test]
    fn logs_and_message_streams() {
        let mut body = vec![2, 0, 0, 0, 0, 0, 0, 4];
        body.extend_from_slice(b"bad\n");
        body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 3]);
        body.extend_from_slice(b"ok\n");
        assert_eq!(demux_all(&body), "bad\nok\n");
        assert_eq!(
            check_stream(br#"{"stream":"Loaded image"}{"error":"no space left"}"#),
            Err("no space left".to_owned())
        );
        assert_eq!(check_stream(br#"{"stream":"Loaded image"}"#), Ok(()));
        assert_eq!(
            split_tag("localhost:5000/a/b:1"),
            ("localhost:5000/a/b", Some("1"))
        );
        assert_eq!(
            split_tag("localhost:5000/a/b"),
            ("localhost:5000/a/b", None)
        );
    }
}
