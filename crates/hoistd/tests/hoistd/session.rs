//! Sessions that misbehave, opened through `Control.Session` by a fake client (a tonic
//! `FileSync` server running on the session's byte stream, as a BuildKit client serves
//! it): a file list with `..` or absolute paths, a client that never answers, one that
//! dies in the middle of a file, and a session that is never opened. Each Solve fails
//! with a message saying why; nothing is written outside the state dir and the daemon
//! goes on serving.

use std::pin::Pin;
use std::time::Duration;

use hoist_proto::control::{BytesMessage, ListWorkersRequest, SolveRequest};
use hoist_proto::filesync::file_send_server::{FileSend, FileSendServer};
use hoist_proto::filesync::file_sync_server::{FileSync, FileSyncServer};
use hoist_proto::filesync::BytesMessage as FileBytes;
use hoist_proto::fsutil_types::{Packet, PacketType, Stat};
use hoist_proto::tonic::{self, Request, Response, Status, Streaming};
use std::io::Read as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::{Stream, StreamExt};

use crate::Daemon;

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Lists `name` as a file, whatever it is.
    ListPath(&'static str),
    /// Accepts the call and never sends anything.
    Silent,
    /// Lists `Dockerfile` (100 bytes), sends 10 of them when asked, then fails.
    DieMidFile,
    /// Serves [`GOOD_FILES`] with this Dockerfile as fsutil's sender does (the Dockerfile
    /// alone for the `dockerfile` dir, no `.dockerignore`; any other dir: `b.txt`).
    Serve(&'static str),
    /// `Serve`s this Dockerfile, but the context itself (sent while the build runs) is
    /// `ListPath` of this path.
    ContextListsPath(&'static str, &'static str),
}

/// A context the `Serve` client sends.
const GOOD_FILES: &[(&str, &str)] = &[("Dockerfile", ""), ("a.txt", "alpha\n")];

/// The Dockerfile most `Serve` clients send.
const COPY_A: &str = "FROM scratch\nCOPY a.txt /a.txt\n";

#[derive(Debug)]
struct Fake(Behaviour);

type Packets = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

fn stat_packet(path: &str, size: i64) -> Packet {
    Packet {
        r#type: PacketType::PacketStat as i32,
        stat: Some(Stat {
            path: path.to_owned(),
            mode: 0o644,
            size,
            ..Stat::default()
        }),
        ..Packet::default()
    }
}

#[tonic::async_trait]
impl FileSync for Fake {
    type DiffCopyStream = Packets;
    type TarStreamStream = Packets;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Packets>, Status> {
        let dir_name = request
            .metadata()
            .get("dir-name")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let includes: Vec<String> = request
            .metadata()
            .get_all("include-patterns")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let behaviour = match self.0 {
            Behaviour::ContextListsPath(_, path)
                if dir_name == "context" && includes.is_empty() =>
            {
                Behaviour::ListPath(path)
            }
            Behaviour::ContextListsPath(dockerfile, _) => Behaviour::Serve(dockerfile),
            other => other,
        };
        tokio::spawn(async move {
            match behaviour {
                Behaviour::ListPath(path) => {
                    let _ = tx.send(Ok(stat_packet(path, 4))).await;
                    let _ = tx.send(Ok(Packet::default())).await;
                    while let Some(Ok(_)) = incoming.next().await {}
                }
                Behaviour::Silent => {
                    while let Some(Ok(_)) = incoming.next().await {}
                    // Holds the stream open until the daemon goes away.
                    let _keep = tx;
                    std::future::pending::<()>().await;
                }
                Behaviour::Serve(dockerfile) => {
                    let files: Vec<(&str, &str)> = GOOD_FILES
                        .iter()
                        .map(|&(name, data)| {
                            (
                                name,
                                if name == "Dockerfile" {
                                    dockerfile
                                } else {
                                    data
                                },
                            )
                        })
                        .filter(|(name, _)| {
                            (includes.is_empty() || includes.iter().any(|i| i == name))
                                && (dir_name == "context" || *name == "Dockerfile")
                        })
                        .collect();
                    // Any other directory (a named context): one file of its own.
                    let files = if matches!(dir_name.as_str(), "context" | "dockerfile") {
                        files
                    } else {
                        vec![("b.txt", "beta\n")]
                    };
                    for (name, data) in &files {
                        let mut packet = stat_packet(name, data.len() as i64);
                        if let Some(stat) = packet.stat.as_mut() {
                            stat.mod_time = 1_600_000_000_000_000_000;
                        }
                        let _ = tx.send(Ok(packet)).await;
                    }
                    let _ = tx.send(Ok(Packet::default())).await;
                    while let Some(Ok(packet)) = incoming.next().await {
                        if packet.r#type == PacketType::PacketReq as i32 {
                            let data = files[packet.id as usize].1.as_bytes().to_vec();
                            for chunk in [data, Vec::new()] {
                                let _ = tx
                                    .send(Ok(Packet {
                                        r#type: PacketType::PacketData as i32,
                                        id: packet.id,
                                        data: chunk,
                                        ..Packet::default()
                                    }))
                                    .await;
                            }
                        } else if packet.r#type == PacketType::PacketFin as i32 {
                            let _ = tx
                                .send(Ok(Packet {
                                    r#type: PacketType::PacketFin as i32,
                                    ..Packet::default()
                                }))
                                .await;
                            break;
                        }
                    }
                }
                Behaviour::ContextListsPath(..) => unreachable!("told apart above"),
                Behaviour::DieMidFile => {
                    let _ = tx.send(Ok(stat_packet("Dockerfile", 100))).await;
                    let _ = tx.send(Ok(Packet::default())).await;
                    while let Some(Ok(packet)) = incoming.next().await {
                        if packet.r#type == PacketType::PacketReq as i32 {
                            let _ = tx
                                .send(Ok(Packet {
                                    r#type: PacketType::PacketData as i32,
                                    id: packet.id,
                                    data: b"FROM scrat".to_vec(),
                                    ..Packet::default()
                                }))
                                .await;
                            let _ = tx.send(Err(Status::aborted("client killed"))).await;
                            break;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn tar_stream(&self, _: Request<Streaming<Packet>>) -> Result<Response<Packets>, Status> {
        Err(Status::unimplemented("no tar stream"))
    }
}

/// The client's end of a `tar` export: the bytes it was sent.
#[derive(Debug, Clone, Default)]
struct Received(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

type Messages = Pin<Box<dyn Stream<Item = Result<FileBytes, Status>> + Send>>;

#[tonic::async_trait]
impl FileSend for Received {
    type DiffCopyStream = Messages;

    async fn diff_copy(
        &self,
        request: Request<Streaming<FileBytes>>,
    ) -> Result<Response<Messages>, Status> {
        let mut incoming = request.into_inner();
        while let Some(message) = incoming.next().await {
            self.0.lock().unwrap().extend_from_slice(&message?.data);
        }
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }
}

/// Opens session `id` on `daemon` with a fake client behaving as `behaviour`; the session
/// lives as long as the returned task.
async fn open_session(
    daemon: &Daemon,
    id: &str,
    behaviour: Behaviour,
) -> tokio::task::JoinHandle<()> {
    open_session_receiving(daemon, id, behaviour, Received::default()).await
}

/// [`open_session`], the client also serving `FileSend` into `received`.
async fn open_session_receiving(
    daemon: &Daemon,
    id: &str,
    behaviour: Behaviour,
    received: Received,
) -> tokio::task::JoinHandle<()> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(FileSyncServer::new(Fake(behaviour)))
            .add_service(FileSendServer::new(received))
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(theirs)))
            .await;
    });
    let (mut read, mut write) = tokio::io::split(ours);
    let (tx, rx) = tokio::sync::mpsc::channel::<BytesMessage>(16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0
                || tx
                    .send(BytesMessage {
                        data: buf[..n].to_vec(),
                    })
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
    let mut request = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let metadata = request.metadata_mut();
    metadata.insert("x-docker-expose-session-uuid", id.parse().unwrap());
    metadata.insert("x-docker-expose-session-name", "fake".parse().unwrap());
    metadata.insert("x-docker-expose-session-sharedkey", id.parse().unwrap());
    for method in [
        "/moby.filesync.v1.FileSync/DiffCopy",
        "/moby.filesync.v1.FileSend/DiffCopy",
    ] {
        metadata.append(
            "x-docker-expose-session-grpc-method",
            method.parse().unwrap(),
        );
    }
    let mut control = daemon.control().await;
    tokio::spawn(async move {
        let mut incoming = control.session(request).await.unwrap().into_inner();
        while let Some(Ok(message)) = incoming.next().await {
            if write.write_all(&message.data).await.is_err() {
                break;
            }
        }
    })
}

fn session_solve(reference: &str, session: &str) -> SolveRequest {
    SolveRequest {
        r#ref: reference.to_owned(),
        session: session.to_owned(),
        frontend: "dockerfile.v0".to_owned(),
        ..SolveRequest::default()
    }
}

/// Every path under `dir` whose file name is `name`.
fn find(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == name) {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}

async fn solve_error(daemon: &Daemon, reference: &str, session: &str) -> Status {
    let mut client = daemon.control().await;
    // A guard against a hang only; the daemon's own timeout is 3 s.
    tokio::time::timeout(
        Duration::from_secs(120),
        client.solve(session_solve(reference, session)),
    )
    .await
    .expect("the Solve ends")
    .expect_err("the Solve fails")
}

#[tokio::test]
async fn bad_sessions_fail_their_solve_and_the_daemon_goes_on() {
    let daemon = Daemon::start_with(&["--session-timeout", "3"]);

    for (n, path) in ["../evil", "/evil", "a/../../evil"].into_iter().enumerate() {
        let id = format!("escape{n}");
        let _session = open_session(&daemon, &id, Behaviour::ListPath(path)).await;
        let err = solve_error(&daemon, &format!("escape-{n}"), &id).await;
        assert!(
            err.message().contains("refused"),
            "{path}: {}",
            err.message()
        );
        assert!(err.message().contains(path), "{path}: {}", err.message());
        assert!(find(daemon.dir.path(), "evil").is_empty());
        assert!(!std::path::Path::new("/evil").exists());
    }

    // The context climbing out, found while the build already runs beside its transfer:
    // the transfer's error is the Solve's, whether the build read the context (`COPY`) or
    // ended first without it.
    for (n, dockerfile) in [COPY_A, "FROM scratch\n"].into_iter().enumerate() {
        let id = format!("context-escape{n}");
        let behaviour = Behaviour::ContextListsPath(dockerfile, "../evil");
        let _session = open_session(&daemon, &id, behaviour).await;
        let err = solve_error(&daemon, &format!("context-escape-{n}"), &id).await;
        let message = err.message();
        assert!(
            message.contains("refused") && message.contains("../evil"),
            "{message}"
        );
        assert!(find(daemon.dir.path(), "evil").is_empty());
    }

    let _silent = open_session(&daemon, "silent", Behaviour::Silent).await;
    let err = solve_error(&daemon, "silent-1", "silent").await;
    assert!(
        err.message().contains("sent nothing for 3s"),
        "{}",
        err.message()
    );

    let _dying = open_session(&daemon, "dying", Behaviour::DieMidFile).await;
    let err = solve_error(&daemon, "dying-1", "dying").await;
    assert!(err.message().contains("client killed"), "{}", err.message());

    let err = solve_error(&daemon, "never-1", "never-opened").await;
    assert!(
        err.message().contains("did not open within 3s"),
        "{}",
        err.message()
    );

    // Still serving, and the builds are not left running.
    let mut client = daemon.control().await;
    let workers = client
        .list_workers(ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(workers.record.len(), 1);
    // The daemon's stderr is read by a thread of its own: wait for the last line.
    let wanted: Vec<String> = [
        "escape-0",
        "context-escape-0",
        "context-escape-1",
        "silent-1",
        "dying-1",
        "never-1",
    ]
    .iter()
    .map(|r| format!("hoistd: build {r} failed"))
    .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !wanted.iter().all(|w| daemon.stderr().contains(w))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = daemon.stderr();
    for line in &wanted {
        assert!(log.contains(line), "{line}:\n{log}");
    }
}

#[tokio::test]
async fn a_solve_through_control_session_syncs_the_context_and_sends_a_tar_back() {
    let daemon = Daemon::start();
    let received = Received::default();
    let _session =
        open_session_receiving(&daemon, "good", Behaviour::Serve(COPY_A), received.clone()).await;
    let mut request = session_solve("good-1", "good");
    request.exporter = "tar".to_owned();
    let mut client = daemon.control().await;
    client.solve(request).await.unwrap();
    let bytes = received.0.lock().unwrap().clone();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = String::new();
        entry.read_to_string(&mut data).unwrap();
        files.push((entry.path().unwrap().display().to_string(), data));
    }
    assert_eq!(files, [("a.txt".to_owned(), "alpha\n".to_owned())]);
    let log = daemon.stderr_with("good context: ");
    assert!(log.contains("good dockerfile: 1 files received"), "{log}");
    assert!(log.contains("good context: 2 files received"), "{log}");
}

#[tokio::test]
async fn oci_and_docker_archives_stream_to_the_client() {
    let daemon = Daemon::start();
    for (n, kind, marker) in [(0, "oci", "oci-layout"), (1, "docker", "manifest.json")] {
        let received = Received::default();
        let id = format!("archive{n}");
        let _session =
            open_session_receiving(&daemon, &id, Behaviour::Serve(COPY_A), received.clone()).await;
        let mut request = session_solve(&format!("archive-{n}"), &id);
        request.exporter = kind.to_owned();
        request
            .exporter_attrs
            .insert("name".to_owned(), "example.com/app:1".to_owned());
        let mut client = daemon.control().await;
        client.solve(request).await.unwrap();
        let bytes = received.0.lock().unwrap().clone();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.iter().any(|n| n == marker), "{kind}: {names:?}");
    }
    // A directory layout cannot travel: refused, naming the attribute.
    let _session = open_session(&daemon, "dir", Behaviour::Serve(COPY_A)).await;
    let mut request = session_solve("dir-1", "dir");
    request.exporter = "oci".to_owned();
    request
        .exporter_attrs
        .insert("tar".to_owned(), "false".to_owned());
    let err = daemon.control().await.solve(request).await.unwrap_err();
    assert!(err.message().contains("tar=false"), "{}", err.message());
}

#[tokio::test]
async fn a_local_named_context_comes_from_the_clients_directory() {
    let daemon = Daemon::start();
    let received = Received::default();
    let _session = open_session_receiving(
        &daemon,
        "named",
        Behaviour::Serve("FROM scratch\nCOPY a.txt /a.txt\nCOPY --from=extra b.txt /b.txt\n"),
        received.clone(),
    )
    .await;
    let mut request = session_solve("named-1", "named");
    request.exporter = "tar".to_owned();
    request
        .frontend_attrs
        .insert("context:extra".to_owned(), "local:extra-dir".to_owned());
    let mut client = daemon.control().await;
    client.solve(request).await.unwrap();
    let bytes = received.0.lock().unwrap().clone();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = String::new();
        entry.read_to_string(&mut data).unwrap();
        files.push((entry.path().unwrap().display().to_string(), data));
    }
    files.sort();
    assert_eq!(
        files,
        [
            ("a.txt".to_owned(), "alpha\n".to_owned()),
            ("b.txt".to_owned(), "beta\n".to_owned())
        ]
    );
    let log = daemon.stderr_with("named extra-dir: ");
    assert!(log.contains("named extra-dir: 1 files received"), "{log}");
}

#[tokio::test]
async fn a_local_cache_needs_a_session_serving_the_content_store_and_an_imports_digest() {
    use hoist_proto::control::{CacheOptions, CacheOptionsEntry};
    let daemon = Daemon::start_with(&["--session-timeout", "3"]);
    let entry = |kind: &str, attrs: &[(&str, &str)]| CacheOptionsEntry {
        r#type: kind.to_owned(),
        attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let mut client = daemon.control().await;

    // No session: refused before anything runs, naming what needs one.
    let mut request = session_solve("local-cache-0", "");
    request.frontend_attrs.insert(
        "context".to_owned(),
        "https://example.invalid/ctx.tar".to_owned(),
    );
    request.cache = Some(CacheOptions {
        exports: vec![entry("local", &[("dest", "/tmp/never")])],
        ..CacheOptions::default()
    });
    let err = client.solve(request).await.unwrap_err();
    assert!(
        err.message().contains("type=local cache"),
        "{}",
        err.message()
    );

    // A session that does not serve the content store (a client of before local caches).
    let _session = open_session(&daemon, "nocontent", Behaviour::Serve(COPY_A)).await;
    let mut request = session_solve("local-cache-1", "nocontent");
    request.cache = Some(CacheOptions {
        exports: vec![entry("local", &[("dest", "/tmp/never")])],
        ..CacheOptions::default()
    });
    let err = client.solve(request).await.unwrap_err();
    assert!(
        err.message()
            .contains("does not serve /containerd.services.content.v1.Content/Info"),
        "{}",
        err.message()
    );

    // An import without the digest its client read from index.json.
    let _session = open_session(&daemon, "nodigest", Behaviour::Serve(COPY_A)).await;
    let mut request = session_solve("local-cache-2", "nodigest");
    request.cache = Some(CacheOptions {
        imports: vec![entry("local", &[("src", "/tmp/cache")])],
        ..CacheOptions::default()
    });
    let err = client.solve(request).await.unwrap_err();
    assert!(
        err.message().contains("names no digest"),
        "{}",
        err.message()
    );
    assert!(!std::path::Path::new("/tmp/never").exists());
}
