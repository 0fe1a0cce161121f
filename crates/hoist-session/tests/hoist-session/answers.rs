//! The small services: registry credentials from a docker config, secrets, health, and an
//! unknown directory.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use hoist_proto::filesync::auth_client::AuthClient;
use hoist_proto::filesync::file_sync_client::FileSyncClient;
use hoist_proto::filesync::{CredentialsRequest, GetTokenAuthorityRequest};
use hoist_proto::health::health_client::HealthClient;
use hoist_proto::health::HealthCheckRequest;
use hoist_proto::secrets::secrets_client::SecretsClient;
use hoist_proto::secrets::GetSecretRequest;
use hoist_proto::tonic::Code;
use hoist_session::Session;

use crate::connect;

#[tokio::test]
async fn credentials_secrets_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:pa55");
    std::fs::write(
        &config,
        format!("{{\"auths\":{{\"registry.example:5000\":{{\"auth\":\"{auth}\"}}}}}}"),
    )
    .unwrap();
    let session = Arc::new(
        Session::new("t", "k")
            .with_credentials(hoist_registry::Credentials::from_docker_config_file(config))
            .with_secrets(BTreeMap::from([("tok".to_owned(), b"s3cret".to_vec())])),
    );
    let channel = connect(session).await;
    let mut auth = AuthClient::new(channel.clone());
    let answer = auth
        .credentials(CredentialsRequest {
            host: "registry.example:5000".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.username.as_str(), answer.secret.as_str()),
        ("alice", "pa55")
    );
    let none = auth
        .credentials(CredentialsRequest {
            host: "other.example".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((none.username.as_str(), none.secret.as_str()), ("", ""));
    let status = auth
        .get_token_authority(GetTokenAuthorityRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    let mut secrets = SecretsClient::new(channel.clone());
    let secret = secrets
        .get_secret(GetSecretRequest {
            id: "tok".into(),
            ..GetSecretRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(secret.data, b"s3cret");
    let missing = secrets
        .get_secret(GetSecretRequest {
            id: "nope".into(),
            ..GetSecretRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("nope"), "{}", missing.message());

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    let mut request =
        hoist_proto::tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request
        .metadata_mut()
        .append("dir-name", "secret-dir".parse().unwrap());
    let refused = FileSyncClient::new(channel)
        .diff_copy(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert!(refused.message().contains("secret-dir"));
}

#[tokio::test]
async fn ssh_forwarding_reaches_the_agent_socket() {
    use hoist_proto::sshforward::ssh_client::SshClient;
    use hoist_proto::sshforward::{BytesMessage, CheckAgentRequest};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_stream::StreamExt as _;

    // An "agent" that answers each request with its bytes reversed.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 5];
        stream.read_exact(&mut buffer).await.unwrap();
        buffer.reverse();
        stream.write_all(&buffer).await.unwrap();
    });
    let session =
        Arc::new(Session::new("t", "k").with_ssh(BTreeMap::from([("default".to_owned(), socket)])));
    let channel = connect(session).await;
    let mut ssh = SshClient::new(channel);
    ssh.check_agent(CheckAgentRequest { id: String::new() })
        .await
        .unwrap();
    let missing = ssh
        .check_agent(CheckAgentRequest { id: "other".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mut request = hoist_proto::tonic::Request::new(tokio_stream::iter(vec![
        BytesMessage {
            data: b"he".to_vec(),
        },
        BytesMessage {
            data: b"llo".to_vec(),
        },
    ]));
    request
        .metadata_mut()
        .append("buildkit.ssh.id", "default".parse().unwrap());
    let mut answer = ssh.forward_agent(request).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(message) = answer.next().await {
        got.extend(message.unwrap().data);
    }
    assert_eq!(got, b"olleh");
}
