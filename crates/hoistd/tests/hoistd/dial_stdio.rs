//! `hoistd dial-stdio`: gRPC spoken through the child's stdin and stdout reaches the daemon;
//! closing stdin ends the bridge with status 0.

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::ListWorkersRequest;
use hoist_proto::tonic::transport::{Endpoint, Uri};
use hyper_util::rt::TokioIo;
use tokio::process::Command;

use crate::Daemon;

#[tokio::test]
async fn grpc_through_dial_stdio_reaches_the_daemon() {
    let daemon = Daemon::start();
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_hoistd"))
        .arg("dial-stdio")
        .arg("--addr")
        .arg(format!("unix://{}", daemon.socket.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child's pipes are one connection: handed to the first connect, none after.
    let pipes = Mutex::new(Some(tokio::io::join(
        bridge.stdout.take().unwrap(),
        bridge.stdin.take().unwrap(),
    )));
    let pipes = std::sync::Arc::new(pipes);
    let channel = Endpoint::from_static("http://dial-stdio.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let pipes = pipes.lock().unwrap().take();
            async move {
                pipes
                    .map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("dial-stdio gives one connection"))
            }
        }))
        .await
        .unwrap();
    let mut client = ControlClient::new(channel);
    for _ in 0..3 {
        let workers = client
            .list_workers(ListWorkersRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(workers.record.len(), 1);
    }
    // Dropping the client closes the child's stdin; the bridge then ends.
    drop(client);
    let out = tokio::time::timeout(Duration::from_secs(20), bridge.wait_with_output())
        .await
        .expect("dial-stdio ends when stdin closes")
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn dial_stdio_names_an_address_it_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_hoistd"))
        .arg("dial-stdio")
        .arg("--addr")
        .arg(format!("unix://{}", socket.display()))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to unix://{}", socket.display())),
        "{stderr}"
    );
}
