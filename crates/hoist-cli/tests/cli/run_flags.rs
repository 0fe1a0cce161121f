//! `hoist build`'s RUN-side flags with real RUN steps (root only): `--ssh` (a real
//! `ssh-agent`, and key files), `--allow` and its refusals, `--network`, `--add-host`,
//! `--shm-size`, `--ulimit`. The busybox image has no SSH client, so a step runs the host's
//! `ssh-add` from a named context holding it, its libraries and its loader.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_testkit::git::SshAgent;

use crate::build_env::{files_containing, BuildEnv};

struct Case {
    env: BuildEnv,
    ctx: PathBuf,
}

impl Case {
    fn new(dockerfile: &str) -> Option<Case> {
        let env = BuildEnv::new()?;
        let ctx = env.fresh_dir("ctx");
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        Some(Case { env, ctx })
    }

    fn build(&self, args: &[&str], agent: Option<&Path>) -> Output {
        let ctx = self.ctx.to_string_lossy().into_owned();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(&ctx);
        let mut command = self.env.command(&all);
        match agent {
            Some(socket) => command.env("SSH_AUTH_SOCK", socket),
            None => command.env_remove("SSH_AUTH_SOCK"),
        };
        command.output().unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory holding the host's `ssh-add`, the libraries it links and its loader, so a
/// step can run `/tools/<loader> --library-path /tools /tools/ssh-add`; with the loader's
/// file name. `None` (after saying why) when that cannot be assembled.
fn ssh_add_tools(dir: &Path) -> Option<String> {
    let ldd = Command::new("ldd").arg("/usr/bin/ssh-add").output().ok()?;
    let text = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let mut loader = None;
    std::fs::copy("/usr/bin/ssh-add", dir.join("ssh-add")).ok()?;
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let name = Path::new(path).file_name()?.to_string_lossy().into_owned();
        std::fs::copy(path, dir.join(&name)).ok()?;
        if name.starts_with("ld-linux") {
            loader = Some(name);
        }
    }
    if loader.is_none() {
        hoist_testkit::skip("cannot find ssh-add's loader with ldd; the ssh RUN test is skipped");
    }
    loader
}

/// A new ed25519 key in `dir` (its private key path) and a running `ssh-agent` holding it.
fn agent_with_key(dir: &Path) -> (PathBuf, SshAgent) {
    let key = dir.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "hoist-cli-test",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let agent = SshAgent::start(dir).unwrap();
    agent.add(&key).unwrap();
    (key, agent)
}

#[test]
fn ssh_agent_and_key_files_reach_run_steps() {
    if !Path::new("/usr/bin/ssh-agent").is_file() {
        hoist_testkit::skip("openssh-client is not installed");
        return;
    }
    let Some(case) = Case::new("FROM busybox\n") else {
        return;
    };
    let tools = case.env.fresh_dir("tools");
    let Some(loader) = ssh_add_tools(&tools) else {
        return;
    };
    let keys = case.env.fresh_dir("keys");
    let (key, agent) = agent_with_key(&keys);
    let ssh_add = format!("/tools/{loader} --library-path /tools /tools/ssh-add");
    std::fs::write(
        case.ctx.join("Dockerfile"),
        format!(
            "FROM busybox\n\
             RUN --mount=type=ssh --mount=type=bind,from=tools,target=/tools \
             test -S \"$SSH_AUTH_SOCK\" && test \"$SSH_AUTH_SOCK\" = /run/buildkit/ssh_agent.0 && \
             test \"$(stat -c %a:%u $SSH_AUTH_SOCK)\" = 600:0 && {ssh_add} -l && \
             ! {ssh_add} -D\n\
             RUN --mount=type=ssh,id=deploy,target=/deploy.sock,uid=1000,mode=0600 \
             --mount=type=bind,from=tools,target=/tools \
             test \"$(stat -c %u /deploy.sock)\" = 1000 && \
             SSH_AUTH_SOCK=/deploy.sock {ssh_add} -L\n"
        ),
    )
    .unwrap();
    let tools_flag = format!("tools={}", tools.display());
    let deploy = format!("deploy={}", key.display());
    let out = case.build(
        &[
            "--build-context",
            &tools_flag,
            "--ssh",
            "default",
            "--ssh",
            &deploy,
        ],
        Some(agent.socket()),
    );
    drop(agent);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    let fingerprint = String::from_utf8(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&key)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(text.contains(fingerprint.trim()), "{text}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(text.contains(public.trim()), "{text}");
    // The private key is nowhere in the state dir.
    let private = std::fs::read_to_string(&key).unwrap();
    let body: Vec<&str> = private.lines().filter(|l| l.len() > 40).collect();
    for line in body {
        let hits = files_containing(&case.env.root(), line.as_bytes());
        assert!(hits.is_empty(), "key material in {hits:?}");
    }
}

#[test]
fn ssh_default_without_an_agent_fails_before_any_step() {
    let Some(case) = Case::new("FROM busybox\nRUN --mount=type=ssh echo ran-a-step\n") else {
        return;
    };
    let out = case.build(&["--ssh", "default"], None);
    let text = stderr(&out);
    assert!(!out.status.success());
    assert!(
        text.contains(
            "ERROR: ssh agent default: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
        ),
        "{text}"
    );
    assert!(!text.contains("ran-a-step"), "{text}");
}

#[test]
fn entitlements_refuse_host_network_and_insecure_runs_until_allowed() {
    let Some(case) = Case::new(
        "FROM busybox\nRUN echo ran-a-step\nRUN --network=host true\n\
         RUN --security=insecure mkdir -p /m && mount -t tmpfs none /m && umount /m && \
         grep CapEff /proc/self/status\n",
    ) else {
        return;
    };
    let out = case.build(&[], None);
    let text = stderr(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("ERROR: failed to solve: network.host is not allowed"),
        "{text}"
    );
    assert!(!text.contains("ran-a-step"), "{text}");
    let out = case.build(&["--allow", "network.host"], None);
    let text = stderr(&out);
    assert!(
        text.contains("ERROR: failed to solve: security.insecure is not allowed"),
        "{text}"
    );
    let out = case.build(
        &["--allow", "network.host", "--allow", "security.insecure"],
        None,
    );
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    assert!(text.contains(&format!("CapEff:\t{all}")), "{text}");
}

#[test]
fn network_add_host_shm_size_and_ulimit_reach_every_step() {
    let Some(case) = Case::new(
        "FROM busybox\n\
         RUN test \"$(ls /sys/class/net)\" = lo && \
         awk '$1 == \"10.1.2.3\" && $2 == \"db\"' /etc/hosts | grep -q . && \
         awk '$1 == \"fd00::1\" && $2 == \"v6\"' /etc/hosts | grep -q . && \
         test \"$(df -k /dev/shm | tail -n 1 | awk '{print $2}')\" = 131072 && \
         test \"$(ulimit -n)\" = 1024 && test \"$(ulimit -Hn)\" = 2048 && echo all-set\n",
    ) else {
        return;
    };
    let out = case.build(
        &[
            "--network",
            "none",
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "v6=[fd00::1]",
            "--shm-size",
            "128m",
            "--ulimit",
            "nofile=1024:2048",
        ],
        None,
    );
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("all-set"), "{text}");
    for (args, message) in [
        (
            ["--network", "bridge"],
            "network mode \"bridge\" not supported by buildkit",
        ),
        (["--ulimit", "files=1"], "invalid ulimit type: files"),
        (["--add-host", "nohost"], "invalid host nohost"),
        (["--allow", "device"], "unknown entitlement device"),
    ] {
        let out = case.build(&args, None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}
