//! `hoist create|use|ls|inspect|stop|rm`, `build --builder` and the docker CLI plugin, from
//! the real binary with `HOIST_BUILDERS_DIR` in a temp dir.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};

struct Builders {
    dir: tempfile::TempDir,
}

impl Builders {
    fn new() -> Builders {
        Builders {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("builders")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(args)
            .env("HOIST_BUILDERS_DIR", self.store())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("HOIST_BUILDER")
            .env_remove("BUILDX_BUILDER")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hoist {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "hoist {args:?} succeeded");
        text(&out.stderr)
    }

    /// Every stored file and its bytes.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(self.store()).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.file_type().is_file() && entry.file_name() != ".lock" {
                out.push((
                    entry.path().display().to_string(),
                    std::fs::read(entry.path()).unwrap(),
                ));
            }
        }
        out
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `ls` table with the embedded engine's platforms (this machine's) cut off.
fn ls_without_platforms(table: &str) -> String {
    table
        .lines()
        .map(|l| match l.find("linux/") {
            Some(at) => l[..at].trim_end(),
            None => l.trim_end(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn create_use_ls_inspect_rm() {
    let b = Builders::new();
    assert_eq!(
        ls_without_platforms(&b.ok(&["ls"])),
        "NAME/NODE     DRIVER/ENDPOINT   STATUS    BUILDKIT       PLATFORMS\n\
         default*      embedded\n \\_ default    \\_ default       running   hoist v0.1.0"
    );
    assert_eq!(
        b.ok(&["create", "--name", "Mine", "--platform", "linux/arm64"]),
        "mine\n"
    );
    assert_eq!(b.ok(&["builder", "use", "mine"]), "");
    let ls = b.ok(&["ls"]);
    assert!(ls.contains("\nmine*  "), "{ls}");
    assert!(ls.contains(" \\_ mine0 "), "{ls}");
    assert!(ls.contains("linux/arm64*, "), "{ls}");
    assert!(ls.contains("\ndefault  "), "{ls}");

    let inspect = b.ok(&["inspect"]);
    assert!(
        inspect.starts_with(
            "Name:   mine\nDriver: embedded\n\nNodes:\nName:             mine0\nEndpoint:         default\nStatus:           running\nBuildKit version: hoist v0.1.0\nPlatforms:        linux/arm64*, "
        ),
        "{inspect}"
    );

    let json = b.ok(&["ls", "--format", "json"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["Name"], "mine");
    assert_eq!(lines[1]["Current"], true);
    assert_eq!(lines[1]["Nodes"][0]["Status"], "running");

    let out = b.run(&["rm", "mine"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "mine removed\n");
    assert!(b.ok(&["ls"]).contains("\ndefault*  "));
}

#[test]
fn refused_commands_say_why_and_leave_the_store_unchanged() {
    let b = Builders::new();
    b.ok(&["create", "--name", "taken"]);
    let before = b.files();
    let config = b.dir.path().join("bad.toml");
    std::fs::write(&config, "[registry.\"r.example\"]\nhttp = \n").unwrap();
    let config_arg = config.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["create", "--driver", "warp"], "ERROR: failed to find driver \"warp\"\n"),
        (
            &["create", "--driver", "kubernetes", "--driver-opt", "colour=red"],
            "ERROR: invalid driver option colour for kubernetes driver\n",
        ),
        (
            &["create", "--driver", "kubernetes", "--driver-opt", "replicas=two"],
            "ERROR: invalid driver option replicas=\"two\" for kubernetes driver: expected a whole number of pods, at least 1\n",
        ),
        (
            &["create", "--driver", "docker-container", "ssh://me@host"],
            "ERROR: invalid endpoint \"ssh://me@host\": expected unix://PATH or tcp://HOST:PORT (the Docker daemon's address)\n",
        ),
        (
            &["create", "--driver", "docker-container", "--driver-opt", "memory=lots"],
            "ERROR: invalid driver option memory=\"lots\" for docker-container driver: expected a size in bytes with an optional unit (b, k, m, g)\n",
        ),
        (
            &["create", "--driver", "remote", "--driver-opt", "colour=blue", "tcp://127.0.0.1:1"],
            "ERROR: invalid driver option colour for remote driver\n",
        ),
        (
            &["create", "--name", "taken"],
            "ERROR: existing instance for \"taken\" but no append mode, specify the node name to make changes for existing instances\n",
        ),
        (&["rm", "ghost"], "failed to remove ghost: no builder \"ghost\" found\nERROR: failed to remove one or more builders\n"),
        (
            &["rm", "default"],
            "failed to remove default: the default builder cannot be removed (it is the in-process engine)\nERROR: failed to remove one or more builders\n",
        ),
        (&["use", "ghost"], "ERROR: no builder \"ghost\" found\n"),
        // An endpoint nothing listens on, bootstrapped at create: refused, nothing stored,
        // the selection unchanged.
        (
            &["create", "--name", "far", "--driver", "remote", "--use", "--bootstrap", "tcp://127.0.0.1:1"],
            "ERROR: failed to bootstrap far (far0): cannot connect to tcp://127.0.0.1:1: Connection refused (os error 111)\n",
        ),
        (
            &["create", "--name", "far", "--driver", "remote", "--bootstrap", "unix:///nonexistent/hoistd.sock"],
            "ERROR: failed to bootstrap far (far0): cannot connect to unix:///nonexistent/hoistd.sock: No such file or directory (os error 2)\n",
        ),
    ];
    for (args, stderr) in cases {
        assert_eq!(b.fails(args), *stderr, "hoist {args:?}");
        assert_eq!(b.files(), before, "hoist {args:?} changed the store");
    }
    let err = b.fails(&["create", "--name", "cfg", "--buildkitd-config", &config_arg]);
    assert!(
        err.starts_with(&format!(
            "ERROR: failed to load buildkit configuration file: invalid registry config {config_arg}: line 2:"
        )),
        "{err}"
    );
    assert_eq!(b.files(), before);
}

#[test]
fn remote_builder_status_follows_its_socket() {
    let b = Builders::new();
    let live = b.dir.path().join("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    let dead = b.dir.path().join("dead.sock");
    let endpoint = format!("unix://{}", live.display());
    b.ok(&["create", "--name", "far", "--driver", "remote", &endpoint]);
    b.ok(&[
        "create",
        "--name",
        "far",
        "--append",
        &format!("unix://{}", dead.display()),
    ]);

    let out = b.run(&["ls"]);
    let ls = text(&out.stdout);
    let far0 = ls.lines().find(|l| l.contains("far0")).unwrap();
    assert!(
        far0.starts_with(" \\_ far0 ") && far0.contains(&format!(" \\_ {endpoint} ")),
        "{ls}"
    );
    let far1 = ls.lines().find(|l| l.contains("far1")).unwrap();
    // A listener that never answers BuildKit's Info is not running (buildx's rule).
    assert!(far0.trim_end().ends_with("inactive"), "{ls}");
    assert!(far1.trim_end().ends_with("inactive"), "{ls}");
    assert_eq!(
        text(&out.stderr),
        format!(
            "\nFailed to get status for far (far0): {endpoint} did not answer within 5 s (is it a BuildKit daemon?)\n\
             Failed to get status for far (far1): cannot connect to unix://{}: No such file or directory (os error 2)\n",
            dead.display()
        )
    );
    let inspect = b.ok(&["inspect", "far"]);
    assert!(
        inspect.contains("Name:     far1\nEndpoint: unix://"),
        "{inspect}"
    );
    assert!(
        inspect.contains("Status:   inactive\nError:    cannot connect to unix://"),
        "{inspect}"
    );
    // --bootstrap fails on the node that is not there, naming it.
    let err = b.fails(&["inspect", "--bootstrap", "far"]);
    assert!(
        err.starts_with("ERROR: failed to bootstrap far (far1): cannot connect to unix://"),
        "{err}"
    );

    // A build on it (two nodes by now) without --platform goes to the first node as a
    // single-node build does (tests/cli/build_nodes.rs spreads platforms over nodes); the
    // listener there accepts but never speaks gRPC, so the build fails naming it instead of
    // waiting for ever.
    let ctx = b.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
    let err = b.fails(&["build", "--builder", "far", ctx.to_str().unwrap()]);
    assert!(
        err.contains(&format!("cannot connect to {endpoint}"))
            && err.contains("did not answer within"),
        "{err}"
    );
    drop(listener);
}

#[test]
fn docker_cli_runs_hoist_as_a_plugin() {
    let b = Builders::new();
    let metadata: serde_json::Value =
        serde_json::from_str(&b.ok(&["docker-cli-plugin-metadata"])).unwrap();
    assert_eq!(metadata["SchemaVersion"], "0.1.0");
    assert_eq!(b.ok(&["hoist", "ls"]), b.ok(&["ls"]));

    let docker_dir = b.dir.path().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        "{\"auths\": {\"r.example\": {}}}\n",
    )
    .unwrap();
    b.ok(&["install"]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["aliases"]["builder"], "hoist");
    assert!(config["auths"]["r.example"].is_object());
    let link = docker_dir.join("cli-plugins/docker-hoist");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new(env!("CARGO_BIN_EXE_hoist"))
    );

    if Path::new("/usr/bin/docker").exists() {
        let out = Command::new("/usr/bin/docker")
            .args(["hoist", "ls"])
            .env("DOCKER_CONFIG", &docker_dir)
            .env("HOIST_BUILDERS_DIR", b.store())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker hoist ls: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).starts_with("NAME/NODE"),
            "{}",
            text(&out.stdout)
        );
    } else {
        eprintln!("skipping docker hoist ls: /usr/bin/docker is not installed");
    }

    b.ok(&["uninstall"]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker_dir.join("config.json")).unwrap()).unwrap();
    assert!(config.get("aliases").is_none());
    assert!(config["auths"]["r.example"].is_object());
    assert!(link.symlink_metadata().is_err());
}
