//! The fixture's pods: a process each, under a root dir of its own, and `exec` into them
//! over the WebSocket protocols `v5.channel.k8s.io` and `v4.channel.k8s.io` (a binary
//! message per chunk, its first byte the channel: 0 stdin, 1 stdout, 2 stderr, 3 the exit
//! status as a `Status` object; v5 adds 255, "close this channel", for the end of stdin).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{bad_request, time, Answer, State};

/// The exec protocols served, preferred first.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// One pod's process.
#[derive(Debug)]
pub(super) struct Pod {
    root: PathBuf,
    child: Option<Child>,
    /// Why the process could not be started.
    failed: Option<String>,
    /// The `unix://` socket its arguments name, ready once it exists.
    socket: Option<PathBuf>,
    env: Vec<(String, String)>,
    hoistd: PathBuf,
    started: String,
    image: String,
    container: String,
}

impl Pod {
    /// Writes the config map volumes the first container mounts under `root`, then starts
    /// its command (paths mapped under `root`).
    pub(super) fn start(
        hoistd: &Path,
        root: PathBuf,
        spec: &Value,
        configmaps: &BTreeMap<String, Value>,
    ) -> Pod {
        let container = &spec["containers"][0];
        let mut pod = Pod {
            root: root.clone(),
            child: None,
            failed: None,
            socket: None,
            env: (container["env"].as_array().into_iter().flatten())
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_owned(),
                        e["value"].as_str().unwrap_or("").to_owned(),
                    ))
                })
                .collect(),
            hoistd: hoistd.to_owned(),
            started: time::rfc3339_now(),
            image: container["image"].as_str().unwrap_or("").to_owned(),
            container: container["name"].as_str().unwrap_or("").to_owned(),
        };
        if let Err(e) = pod.prepare(spec, configmaps) {
            pod.failed = Some(e);
            return pod;
        }
        let argv: Vec<String> = ["command", "args"]
            .iter()
            .flat_map(|k| container[*k].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if argv.is_empty() {
            pod.failed = Some("the container has no command: images are not run".to_owned());
            return pod;
        }
        pod.socket = argv
            .iter()
            .find_map(|a| a.strip_prefix("unix://"))
            .map(|p| pod.map_path(p));
        if let Some(dir) = pod.socket.as_ref().and_then(|s| s.parent()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let log = std::fs::File::create(root.join("pod.log"));
        let started = log.and_then(|log| {
            let mut command = pod.command(&argv);
            command
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
        });
        match started {
            Ok(child) => pod.child = Some(child),
            Err(e) => pod.failed = Some(format!("cannot start {}: {e}", argv[0])),
        }
        pod
    }

    fn prepare(&self, spec: &Value, configmaps: &BTreeMap<String, Value>) -> Result<(), String> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        let mounts = spec["containers"][0]["volumeMounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for mount in mounts {
            let Some(path) = mount["mountPath"].as_str() else {
                continue;
            };
            let dir = self.map_path(path);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let volume = volumes.iter().find(|v| v["name"] == mount["name"]);
            let Some(map) = volume.and_then(|v| v["configMap"]["name"].as_str()) else {
                continue;
            };
            let data = configmaps
                .get(map)
                .ok_or_else(|| format!("configmap {map:?} not found"))?;
            for (file, text) in data.as_object().into_iter().flatten() {
                let target = dir.join(file);
                std::fs::write(&target, text.as_str().unwrap_or(""))
                    .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            }
        }
        Ok(())
    }

    /// `/a/b` in the container → `ROOT/a/b`.
    fn map_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// An argument with its container paths mapped: `/…` and `unix:///…`.
    fn map_arg(&self, arg: &str) -> String {
        if let Some(path) = arg.strip_prefix("unix://") {
            return format!("unix://{}", self.map_path(path).display());
        }
        if arg.starts_with('/') {
            return self.map_path(arg).display().to_string();
        }
        arg.to_owned()
    }

    /// `argv` as a command: `hoistd` the fixture's binary, paths mapped, the container's
    /// environment, run in the pod's root.
    fn command(&self, argv: &[String]) -> Command {
        let program = if argv[0] == "hoistd" {
            self.hoistd.clone()
        } else {
            PathBuf::from(&argv[0])
        };
        let mut command = Command::new(program);
        command
            .args(argv[1..].iter().map(|a| self.map_arg(a)))
            .envs(self.env.iter().cloned())
            .current_dir(&self.root);
        command
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The pod's `status`: running while the process lives, ready once its socket is there.
    pub(super) fn status(&mut self) -> Value {
        let alive = self.alive();
        let ready = alive && self.socket.as_ref().is_none_or(|s| s.exists());
        let phase = match (&self.failed, alive, &self.child) {
            (Some(_), _, _) => "Failed",
            (None, true, _) => "Running",
            (None, false, Some(_)) => "Failed",
            (None, false, None) => "Pending",
        };
        let state = if alive {
            json!({"running": {"startedAt": self.started}})
        } else {
            json!({"terminated": {"exitCode": 1, "reason": "Error",
                "message": self.failed.clone().unwrap_or_default()}})
        };
        let flag = if ready { "True" } else { "False" };
        json!({
            "phase": phase,
            "conditions": [{"type": "Ready", "status": flag}, {"type": "ContainersReady", "status": flag}],
            "containerStatuses": [{
                "name": self.container, "image": self.image, "imageID": "",
                "ready": ready, "started": alive, "restartCount": 0, "state": state,
            }],
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": self.started,
        })
    }

    /// What the process wrote.
    pub(super) fn log(&self) -> String {
        std::fs::read(self.root.join("pod.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Kills the process and waits for it.
    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET|POST …/pods/NAME/exec?command=…&stdin=true&stdout=true&stderr=true` with a
/// WebSocket upgrade.
pub(super) async fn exec(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
    namespace: &str,
    name: &str,
    params: &[(String, String)],
) -> Answer {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if !header("upgrade").eq_ignore_ascii_case("websocket") {
        return bad_request(
            "exec is served over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io); SPDY is not"
                .to_owned(),
        );
    }
    let offered = header("sec-websocket-protocol");
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    let Some(protocol) = PROTOCOLS.iter().find(|p| offered.contains(p)).copied() else {
        return bad_request(format!(
            "none of the offered protocols {offered:?} is served (want one of {PROTOCOLS:?})"
        ));
    };
    let argv: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        return bad_request("you must specify at least 1 command".to_owned());
    }
    let flag = |key: &str| {
        params
            .iter()
            .any(|(k, v)| k == key && (v == "true" || v == "1"))
    };
    let wants_stdin = flag("stdin");
    let command = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pod) = state.pods.get_mut(&(namespace.to_owned(), name.to_owned())) else {
            return super::not_found(&super::Kind::find("", "pods").expect("a known kind"), name);
        };
        if !pod.alive() {
            return bad_request(format!(
                "container not found in pod {name:?}: its process is not running"
            ));
        }
        pod.command(&argv)
    };
    let accept = derive_accept_key(header("sec-websocket-key").as_bytes());
    let v5 = protocol.starts_with("v5");
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(request).await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        run(ws, command, wants_stdin, v5).await;
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    for (key, value) in [
        ("upgrade", "websocket".to_owned()),
        ("connection", "Upgrade".to_owned()),
        ("sec-websocket-accept", accept),
        ("sec-websocket-protocol", protocol.to_owned()),
    ] {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            headers.insert(key, value);
        }
    }
    response
}

/// Runs `command` with its stdio on the WebSocket's channels until it exits.
async fn run<S>(ws: WebSocketStream<S>, command: Command, wants_stdin: bool, v5: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(if wants_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure",
                "message": format!("failed to exec in container: {e}"),
                "reason": "InternalError"});
            let _ = sink
                .send(channel_message(3, status.to_string().as_bytes()))
                .await;
            let _ = sink.close().await;
            return;
        }
    };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut stdin = child.stdin.take();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(data) if !data.is_empty() => match data[0] {
                    0 => {
                        if let Some(pipe) = stdin.as_mut() {
                            if pipe.write_all(&data[1..]).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    255 if v5 && data.get(1) == Some(&0) => stdin = None,
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
        // The client went away or closed stdin: the command sees its end.
        drop(stdin);
    });
    let pumps: Vec<_> = [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn AsyncRead + Unpin + Send>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn AsyncRead + Unpin + Send>),
        ),
    ]
    .into_iter()
    .filter_map(|(channel, pipe)| pipe.map(|p| (channel, p)))
    .map(|(channel, mut pipe)| {
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 32 * 1024];
            loop {
                match pipe.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(channel_message(channel, &buffer[..n])).is_err() {
                            break;
                        }
                    }
                }
            }
        })
    })
    .collect();
    for pump in pumps {
        let _ = pump.await;
    }
    let exit = child.wait().await;
    let status = match exit.as_ref().ok().and_then(|s| s.code()) {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        code => {
            let code = code.map_or("-1".to_owned(), |c| c.to_string());
            json!({"metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code}]}})
        }
    };
    let _ = out_tx.send(channel_message(3, status.to_string().as_bytes()));
    // A normal closure (1000): clients read a close without a code as an error.
    let _ = out_tx.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    })));
    drop(out_tx);
    let _ = writer.await;
    reader.abort();
}

fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_map_under_the_pod_root() {
        let pod = Pod {
            root: PathBuf::from("/tmp/k/pods/ns/p"),
            child: None,
            failed: None,
            socket: None,
            env: Vec::new(),
            hoistd: PathBuf::from("/bin/hoistd"),
            started: String::new(),
            image: String::new(),
            container: String::new(),
        };
        assert_eq!(
            pod.map_arg("unix:///run/hoistd/hoistd.sock"),
            "unix:///tmp/k/pods/ns/p/run/hoistd/hoistd.sock"
        );
        assert_eq!(
            pod.map_arg("/var/lib/hoist"),
            "/tmp/k/pods/ns/p/var/lib/hoist"
        );
        assert_eq!(pod.map_arg("--root"), "--root");
        let command = pod.command(&["hoistd".to_owned(), "--version".to_owned()]);
        assert_eq!(command.get_program(), "/bin/hoistd");
    }
}
