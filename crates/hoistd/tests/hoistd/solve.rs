//! `Solve` with the `dockerfile.v0` frontend and `Status`, as buildctl sends them for a
//! remote context: a tarball served by the testkit's `FileServer`, the image pushed to a
//! `TestRegistry`; `Status` called before `Solve` waits for it and streams every step;
//! bad requests are refused naming what is wrong; a cancelled `Solve` stops its build.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use hoist_proto::control::{SolveRequest, StatusRequest, StatusResponse, Vertex};
use hoist_proto::tonic::Code;
use hoist_testkit::http::{tar_of, FileServer, Served};
use hoist_testkit::images::BaseImages;
use hoist_testkit::registry::TestRegistry;

use crate::Daemon;

fn solve_request(reference: &str, context: &str, image: &str) -> SolveRequest {
    SolveRequest {
        r#ref: reference.into(),
        frontend: "dockerfile.v0".into(),
        frontend_attrs: HashMap::from([("context".to_owned(), context.to_owned())]),
        exporter: "image".into(),
        exporter_attrs: HashMap::from([
            ("name".to_owned(), image.to_owned()),
            ("push".to_owned(), "true".to_owned()),
        ]),
        ..SolveRequest::default()
    }
}

/// One plain HTTP/1.0 GET against the registry: the response headers and body.
pub(crate) fn registry_get(host: &str, path: &str) -> (String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    (head, answer[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Every response of a Status stream, merged by vertex digest as BuildKit's printers do.
#[derive(Debug, Default)]
struct Progress {
    vertexes: Vec<Vertex>,
    logs: Vec<(String, i64, String)>,
}

impl Progress {
    fn add(&mut self, response: StatusResponse) {
        for vertex in response.vertexes {
            match self.vertexes.iter_mut().find(|v| v.digest == vertex.digest) {
                Some(seen) => *seen = vertex,
                None => self.vertexes.push(vertex),
            }
        }
        for log in response.logs {
            let text = String::from_utf8_lossy(&log.msg).into_owned();
            self.logs.push((log.vertex, log.stream, text));
        }
    }

    fn names(&self) -> Vec<&str> {
        self.vertexes.iter().map(|v| v.name.as_str()).collect()
    }
}

#[tokio::test]
async fn solve_pushes_a_remote_context_with_target_args_and_labels_and_status_shows_every_step() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let files = FileServer::start().unwrap();
    let dockerfile = "FROM scratch AS first\nARG WHICH=none\nENV STAGE=first PICKED=$WHICH\n\
                      COPY a.txt /\nFROM first AS second\nENV STAGE=second\nCOPY sub/b.txt /\n";
    let context = tar_of(&[
        ("Dockerfile", dockerfile),
        ("a.txt", "alpha\n"),
        ("sub/b.txt", "beta\n"),
    ]);
    files.serve("/ctx.tar", Served::new(context));
    let daemon = Daemon::start();
    let image = format!("{}/app:v1", registry.host());
    let mut request = solve_request("build-1", &files.url("/ctx.tar"), &image);
    request.frontend_attrs.extend([
        ("target".to_owned(), "first".to_owned()),
        ("build-arg:WHICH".to_owned(), "chosen".to_owned()),
        ("label:org.test".to_owned(), "yes".to_owned()),
    ]);

    // Status first, as BuildKit's clients often call it: it waits for the Solve.
    let mut status_client = daemon.control().await;
    let status = tokio::spawn(async move {
        let mut stream = status_client
            .status(StatusRequest {
                r#ref: "build-1".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut progress = Progress::default();
        while let Some(response) = stream.message().await.unwrap() {
            progress.add(response);
        }
        progress
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = daemon.control().await;
    let response = client.solve(request).await.unwrap().into_inner();
    let progress = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .expect("the Status stream ends with the build")
        .unwrap();

    let exported = &response.exporter_response;
    let digest = &exported["containerimage.digest"];
    let (head, _) = registry_get(&registry.host(), "/v2/app/manifests/v1");
    assert_eq!(
        header(&head, "Docker-Content-Digest"),
        Some(digest.as_str()),
        "{head}"
    );
    assert_eq!(exported["image.name"], image);
    let descriptor = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &exported["containerimage.descriptor"],
    )
    .unwrap();
    let descriptor: serde_json::Value = serde_json::from_slice(&descriptor).unwrap();
    assert_eq!(descriptor["digest"], digest.as_str());

    // target, build-arg and label reached the image.
    let config_digest = &exported["containerimage.config.digest"];
    let (_, config) = registry_get(&registry.host(), &format!("/v2/app/blobs/{config_digest}"));
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"STAGE=first"), "{env:?}");
    assert!(env.contains(&"PICKED=chosen"), "{env:?}");
    assert_eq!(config["config"]["Labels"]["org.test"], "yes");

    let names = progress.names();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("[first ") && n.ends_with("COPY a.txt /")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("sub/b.txt")), "{names:?}");
    assert!(
        names.iter().any(|n| n.contains("load build definition")),
        "{names:?}"
    );
    for vertex in &progress.vertexes {
        assert!(vertex.digest.starts_with("sha256:"), "{vertex:?}");
        assert!(vertex.started.is_some(), "{vertex:?}");
        assert!(vertex.completed.is_some(), "{vertex:?}");
        assert!(vertex.error.is_empty(), "{vertex:?}");
    }
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("hoistd: build build-1 platforms linux/"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_solve_requests_are_refused_naming_what_is_wrong() {
    let daemon = Daemon::start();
    let mut client = daemon.control().await;
    let context = "http://127.0.0.1:9/ctx.tar";
    let cases: Vec<(SolveRequest, Code, &str)> = vec![
        (
            SolveRequest {
                exporter: "s3".into(),
                exporter_attrs: HashMap::new(),
                ..solve_request("bad-1", context, "x")
            },
            Code::InvalidArgument,
            "unknown exporter \"s3\"",
        ),
        (
            SolveRequest {
                exporter: "local".into(),
                exporter_attrs: HashMap::from([("dest".to_owned(), "/tmp/out".to_owned())]),
                ..solve_request("bad-2", context, "x")
            },
            Code::Unimplemented,
            "the local exporter (it sends its result to the client) needs the client's session",
        ),
        (
            SolveRequest {
                exporter_attrs: HashMap::from([("colour".to_owned(), "red".to_owned())]),
                ..solve_request("bad-3", context, "x")
            },
            Code::InvalidArgument,
            "colour",
        ),
        (
            SolveRequest {
                frontend: "gateway.v0".into(),
                ..solve_request("bad-4", context, "x")
            },
            Code::InvalidArgument,
            "unsupported frontend \"gateway.v0\"",
        ),
        (
            SolveRequest {
                frontend_attrs: HashMap::from([
                    ("context".to_owned(), context.to_owned()),
                    (
                        "platform".to_owned(),
                        "linux/amd64,not a platform".to_owned(),
                    ),
                ]),
                ..solve_request("bad-5", context, "x")
            },
            Code::InvalidArgument,
            "invalid frontend attribute platform=\"not a platform\"",
        ),
        (
            SolveRequest {
                frontend_attrs: HashMap::from([("context".to_owned(), "/srv/ctx".to_owned())]),
                ..solve_request("bad-6", context, "x")
            },
            Code::InvalidArgument,
            "invalid frontend attribute context=\"/srv/ctx\"",
        ),
    ];
    for (request, code, message) in cases {
        let reference = request.r#ref.clone();
        let err = client.solve(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{reference}: {err:?}");
        assert!(err.message().contains(message), "{reference}: {err:?}");
    }
    // A build that fails (its context cannot be downloaded) is an error of its own.
    let err = client
        .solve(solve_request("bad-7", context, "127.0.0.1:9/app:x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err:?}");
    assert!(err.message().contains("127.0.0.1:9"), "{err:?}");
}

/// Processes whose command line is `sleep <seconds>`.
fn sleepers(seconds: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .filter(|cmdline| *cmdline == format!("sleep\0{seconds}\0").into_bytes())
        .count()
}

#[tokio::test]
async fn run_output_reaches_status_and_a_cancelled_solve_stops_its_build() {
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("RUN steps need root");
        return;
    }
    let Some(images) = BaseImages::get() else {
        return;
    };
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let pushed = images.push(&registry).await.unwrap();
    let files = FileServer::start().unwrap();
    let dockerfile = format!(
        "FROM {}\nRUN echo hello-from-run && sleep 17\n",
        pushed.reference("latest")
    );
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[("Dockerfile", &dockerfile)])),
    );
    let daemon = Daemon::start();
    let image = format!("{}/slow:v1", registry.host());
    let request = solve_request("slow-1", &files.url("/ctx.tar"), &image);
    let mut client = daemon.control().await;
    let solve = tokio::spawn(async move { client.solve(request).await });

    let mut status_client = daemon.control().await;
    let mut stream = status_client
        .status(StatusRequest {
            r#ref: "slow-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut progress = Progress::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !progress
        .logs
        .iter()
        .any(|(_, _, text)| text == "hello-from-run\n")
    {
        assert!(Instant::now() < deadline, "no RUN output: {progress:?}");
        let response = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .unwrap_or_else(|_| panic!("no RUN output: {progress:?}\n{}", daemon.stderr()))
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended: {progress:?}\n{}", daemon.stderr()));
        progress.add(response);
    }
    let (vertex, stream_no, _) = progress
        .logs
        .iter()
        .find(|(_, _, text)| text == "hello-from-run\n")
        .cloned()
        .unwrap();
    assert_eq!(stream_no, 1);
    let run = progress
        .vertexes
        .iter()
        .find(|v| v.digest == vertex)
        .unwrap();
    assert!(
        run.name.starts_with("[2/2] RUN echo hello-from-run"),
        "{run:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleepers("17") == 0 {
        assert!(Instant::now() < deadline, "the RUN step's sleep never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The client goes away: the call is dropped, and the build with it.
    solve.abort();
    // The build is dropped with the call: the solver is cancelled and the RUN's process
    // killed, long before its `sleep 17` would end.
    let aborted = Instant::now();
    while sleepers("17") > 0 {
        assert!(
            aborted.elapsed() < Duration::from_secs(10),
            "the RUN step still runs\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The Status stream ends, the step marked as it ended.
    while let Some(response) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        progress.add(response);
    }
    let run = progress
        .vertexes
        .iter()
        .find(|v| v.digest == vertex)
        .unwrap();
    assert!(run.completed.is_some(), "{run:?}");
    assert_eq!(run.error, "context canceled", "{run:?}");
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("hoistd: build slow-1 cancelled"),
        "{stderr}"
    );
    // The daemon goes on serving.
    let mut client = daemon.control().await;
    client
        .info(hoist_proto::control::InfoRequest {})
        .await
        .unwrap();
}
