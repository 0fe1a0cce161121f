//! The `kubernetes` driver against hoist-testkit's in-process API server
//! ([`KubeApiServer`]: pods are real hoistd processes, exec is the WebSocket protocol), and
//! that server checked with the real `kubectl` (skipped when it is absent): `get`, `create
//! -f`, `exec` into a pod.
//!
//! Nothing here ran against a real cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::images::BaseImages;
use hoist_testkit::kube_api::KubeApiServer;
use hoist_testkit::registry::TestRegistry;

fn hoistd() -> Option<PathBuf> {
    let hoistd = PathBuf::from(env!("CARGO_BIN_EXE_hoist")).with_file_name("hoistd");
    if hoistd.is_file() {
        Some(hoistd)
    } else {
        hoist_testkit::skip(&format!(
            "no hoistd next to hoist ({}): build it with `cargo build -p hoistd`",
            hoistd.display()
        ));
        None
    }
}

fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        hoist_testkit::skip("no kubectl on PATH (Debian's kubernetes-client)");
    }
    found
}

/// `kubectl ARGS` against `server`, its caches in `dir`.
fn kubectl_run(kubectl: &Path, server: &KubeApiServer, dir: &Path, args: &[&str]) -> Output {
    Command::new(kubectl)
        .args(args)
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", dir)
        .env("KUBECACHEDIR", dir.join("kube-cache"))
        .output()
        .unwrap()
}

fn kubectl_ok(kubectl: &Path, server: &KubeApiServer, dir: &Path, args: &[&str]) -> String {
    let out = kubectl_run(kubectl, server, dir, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `hoist ARGS` with the builder store under `dir` and the server's kubeconfig.
fn hoist(dir: &Path, server: &KubeApiServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--root")
        .arg(dir.join("client-state"))
        .args(args)
        .env("HOIST_BUILDERS_DIR", dir.join("builders"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("KUBECONFIG", server.kubeconfig())
        .env_remove("HOIST_BUILDER")
        .env_remove("BUILDX_BUILDER")
        .env_remove("BUILDKIT_PROGRESS")
        .output()
        .unwrap()
}

fn ok(dir: &Path, server: &KubeApiServer, args: &[&str]) -> String {
    let out = hoist(dir, server, args);
    assert!(
        out.status.success(),
        "hoist {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The digest the registry at `host` answers for `path`'s manifest.
fn manifest_digest(host: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "HEAD {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case("docker-content-digest")
            .then(|| value.trim().to_owned())
    })
}

/// How many builds the pod's hoistd logged.
fn builds_logged(server: &KubeApiServer, namespace: &str, pod: &str) -> usize {
    let log = server.pod_log(namespace, pod).unwrap_or_default();
    log.lines()
        .filter(|l| l.starts_with("hoistd: build ") && l.contains(" platforms "))
        .count()
}

#[test]
fn kubectl_lists_creates_and_execs_against_the_fixture() {
    let (Some(kubectl), Some(hoistd)) = (kubectl(), hoistd()) else {
        return;
    };
    let server = KubeApiServer::start(&hoistd).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let version = kubectl_ok(&kubectl, &server, dir, &["version", "-o", "json"]);
    assert!(version.contains("v1.30.0-hoist-testkit"), "{version}");
    kubectl_ok(&kubectl, &server, dir, &["create", "namespace", "kc"]);
    let manifest = dir.join("deploy.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kc-config\n  namespace: kc\ndata:\n  buildkitd.toml: |\n    debug = true\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kc\n  namespace: kc\n  labels:\n    app: kc\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: kc\n  template:\n    metadata:\n      labels:\n        app: kc\n    spec:\n      containers:\n      - name: buildkitd\n        image: hoist/hoistd\n        command: [hoistd]\n        args: [--root, /var/lib/hoist, --addr, unix:///run/hoistd/hoistd.sock, --config, /etc/hoist/buildkitd.toml]\n        volumeMounts:\n        - name: config\n          mountPath: /etc/hoist\n      volumes:\n      - name: config\n        configMap:\n          name: kc-config\n",
    )
    .unwrap();
    kubectl_ok(
        &kubectl,
        &server,
        dir,
        // The fixture serves no OpenAPI schema, which kubectl's validation downloads.
        &[
            "create",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    // The pod is ready once its hoistd listens (no watch: the fixture serves none).
    let ready = |pods: Vec<String>| {
        pods.iter().all(|p| {
            server
                .get("pods", "kc", p)
                .is_some_and(|o| o["status"]["conditions"][0]["status"] == "True")
        }) && !pods.is_empty()
    };
    for _ in 0..600 {
        if ready(server.names("pods", "kc")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        ready(server.names("pods", "kc")),
        "{:?}",
        server.names("pods", "kc")
    );
    let listed = kubectl_ok(
        &kubectl,
        &server,
        dir,
        &["get", "deploy,pods,cm", "-n", "kc", "-o", "name"],
    );
    let pods = server.names("pods", "kc");
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pod = &pods[0];
    for expected in [
        "deployment.apps/kc".to_owned(),
        format!("pod/{pod}"),
        "configmap/kc-config".to_owned(),
    ] {
        assert!(
            listed.lines().any(|l| l == expected),
            "{expected} not in:\n{listed}"
        );
    }
    // The default table output too.
    let table = kubectl_ok(
        &kubectl,
        &server,
        dir,
        &["get", "deploy,pods,cm", "-n", "kc"],
    );
    assert!(
        table.contains(pod.as_str()) && table.contains("kc-config"),
        "{table}"
    );

    let version = kubectl_ok(
        &kubectl,
        &server,
        dir,
        &["exec", "-n", "kc", pod, "--", "hoistd", "--version"],
    );
    assert_eq!(
        version.trim(),
        concat!("hoistd ", env!("CARGO_PKG_VERSION"))
    );
    // The ConfigMap was written where the pod mounts it; stdin reaches the command.
    let config = kubectl_ok(
        &kubectl,
        &server,
        dir,
        &[
            "exec",
            "-n",
            "kc",
            pod,
            "--",
            "cat",
            "/etc/hoist/buildkitd.toml",
        ],
    );
    assert_eq!(config, "debug = true\n");
    let mut child = Command::new(&kubectl)
        .args(["exec", "-i", "-n", "kc", pod, "--", "cat"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let echoed = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "through stdin\n");
    // A failing command's exit code comes back.
    let failed = kubectl_run(
        &kubectl,
        &server,
        dir,
        &["exec", "-n", "kc", pod, "--", "false"],
    );
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");

    kubectl_ok(
        &kubectl,
        &server,
        dir,
        &["delete", "deployment", "kc", "-n", "kc", "--wait=false"],
    );
    assert!(server.names("deployments", "kc").is_empty());
    assert!(server.names("pods", "kc").is_empty());
    let missing = kubectl_run(
        &kubectl,
        &server,
        dir,
        &["get", "deployment", "kc", "-n", "kc"],
    );
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn a_kubernetes_builder_of_two_sticky_replicas_bootstraps_builds_pushes_and_is_removed() {
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("the kubernetes driver test runs builds in hoistd pods: needs root");
        return;
    }
    let Some(hoistd) = hoistd() else {
        return;
    };
    let Some(images) = BaseImages::get() else {
        return;
    };
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pushed = runtime.block_on(images.push(&registry)).unwrap();
    let server = KubeApiServer::start(&hoistd).unwrap();
    let ns = "hoist-builds";
    server.create_namespace(ns);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // Bad input first: nothing is created, nothing stored.
    for (opt, message) in [
        (
            "replicas=2,colour=red",
            "ERROR: invalid driver option colour for kubernetes driver\n",
        ),
        (
            "replicas=two",
            "ERROR: invalid driver option replicas=\"two\" for kubernetes driver: expected a whole number of pods, at least 1\n",
        ),
    ] {
        let out = hoist(
            dir,
            &server,
            &["create", "--name", "kb", "--driver", "kubernetes", "--driver-opt", opt],
        );
        assert!(!out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
    }
    assert!(!ok(dir, &server, &["ls"]).contains("kb"));

    let config = dir.join("buildkitd.toml");
    std::fs::write(
        &config,
        format!("[registry.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    let created = ok(
        dir,
        &server,
        &[
            "create",
            "--name",
            "kb",
            "--driver",
            "kubernetes",
            "--driver-opt",
            &format!("namespace={ns},replicas=2,loadbalance=sticky,labels=team=build"),
            "--buildkitd-config",
            config.to_str().unwrap(),
            "--bootstrap",
        ],
    );
    assert_eq!(created, "kb\n");
    assert_eq!(server.names("deployments", ns), ["kb0"]);
    assert_eq!(server.names("configmaps", ns), ["kb0-config"]);
    let deployment = server.get("deployments", ns, "kb0").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["status"]["readyReplicas"], 2);
    assert_eq!(deployment["metadata"]["labels"]["team"], "build");
    let pods = server.names("pods", ns);
    assert_eq!(pods.len(), 2, "{pods:?}");
    // What hoist made, as kubectl sees it.
    if let Some(kubectl) = kubectl() {
        let listed = kubectl_ok(
            &kubectl,
            &server,
            dir,
            &["get", "deploy,pods,cm", "-n", ns, "-o", "name"],
        );
        let mut expected = vec![
            "deployment.apps/kb0".to_owned(),
            "configmap/kb0-config".to_owned(),
        ];
        expected.extend(pods.iter().map(|p| format!("pod/{p}")));
        for name in expected {
            assert!(
                listed.lines().any(|l| l == name),
                "{name} not in:\n{listed}"
            );
        }
    }

    let native = format!(
        "linux/{}",
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    );
    // ls: the builder's two pods, running, with their platforms.
    let listed = ok(dir, &server, &["ls"]);
    for pod in &pods {
        let line = listed
            .lines()
            .find(|l| l.contains(pod.as_str()))
            .unwrap_or_else(|| panic!("no {pod} in:\n{listed}"));
        assert!(line.contains("running"), "{line}");
        assert!(line.contains(&native), "{line}");
    }
    let shown = ok(dir, &server, &["inspect", "kb"]);
    assert!(
        shown.contains("Driver:") && shown.contains("kubernetes"),
        "{shown}"
    );
    for pod in &pods {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with("Name:") && l.ends_with(pod.as_str())),
            "{shown}"
        );
    }
    let statuses: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.strip_prefix("Status:"))
        .map(str::trim)
        .collect();
    assert_eq!(statuses, ["running", "running"], "{shown}");
    assert_eq!(
        shown
            .lines()
            .filter(|l| l.starts_with("Platforms:") && l.contains(&native))
            .count(),
        2,
        "{shown}"
    );
    assert!(
        shown.contains(concat!("hoist v", env!("CARGO_PKG_VERSION"))),
        "{shown}"
    );

    // Two builds of one context: the same pod both times, the image pushed.
    let context = dir.join("app");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo built > /built\nCOPY a.txt /\n",
            pushed.reference("latest")
        ),
    )
    .unwrap();
    std::fs::write(context.join("a.txt"), "alpha\n").unwrap();
    let target = format!("{}/k8s/app:1", registry.host());
    let metadata_file = dir.join("metadata.json");
    for _ in 0..2 {
        let out = hoist(
            dir,
            &server,
            &[
                "build",
                "--builder",
                "kb",
                "--progress",
                "plain",
                "-t",
                &target,
                "--push",
                "--metadata-file",
                metadata_file.to_str().unwrap(),
                context.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let counts: Vec<usize> = pods
        .iter()
        .map(|pod| builds_logged(&server, ns, pod))
        .collect();
    let mut sorted = counts.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 2], "builds per pod {pods:?}: {counts:?}");
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata_file).unwrap()).unwrap();
    let digest = metadata["containerimage.digest"].as_str().unwrap();
    assert_eq!(
        manifest_digest(&registry.host(), "/v2/k8s/app/manifests/1").as_deref(),
        Some(digest),
        "{metadata}"
    );

    // loadbalance=random: a build goes to one of the pods, whichever.
    ok(
        dir,
        &server,
        &[
            "create",
            "--name",
            "kr",
            "--driver",
            "kubernetes",
            "--driver-opt",
            &format!("namespace={ns},replicas=2,loadbalance=random"),
            "--buildkitd-config",
            config.to_str().unwrap(),
            "--bootstrap",
        ],
    );
    let random_pods: Vec<String> = server
        .names("pods", ns)
        .into_iter()
        .filter(|p| p.starts_with("kr0-"))
        .collect();
    assert_eq!(random_pods.len(), 2, "{random_pods:?}");
    ok(
        dir,
        &server,
        &[
            "build",
            "--builder",
            "kr",
            "--progress",
            "plain",
            context.to_str().unwrap(),
        ],
    );
    let total: usize = random_pods
        .iter()
        .map(|pod| builds_logged(&server, ns, pod))
        .sum();
    assert_eq!(total, 1);
    ok(dir, &server, &["rm", "kr"]);
    assert_eq!(server.names("deployments", ns), ["kb0"]);

    // stop scales to 0: the objects stay, the pods go.
    ok(dir, &server, &["stop", "kb"]);
    assert!(server.names("pods", ns).is_empty());
    assert_eq!(
        server.get("deployments", ns, "kb0").unwrap()["spec"]["replicas"],
        0
    );
    let shown = ok(dir, &server, &["inspect", "kb"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("stopped")),
        "{shown}"
    );

    ok(dir, &server, &["rm", "kb"]);
    assert!(server.names("deployments", ns).is_empty());
    assert!(server.names("configmaps", ns).is_empty());
    assert!(server.names("pods", ns).is_empty());
    assert!(!ok(dir, &server, &["ls"]).contains("kb"));
}

#[test]
fn a_persistent_kubernetes_builder_is_a_stateful_set_whose_claims_rm_keeps_on_request() {
    let Some(hoistd) = hoistd() else {
        return;
    };
    let server = KubeApiServer::start(&hoistd).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(
        dir,
        &server,
        &[
            "create",
            "--name",
            "kp",
            "--driver",
            "kubernetes",
            "--driver-opt",
            "persistent-volume-claim.requests.storage=1Gi",
            "--bootstrap",
        ],
    );
    assert_eq!(server.names("statefulsets", "default"), ["kp0"]);
    assert!(server.names("deployments", "default").is_empty());
    assert_eq!(server.names("pods", "default"), ["kp0-0"]);
    assert_eq!(
        server.names("persistentvolumeclaims", "default"),
        ["buildkitd-kp0-0"]
    );
    let set = server.get("statefulsets", "default", "kp0").unwrap();
    let template = &set["spec"]["volumeClaimTemplates"][0];
    assert_eq!(template["spec"]["resources"]["requests"]["storage"], "1Gi");
    let shown = ok(dir, &server, &["inspect", "kp"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Name:") && l.ends_with("kp0-0")),
        "{shown}"
    );
    // --keep-state keeps the claim; a plain rm takes it.
    ok(dir, &server, &["rm", "--keep-state", "kp"]);
    assert!(server.names("statefulsets", "default").is_empty());
    assert!(server.names("pods", "default").is_empty());
    assert_eq!(
        server.names("persistentvolumeclaims", "default"),
        ["buildkitd-kp0-0"]
    );
    // Created again naming the kubeconfig context as its endpoint, as buildx does.
    ok(
        dir,
        &server,
        &[
            "create",
            "--name",
            "kp",
            "--driver",
            "kubernetes",
            "--driver-opt",
            "persistent-volume-claim.requests.storage=1Gi",
            "--bootstrap",
            hoist_testkit::kube_api::CONTEXT,
        ],
    );
    assert_eq!(server.names("pods", "default"), ["kp0-0"]);
    ok(dir, &server, &["rm", "kp"]);
    assert!(server.names("persistentvolumeclaims", "default").is_empty());
    assert!(server.names("configmaps", "default").is_empty());
}

#[test]
fn a_kubernetes_builder_whose_pods_never_get_ready_fails_bootstrap_naming_its_deployment() {
    let Some(hoistd) = hoistd() else {
        return;
    };
    let server = KubeApiServer::start(&hoistd).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // hoistd refuses the flag and exits: its pod never becomes ready.
    let out = hoist(
        dir,
        &server,
        &[
            "create",
            "--name",
            "kt",
            "--driver",
            "kubernetes",
            "--driver-opt",
            "timeout=2s",
            "--buildkitd-flags=--no-such-flag",
            "--bootstrap",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kubernetes deployment default/kt0: deployment not ready after 2s: expected 1 replicas to be ready, got 0"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The builder is stored and shown as stopped: its deployment exists without a ready pod.
    let shown = ok(dir, &server, &["inspect", "kt"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("stopped")),
        "{shown}"
    );
    ok(dir, &server, &["rm", "kt"]);
    assert!(server.names("deployments", "default").is_empty());

    // A context the kubeconfig does not have: the node is inactive, naming it.
    ok(
        dir,
        &server,
        &[
            "create",
            "--name",
            "kc",
            "--driver",
            "kubernetes",
            "elsewhere",
        ],
    );
    let shown = ok(dir, &server, &["inspect", "kc"]);
    assert!(
        shown.lines().any(|l| l.starts_with("Error:")
            && l.contains(
                "kubernetes deployment kc0: cannot load kubeconfig for context \"elsewhere\""
            )),
        "{shown}"
    );
    // rm says it could not reach the cluster; the builder is forgotten all the same.
    let out = hoist(dir, &server, &["rm", "kc"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to remove node kc0: kubernetes deployment kc0"),
        "{stderr}"
    );
    assert!(!ok(dir, &server, &["ls"]).contains("kc0"));

    // An API server that is gone: the node is inactive, with why.
    ok(
        dir,
        &server,
        &["create", "--name", "kg", "--driver", "kubernetes"],
    );
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(server.kubeconfig(), &kubeconfig).unwrap();
    drop(server);
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["inspect", "kg"])
        .env("HOIST_BUILDERS_DIR", dir.join("builders"))
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("inactive")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Error:") && l.contains("kubernetes deployment default/kg0")),
        "{shown}"
    );
}
