//! Native multi-node builds (issue 11): three `hoistd` processes on loopback tcp, each with
//! its own state dir and a `--config` whose `[worker.oci] platforms` declares one platform,
//! joined into one `remote` builder with `create` and `create --append --platform`.
//! `hoist build --builder B --platform a,b,c --push` gives one index with three manifests
//! under the tag, each node's log names only its own platform (also when the nodes declare
//! nothing and their `ListWorkers` decides; a platform nobody has goes to the first node);
//! a node whose build fails is named with its platform, no tag pushed; with one node
//! stopped the build fails naming that node and its endpoint, no tag is pushed, and
//! `hoist ls` shows the node as inactive and the other two as running with their version.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_testkit::http::{tar_of, FileServer, Served};
use hoist_testkit::registry::TestRegistry;

/// A running `hoistd` on a loopback tcp port, its stderr kept; killed on drop.
struct Node {
    _dir: tempfile::TempDir,
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// `hoistd` (built next to `hoist`) declaring `platform`; `None`, with a message, when
    /// it is not there.
    fn start(platform: &str) -> Option<Node> {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_hoist")).with_file_name("hoistd");
        if !binary.is_file() {
            hoist_testkit::skip(&format!(
                "no hoistd next to hoist ({}): build it with `cargo build -p hoistd`",
                binary.display()
            ));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hoistd.toml");
        std::fs::write(
            &config,
            format!("[worker.oci]\nplatforms = [\"{platform}\"]\n"),
        )
        .unwrap();
        let mut child = Command::new(binary)
            .args(["--addr", "tcp://127.0.0.1:0", "--root"])
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (pipe, lines) = (child.stderr.take().unwrap(), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(tcp) = line.strip_prefix("hoistd: listening on tcp://") {
                    let _ = ready_tx.send(Some(tcp.to_owned()));
                }
                if line.starts_with("hoistd: worker ") {
                    let _ = ready_tx.send(None);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut addr = None;
        loop {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Some(tcp)) => addr = Some(format!("tcp://{tcp}")),
                Ok(None) => break,
                Err(_) => {
                    let _ = child.kill();
                    panic!("hoistd did not start");
                }
            }
        }
        Some(Node {
            _dir: dir,
            child,
            addr: addr.expect("hoistd named no tcp listener"),
            log,
        })
    }

    /// The platforms named by this node's `hoistd: build REF platforms LIST` lines.
    fn built(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("hoistd: build "))
            .filter_map(|l| l.split(" platforms ").nth(1))
            .map(str::to_owned)
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `hoist ARGS` with the builder store and the client's state under `dir`.
fn hoist(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--root")
        .arg(dir.join("client-state"))
        .args(args)
        .env("HOIST_BUILDERS_DIR", dir.join("builders"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG")
        .env_remove("HOIST_BUILDER")
        .env_remove("BUILDX_BUILDER")
        .env_remove("BUILDKIT_PROGRESS")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hoist failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

/// The status and body of `GET /v2/REPO/manifests/TAG` on the registry at `host`.
pub(crate) fn get_manifest(host: &str, repo: &str, tag: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {host}\r\n\
         Accept: application/vnd.oci.image.index.v1+json, \
         application/vnd.docker.distribution.manifest.list.v2+json\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

const PLATFORMS: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/arm/v7"];

#[test]
fn three_native_nodes_build_one_index_and_a_stopped_node_is_named() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let mut nodes = Vec::new();
    for platform in PLATFORMS {
        let Some(node) = Node::start(platform) else {
            return;
        };
        nodes.push(node);
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The builder: one node per platform, each declaring its own.
    for (i, (node, platform)) in nodes.iter().zip(PLATFORMS).enumerate() {
        let mut args = vec!["create", "--name", "multi", "--driver", "remote"];
        if i > 0 {
            args.push("--append");
        }
        args.extend(["--platform", platform, &node.addr]);
        ok(&hoist(dir, &args));
    }

    let files = FileServer::start().unwrap();
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETPLATFORM\nLABEL built.for=$TARGETPLATFORM\n\
                 COPY a.txt /\n",
            ),
            ("a.txt", "alpha\n"),
        ])),
    );
    let context = files.url("/ctx.tar");
    let repo = "nodes/app";
    let image = format!("{}/{repo}:1", registry.host());
    let metadata = dir.join("metadata.json");
    let out = ok(&hoist(
        dir,
        &[
            "build",
            "--builder",
            "multi",
            "--progress=plain",
            "--platform",
            &PLATFORMS.join(","),
            "--push",
            "-t",
            &image,
            "--metadata-file",
            metadata.to_str().unwrap(),
            &context,
        ],
    ));

    eprintln!("{out}");
    // One index, three manifests, one per platform.
    let (status, body) = get_manifest(&registry.host(), repo, "1");
    assert_eq!(status, 200, "{body}\n{out}");
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut text = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(variant) = p["variant"].as_str() {
                text.push('/');
                text.push_str(variant);
            }
            text
        })
        .collect();
    platforms.sort();
    let mut expected: Vec<String> = PLATFORMS.iter().map(|p| (*p).to_owned()).collect();
    expected.sort();
    assert_eq!(platforms, expected, "{body}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    assert!(
        !body.is_empty()
            && meta["containerimage.digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")),
        "{meta}"
    );

    // Progress names each node's steps with its platform.
    for platform in PLATFORMS {
        assert!(
            out.contains(&format!("[{platform} 1/1] COPY a.txt /")),
            "{out}"
        );
    }

    // Each node built its own platform, and only it.
    for (node, platform) in nodes.iter().zip(PLATFORMS) {
        assert_eq!(
            node.built(),
            [platform],
            "{platform}'s node: {:?}",
            node.log.lock().unwrap()
        );
    }

    // Nodes that declare nothing: what their workers report (ListWorkers) decides.
    for (i, node) in nodes.iter().enumerate() {
        let mut args = vec!["create", "--name", "auto", "--driver", "remote"];
        if i > 0 {
            args.push("--append");
        }
        args.push(&node.addr);
        ok(&hoist(dir, &args));
    }
    // Listed in another order than the nodes: each still goes to its own.
    let reversed: Vec<&str> = PLATFORMS.iter().rev().copied().collect();
    ok(&hoist(
        dir,
        &[
            "build",
            "--builder",
            "auto",
            "--platform",
            &reversed.join(","),
            "--push",
            "-t",
            &format!("{}/{repo}:auto", registry.host()),
            &context,
        ],
    ));
    for (node, platform) in nodes.iter().zip(PLATFORMS) {
        assert_eq!(node.built(), [platform, platform], "{platform}'s node");
    }
    let (status, body) = get_manifest(&registry.host(), repo, "auto");
    assert_eq!(status, 200, "{body}");
    let auto: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(auto["manifests"].as_array().unwrap().len(), 3, "{body}");

    // A platform no node declares or reports goes to the first node (emulated there, as
    // buildx); with linux/amd64, also the first node's, the build is the first node's alone.
    ok(&hoist(
        dir,
        &[
            "build",
            "--builder",
            "multi",
            "--platform",
            "linux/amd64,linux/s390x",
            "--push",
            "-t",
            &format!("{}/{repo}:leftover", registry.host()),
            &context,
        ],
    ));
    assert_eq!(
        nodes[0].built(),
        ["linux/amd64", "linux/amd64", "linux/amd64,linux/s390x"]
    );
    assert_eq!(nodes[1].built().len(), 2);
    assert_eq!(nodes[2].built().len(), 2);

    // A node whose build fails (its platform's file is missing from the context): the
    // error names it and its platform, no tag is pushed.
    files.serve(
        "/partial.tar",
        Served::new(tar_of(&[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY only-$TARGETARCH.txt /\n",
            ),
            ("only-amd64.txt", "amd64\n"),
            ("only-arm.txt", "arm\n"),
        ])),
    );
    let out = hoist(
        dir,
        &[
            "build",
            "--builder",
            "multi",
            "--progress=plain",
            "--platform",
            &PLATFORMS.join(","),
            "--push",
            "-t",
            &format!("{}/{repo}:partial", registry.host()),
            &files.url("/partial.tar"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or_else(|| panic!("no ERROR line:\n{stderr}"));
    eprintln!("{error}");
    assert!(
        error.contains("node multi1")
            && error.contains(&nodes[1].addr)
            && error.contains("linux/arm64")
            && error.contains("only-arm64.txt"),
        "{error}"
    );
    assert_eq!(get_manifest(&registry.host(), repo, "partial").0, 404);

    // One node stopped: the build fails naming it and its endpoint, no tag is pushed.
    let stopped = nodes[1].addr.clone();
    nodes[1].stop();
    let before: Vec<usize> = nodes.iter().map(|n| n.built().len()).collect();
    let started = Instant::now();
    let out = hoist(
        dir,
        &[
            "build",
            "--builder",
            "multi",
            "--progress=plain",
            "--platform",
            &PLATFORMS.join(","),
            "--push",
            "-t",
            &format!("{}/{repo}:2", registry.host()),
            &context,
        ],
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ERROR:") && stderr.contains("multi1") && stderr.contains(&stopped),
        "{stderr}"
    );
    eprintln!("the build with a stopped node failed after {took:?}:\n{stderr}");
    assert_eq!(get_manifest(&registry.host(), repo, "2").0, 404);
    // The other nodes were not asked to build.
    assert_eq!(nodes[0].built().len(), before[0]);
    assert_eq!(nodes[2].built().len(), before[2]);

    // `hoist ls`: the stopped node inactive, the other two running.
    let ls = ok(&hoist(dir, &["ls"]));
    eprintln!("{ls}");
    for (i, node) in nodes.iter().enumerate() {
        let line = ls
            .lines()
            .find(|l| l.contains(&format!(" multi{i} ")) && l.contains(&node.addr))
            .unwrap_or_else(|| panic!("no line for {}:\n{ls}", node.addr));
        let wanted = if i == 1 { "inactive" } else { "running" };
        assert!(line.contains(wanted), "{line} not {wanted}:\n{ls}");
        // BUILDKIT: the version the running nodes' Info gave; none for the stopped one.
        let version = format!(" hoist v{} ", env!("CARGO_PKG_VERSION"));
        assert_eq!(line.contains(&version), i != 1, "{line}:\n{ls}");
        assert!(
            line.contains(&format!("{}*", PLATFORMS[i])),
            "{line}:\n{ls}"
        );
    }
}

/// The entries of the tar at `path`, with the contents of its regular files.
fn tar_files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((name.trim_end_matches('/').to_owned(), bytes));
    }
    out
}

/// Beyond buildx: `-o type=local|tar|oci` on a build spread over three nodes is merged on
/// the client — a directory per platform (as BuildKit's multi-platform local export names
/// them), their tar, and one OCI layout whose one index holds each node's manifest — and
/// each node still builds only its own platform.
#[test]
fn three_nodes_merge_local_tar_and_oci_outputs_on_the_client() {
    let mut nodes = Vec::new();
    for platform in PLATFORMS {
        let Some(node) = Node::start(platform) else {
            return;
        };
        nodes.push(node);
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (i, (node, platform)) in nodes.iter().zip(PLATFORMS).enumerate() {
        let mut args = vec!["create", "--name", "files", "--driver", "remote"];
        if i > 0 {
            args.push("--append");
        }
        args.extend(["--platform", platform, &node.addr]);
        ok(&hoist(dir, &args));
    }
    let files = FileServer::start().unwrap();
    files.serve(
        "/ctx.tar",
        Served::new(tar_of(&[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY $TARGETARCH.txt /which.txt\n",
            ),
            ("amd64.txt", "amd64\n"),
            ("arm64.txt", "arm64\n"),
            ("arm.txt", "arm\n"),
        ])),
    );
    let context = files.url("/ctx.tar");
    let build = |output: &str, extra: &[&str]| {
        let mut args = vec![
            "build",
            "--builder",
            "files",
            "--platform",
            "linux/amd64,linux/arm64,linux/arm/v7",
            "-o",
            output,
        ];
        args.extend_from_slice(extra);
        args.push(&context);
        ok(&hoist(dir, &args))
    };
    let expected = [
        ("linux_amd64", "amd64\n"),
        ("linux_arm64", "arm64\n"),
        ("linux_arm_v7", "arm\n"),
    ];

    // local: a directory per platform.
    let out_dir = dir.join("out/local");
    build(&format!("type=local,dest={}", out_dir.display()), &[]);
    let mut listed: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["linux_amd64", "linux_arm64", "linux_arm_v7"]);
    for (platform, content) in expected {
        assert_eq!(
            std::fs::read_to_string(out_dir.join(platform).join("which.txt")).unwrap(),
            content
        );
    }
    for (node, platform) in nodes.iter().zip(PLATFORMS) {
        assert_eq!(node.built(), [platform], "{platform}'s node");
    }

    // tar: the same tree as one archive.
    let tar_path = dir.join("out/all.tar");
    build(&format!("type=tar,dest={}", tar_path.display()), &[]);
    let entries = tar_files(&tar_path);
    for (platform, content) in expected {
        let file = format!("{platform}/which.txt");
        let found = entries.iter().find(|(name, _)| *name == file);
        assert_eq!(
            found.map(|(_, bytes)| bytes.as_slice()),
            Some(content.as_bytes()),
            "{file} in {:?}",
            entries.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
    }

    // oci: one layout, one index of three manifests, named by the tag.
    let oci_path = dir.join("out/image.tar");
    build(
        &format!("type=oci,dest={}", oci_path.display()),
        &["-t", "example.invalid/app:1"],
    );
    let entries = tar_files(&oci_path);
    let file = |name: &str| -> serde_json::Value {
        let bytes = &entries
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in the layout"))
            .1;
        serde_json::from_slice(bytes).unwrap()
    };
    let index = file("index.json");
    let roots = index["manifests"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{index}");
    assert_eq!(
        roots[0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    assert_eq!(
        roots[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let digest = roots[0]["digest"].as_str().unwrap();
    let image_index = file(&format!("blobs/sha256/{}", &digest["sha256:".len()..]));
    let mut platforms: Vec<String> = image_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut text = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(variant) = p["variant"].as_str() {
                text = format!("{text}/{variant}");
            }
            // Every manifest's blobs are in the layout.
            let manifest = file(&format!(
                "blobs/sha256/{}",
                &m["digest"].as_str().unwrap()["sha256:".len()..]
            ));
            for blob in
                std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap())
            {
                let name = format!(
                    "blobs/sha256/{}",
                    &blob["digest"].as_str().unwrap()["sha256:".len()..]
                );
                assert!(entries.iter().any(|(n, _)| *n == name), "{name} missing");
            }
            text
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm/v7", "linux/arm64"]);
    for (node, platform) in nodes.iter().zip(PLATFORMS) {
        assert_eq!(
            node.built().len(),
            3,
            "{platform}'s node: {:?}",
            node.built()
        );
    }
    // Nothing left behind next to the outputs.
    let leftovers: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hoist"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
