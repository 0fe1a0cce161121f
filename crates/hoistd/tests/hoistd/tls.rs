//! The tcp listener with mutual TLS: a client with a certificate the CA signed is served;
//! one without a certificate, with a certificate of another CA, or speaking plain HTTP/2
//! is refused — and the daemon goes on serving, also while a connection on the TLS port
//! stays silent.

use std::time::Duration;

use hoist_proto::control::control_client::ControlClient;
use hoist_proto::control::{InfoRequest, ListWorkersRequest};
use hoist_proto::tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{Daemon, Pki};

/// Calls `Info` over tcp with `tls` (None: plain HTTP/2); the error text if it fails at
/// any stage (connect or call).
async fn info_over_tcp(daemon: &Daemon, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", daemon.tcp))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    ControlClient::new(channel)
        .info(InfoRequest {})
        .await
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

fn trusting_daemon(daemon: &Daemon) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(daemon.pki.file("ca.pem")).unwrap(),
        ))
        .domain_name("localhost")
}

fn identity(pki: &Pki) -> Identity {
    Identity::from_pem(
        std::fs::read(pki.file("client.pem")).unwrap(),
        std::fs::read(pki.file("client.key")).unwrap(),
    )
}

async fn still_serves(daemon: &mut Daemon) {
    assert!(daemon.alive(), "{}", daemon.stderr());
    let channel = daemon.tls_channel(true).await.unwrap();
    let workers = ControlClient::new(channel)
        .list_workers(ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(workers.record.len(), 1);
}

#[tokio::test]
async fn client_with_a_certificate_of_the_ca_is_served() {
    let mut daemon = Daemon::start();
    let tls = trusting_daemon(&daemon).identity(identity(&daemon.pki));
    info_over_tcp(&daemon, Some(tls)).await.unwrap();
    still_serves(&mut daemon).await;
}

#[tokio::test]
async fn client_without_a_certificate_is_refused() {
    let mut daemon = Daemon::start();
    let refused = info_over_tcp(&daemon, Some(trusting_daemon(&daemon)))
        .await
        .unwrap_err();
    assert!(!refused.is_empty());
    still_serves(&mut daemon).await;
}

#[tokio::test]
async fn client_with_a_certificate_of_another_ca_is_refused() {
    let mut daemon = Daemon::start();
    let other = Pki::new(&daemon.dir.path().join("other-pki"), "someone else's CA");
    let tls = trusting_daemon(&daemon).identity(identity(&other));
    let refused = info_over_tcp(&daemon, Some(tls)).await.unwrap_err();
    assert!(!refused.is_empty());
    still_serves(&mut daemon).await;
}

#[tokio::test]
async fn plain_http2_on_the_tls_port_is_refused() {
    let mut daemon = Daemon::start();
    info_over_tcp(&daemon, None).await.unwrap_err();
    still_serves(&mut daemon).await;
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_up_other_handshakes() {
    let mut daemon = Daemon::start();
    // Connected to the TLS port, never a ClientHello.
    let silent = tokio::net::TcpStream::connect(&daemon.tcp).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), still_serves(&mut daemon))
        .await
        .expect("a client is served while another connection is silent");
    drop(silent);
}
