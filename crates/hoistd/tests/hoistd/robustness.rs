//! Bad peers and stopping: garbage on either listener does not stop the daemon serving
//! others, an oversized message fails its call only; SIGTERM ends a health watch with
//! `NOT_SERVING`, does not wait for a silent connection, exits 0 and removes the socket;
//! a second daemon refuses a socket that is being served.

use std::time::Duration;

use hoist_proto::control::ListWorkersRequest;
use hoist_proto::health::health_check_response::ServingStatus;
use hoist_proto::health::HealthCheckRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Daemon;

/// Writes `bytes`, then reads until the daemon closes (or 10 s pass).
async fn send_garbage<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    bytes: &[u8],
) {
    let _ = stream.write_all(bytes).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await;
}

#[tokio::test]
async fn garbage_bytes_do_not_stop_the_daemon() {
    let mut daemon = Daemon::start();
    // Held open while others are served.
    let idle = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let mut noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    send_garbage(
        tokio::net::UnixStream::connect(&daemon.socket)
            .await
            .unwrap(),
        &noise,
    )
    .await;
    // An HTTP/2 preface followed by nonsense frames.
    noise.splice(0..0, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".iter().copied());
    send_garbage(
        tokio::net::UnixStream::connect(&daemon.socket)
            .await
            .unwrap(),
        &noise,
    )
    .await;
    send_garbage(
        tokio::net::UnixStream::connect(&daemon.socket)
            .await
            .unwrap(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    send_garbage(
        tokio::net::TcpStream::connect(&daemon.tcp).await.unwrap(),
        &noise,
    )
    .await;
    assert!(daemon.alive(), "{}", daemon.stderr());
    let workers = daemon
        .control()
        .await
        .list_workers(ListWorkersRequest::default())
        .await
        .unwrap();
    assert_eq!(workers.into_inner().record.len(), 1);
    drop(idle);
}

// Two threads: the test waits for the exit synchronously while the client's connection
// task must go on answering the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_watches_exits_zero_and_removes_the_socket() {
    let mut daemon = Daemon::start();
    let mut health = daemon.health().await;
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "moby.buildkit.v1.Control".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.stderr());
    let last = watch.message().await.unwrap().unwrap();
    assert_eq!(last.status, ServingStatus::NotServing as i32);
    assert!(!daemon.socket.exists());
    let log = daemon.stderr();
    assert!(log.contains("hoistd: SIGTERM"), "{log}");
    assert!(log.contains("hoistd: stopped"), "{log}");
}

#[tokio::test]
async fn a_served_socket_is_not_taken_over() {
    let daemon = Daemon::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hoistd"))
        .arg("--addr")
        .arg(format!("unix://{}", daemon.socket.display()))
        .arg("--root")
        .arg(daemon.dir.path().join("state2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another daemon is serving this socket"),
        "{stderr}"
    );
    // The first daemon still answers.
    daemon
        .control()
        .await
        .list_workers(ListWorkersRequest::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_for_a_silent_connection() {
    let mut daemon = Daemon::start();
    // Connected, never a byte sent: no call is running on it.
    let silent = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn an_oversized_message_fails_that_call_only() {
    let daemon = Daemon::start();
    let mut client = daemon.control().await;
    let huge = hoist_proto::control::DiskUsageRequest {
        filter: vec!["x".repeat(5 * 1024 * 1024)],
        ..Default::default()
    };
    let refused = client.disk_usage(huge).await.unwrap_err();
    assert_eq!(
        refused.code(),
        hoist_proto::tonic::Code::OutOfRange,
        "{refused:?}"
    );
    // The same connection and the daemon go on.
    let workers = client
        .list_workers(ListWorkersRequest::default())
        .await
        .unwrap();
    assert_eq!(workers.into_inner().record.len(), 1);
}
