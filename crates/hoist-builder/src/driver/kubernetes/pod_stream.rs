//! Reaching a pod's hoistd: [`connect`] makes a gRPC channel whose connections are each a
//! pod exec of `hoistd dial-stdio` (stdin and stdout joined into one byte stream), and
//! [`sticky`] / [`random`] choose the pod.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hoist_oci::Digester;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint, Uri};

use super::options::{CONTAINER, SOCKET};

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// One exec'd `hoistd dial-stdio`: its stdout read, its stdin written.
pub struct PodStream {
    io: tokio::io::Join<Reader, Writer>,
    /// Kept so the exec's status and its WebSocket task live as long as the stream.
    _process: AttachedProcess,
}

impl std::fmt::Debug for PodStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodStream").finish_non_exhaustive()
    }
}

impl PodStream {
    /// Execs `hoistd dial-stdio` in `pod`'s hoistd container; what it writes to stderr
    /// goes to `stderr` (the last 4 KiB).
    pub async fn open(
        pods: &Api<Pod>,
        pod: &str,
        stderr: Arc<Mutex<Vec<u8>>>,
    ) -> Result<PodStream, String> {
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(true)
            .stdout(true)
            .stderr(true);
        let mut process = pods
            .exec(pod, ["hoistd", "dial-stdio", "--addr", SOCKET], &params)
            .await
            .map_err(|e| format!("exec: {}", super::kube_message(&e)))?;
        let (Some(stdin), Some(stdout)) = (process.stdin(), process.stdout()) else {
            return Err("exec: no stdin or stdout".to_owned());
        };
        if let Some(mut err) = process.stderr() {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = err.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    let mut kept = stderr.lock().unwrap_or_else(|e| e.into_inner());
                    kept.extend_from_slice(&buffer[..n]);
                    let excess = kept.len().saturating_sub(4096);
                    kept.drain(..excess);
                }
            });
        }
        let reader: Reader = Box::new(stdout);
        let writer: Writer = Box::new(stdin);
        Ok(PodStream {
            io: tokio::io::join(reader, writer),
            _process: process,
        })
    }
}

impl AsyncRead for PodStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for PodStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A channel to `pod`'s hoistd; the error says what failed, with what `dial-stdio` wrote
/// to stderr.
pub async fn connect(pods: Api<Pod>, pod: &str, timeout: Duration) -> Result<Channel, String> {
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let connector = {
        let pod = pod.to_owned();
        let stderr = stderr.clone();
        tower::service_fn(move |_: Uri| {
            let pods = pods.clone();
            let pod = pod.clone();
            let stderr = stderr.clone();
            async move {
                let stream = PodStream::open(&pods, &pod, stderr)
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        })
    };
    let connected = Endpoint::from_static("http://hoistd.invalid")
        .connect_timeout(timeout)
        .connect_with_connector(connector)
        .await;
    connected.map_err(|e| {
        let mut message = format!("cannot dial hoistd: {}", crate::driver::chain(&e));
        let said = stderr.lock().unwrap_or_else(|e| e.into_inner());
        let said = String::from_utf8_lossy(&said);
        if !said.trim().is_empty() {
            message.push_str(&format!(" (dial-stdio: {})", said.trim()));
        }
        message
    })
}

/// The pod `key` goes to among `pods`: the highest sha256 of `key` and the pod's name
/// (rendezvous hashing), so a key keeps its pod while that pod runs, and only the keys of
/// a pod that went away move.
pub fn sticky<'a>(key: &str, pods: &'a [String]) -> Option<&'a str> {
    pods.iter()
        .max_by_key(|pod| {
            let mut digester = Digester::sha256();
            digester.update(key.as_bytes());
            digester.update(&[0]);
            digester.update(pod.as_bytes());
            digester.finish().0.to_string()
        })
        .map(String::as_str)
}

/// Any one of `pods`.
pub fn random(pods: &[String]) -> Option<&str> {
    use std::hash::{BuildHasher as _, Hasher as _};
    if pods.is_empty() {
        return None;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    Some(&pods[(hasher.finish() % pods.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_keeps_its_pod_and_keys_spread() {
        let pods: Vec<String> = ["b0-abc-1", "b0-abc-2", "b0-abc-3"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let first = sticky("/home/me/app", &pods).unwrap();
        assert_eq!(sticky("/home/me/app", &pods), Some(first));
        // Another pod going away moves nothing that was not on it.
        let others: Vec<String> = pods.iter().filter(|p| *p != first).cloned().collect();
        let fewer: Vec<String> = pods
            .iter()
            .filter(|p| *p == first || *p == &others[0])
            .cloned()
            .collect();
        assert_eq!(sticky("/home/me/app", &fewer), Some(first));
        let used: std::collections::BTreeSet<&str> = (0..32)
            .map(|i| sticky(&format!("/ctx/{i}"), &pods).unwrap())
            .collect();
        assert_eq!(used.len(), 3, "32 keys all on {used:?}");
        assert_eq!(sticky("/x", &[]), None);
        let any = random(&pods).unwrap();
        assert!(pods.iter().any(|p| p == any), "{any}");
        assert_eq!(random(&[]), None);
    }
}
