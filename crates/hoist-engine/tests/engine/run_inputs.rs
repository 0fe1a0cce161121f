//! What a build gives its RUN steps besides the Dockerfile, through the engine with the
//! scripted executor (no root): `--ssh` agents served to `RUN --mount=type=ssh` — a real
//! `ssh-agent` forwarded read-only, key files answered in process, both used by the host's
//! `ssh-add` and `ssh-keygen -Y sign` through the served socket — the `--allow`
//! entitlements refused in BuildKit's words before any step runs, and the build-wide RUN
//! settings reaching the sandbox's spec.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use hoist_engine::{Entitlements, RunOptions, SshAgents};
use hoist_sandbox::{Confinement, ExitStatus, Network, RunSpec};
use hoist_testkit::git::SshAgent;

use crate::case::Case;

/// `None` (after saying why) when OpenSSH's client tools are missing.
fn openssh() -> Option<()> {
    let found = ["ssh-agent", "ssh-add", "ssh-keygen"]
        .iter()
        .all(|tool| Path::new("/usr/bin").join(tool).is_file());
    if !found {
        hoist_testkit::skip("OpenSSH's client tools are absent: apt-get install openssh-client");
    }
    found.then_some(())
}

/// A new unencrypted key of `kind` (`ed25519`, `rsa`) in `dir`: its private key path.
fn keygen(dir: &Path, kind: &str) -> PathBuf {
    let key = dir.join(format!("id_{kind}"));
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            kind,
            "-N",
            "",
            "-C",
            &format!("hoist-test-{kind}"),
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    key
}

/// `program args…` with `SSH_AUTH_SOCK=socket`: (success, stdout + stderr).
fn with_agent(socket: &Path, program: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("SSH_AUTH_SOCK", socket)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The host path of the socket mounted at `target` in `spec`.
fn mounted_socket(spec: &RunSpec, target: &str) -> PathBuf {
    let mount = spec
        .mounts
        .iter()
        .find(|m| m.target == Path::new(target))
        .unwrap_or_else(|| panic!("no mount at {target}: {:?}", spec.mounts));
    let meta = std::fs::metadata(&mount.source).unwrap();
    assert!(meta.file_type().is_socket(), "{}", mount.source.display());
    mount.source.clone()
}

/// A running `ssh-agent` holding `key`.
fn agent_holding(dir: &Path, key: &Path) -> SshAgent {
    let agent = SshAgent::start(dir).unwrap();
    agent.add(key).unwrap();
    agent
}

#[test]
fn a_forwarded_agent_lists_its_keys_and_refuses_changes() {
    let Some(()) = openssh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "ed25519");
    let agent = agent_holding(dir.path(), &key);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let case = Case::new(
        "FROM scratch\nRUN --mount=type=ssh --mount=type=ssh,id=other,target=/other,mode=0640,uid=1000,gid=50 use-agent\n",
        &[],
    )
    .script({
        let seen = Arc::clone(&seen);
        let tmp = dir.path().to_path_buf();
        move |spec, _| {
            let socket = mounted_socket(spec, "/run/buildkit/ssh_agent.0");
            let meta = std::fs::metadata(&socket)?;
            let other = std::fs::metadata(mounted_socket(spec, "/other"))?;
            let env = spec
                .env
                .iter()
                .find(|(k, _)| k == "SSH_AUTH_SOCK")
                .map(|(_, v)| v.clone());
            let listed = with_agent(&socket, "ssh-add", &["-l"], &tmp);
            let removed = with_agent(&socket, "ssh-add", &["-D"], &tmp);
            seen.lock().unwrap().push(format!(
                "{:o} {} | {:o} {}:{} | {env:?} | {listed:?} | {}",
                meta.permissions().mode() & 0o7777,
                meta.uid(),
                other.permissions().mode() & 0o7777,
                other.uid(),
                other.gid(),
                removed.0
            ));
            Ok(ExitStatus::Code(0))
        }
    });
    case.build_with(|request| {
        let mut agents = SshAgents::new();
        agents.insert("default", vec![agent.socket().to_owned()]);
        agents.insert("other", vec![agent.socket().to_owned()]);
        request.ssh = agents;
    })
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let fingerprint = String::from_utf8(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&key)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let expected = format!(
        "600 0 | 640 1000:50 | Some(\"/run/buildkit/ssh_agent.0\") | (true, {fingerprint:?}) | false"
    );
    assert_eq!(seen[0], expected);
    // The user's agent still holds the key: the proxy refused `ssh-add -D`.
    let (listed, text) = with_agent(agent.socket(), "ssh-add", &["-l"], dir.path());
    assert!(listed, "{text}");
}

#[test]
fn key_files_are_served_by_an_agent_in_process_that_signs() {
    let Some(()) = openssh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ed25519 = keygen(dir.path(), "ed25519");
    let rsa = keygen(dir.path(), "rsa");
    std::fs::write(dir.path().join("data"), "signed by hoist\n").unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let case = Case::new(
        "FROM scratch\nRUN --mount=type=ssh,id=deploy,required=true sign\n",
        &[],
    )
    .script({
        let results = Arc::clone(&results);
        let (tmp, ed25519, rsa) = (dir.path().to_path_buf(), ed25519.clone(), rsa.clone());
        move |spec, _| {
            let socket = mounted_socket(spec, "/run/buildkit/ssh_agent.0");
            let mut results = results.lock().unwrap();
            results.push(with_agent(&socket, "ssh-add", &["-L"], &tmp));
            for key in [&ed25519, &rsa] {
                // With a public key, `ssh-keygen -Y sign` asks the agent to sign.
                let public = format!("{}.pub", key.display());
                let signed = with_agent(
                    &socket,
                    "ssh-keygen",
                    &["-Y", "sign", "-n", "file", "-f", &public, "data"],
                    &tmp,
                );
                results.push(signed);
                let _ = std::fs::rename(tmp.join("data.sig"), format!("{}.sig", key.display()));
            }
            Ok(ExitStatus::Code(0))
        }
    });
    let built = case.build_with(|request| {
        let mut agents = SshAgents::new();
        agents.insert("deploy", vec![ed25519.clone(), rsa.clone()]);
        request.ssh = agents;
    });
    built.unwrap();
    let results = results.lock().unwrap().clone();
    let public = |key: &Path| std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    assert_eq!(
        results[0],
        (true, format!("{}{}", public(&ed25519), public(&rsa)))
    );
    for (key, signed) in [&ed25519, &rsa].into_iter().zip(&results[1..]) {
        assert!(signed.0, "{}: {}", key.display(), signed.1);
        let public = format!("{}.pub", key.display());
        let signature = format!("{}.sig", key.display());
        let check = Command::new("ssh-keygen")
            .args([
                "-Y",
                "check-novalidate",
                "-n",
                "file",
                "-f",
                &public,
                "-s",
                &signature,
            ])
            .stdin(std::fs::File::open(dir.path().join("data")).unwrap())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}: {}",
            key.display(),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    // No key material in the state dir: neither the file's text nor the raw private key.
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for key in [&ed25519, &rsa] {
        let text = std::fs::read_to_string(key).unwrap();
        secrets.extend(
            text.lines()
                .filter(|line| line.len() > 40)
                .map(|line| line.as_bytes().to_vec()),
        );
    }
    let parsed = ssh_key::PrivateKey::read_openssh_file(&ed25519).unwrap();
    let seed = parsed.key_data().ed25519().unwrap().private.to_bytes();
    secrets.push(seed.to_vec());
    for entry in walkdir::WalkDir::new(case.state().root()) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                "key material in {}",
                entry.path().display()
            );
        }
    }
}

#[test]
fn ssh_agent_problems_fail_the_build_before_any_step_naming_the_id() {
    let case = Case::new(
        "FROM scratch\nRUN --mount=type=ssh,id=deploy,required=true true\n",
        &[],
    )
    .script(|_, _| Ok(ExitStatus::Code(0)));
    let err = case.build_with(|_| {}).err().unwrap();
    assert_eq!(
        err.to_string(),
        "no SSH key \"deploy\" forwarded from the client"
    );
    let err = case
        .build_with(|request| {
            let mut agents = SshAgents::new();
            agents.insert("deploy", vec!["/nonexistent/id_ed25519".into()]);
            request.ssh = agents;
        })
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "ssh agent deploy: stat /nonexistent/id_ed25519: No such file or directory (os error 2)"
    );
    let not_a_key = case.state().root().join("not-a-key");
    std::fs::create_dir_all(case.state().root()).unwrap();
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let err = case
        .build_with(|request| {
            let mut agents = SshAgents::new();
            agents.insert("deploy", vec![not_a_key.clone()]);
            request.ssh = agents;
        })
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with(&format!(
            "ssh agent deploy: failed to parse {}",
            not_a_key.display()
        )),
        "{err}"
    );
    // An optional mount of an agent the build was not given is left out.
    let case =
        Case::new("FROM scratch\nRUN --mount=type=ssh,id=nope check\n", &[]).script(|spec, _| {
            assert!(spec.mounts.is_empty(), "{:?}", spec.mounts);
            Ok(ExitStatus::Code(0))
        });
    case.build();
    assert_eq!(case.runs(), 1);
}

#[test]
fn entitlements_are_refused_before_any_step_in_buildkits_words() {
    let specs = Arc::new(Mutex::new(Vec::<RunSpec>::new()));
    let recorder = {
        let specs = Arc::clone(&specs);
        move |spec: &RunSpec, _: &mut dyn hoist_sandbox::OutputSink| {
            specs.lock().unwrap().push(spec.clone());
            Ok(ExitStatus::Code(0))
        }
    };
    let cases = [
        ("RUN --network=host true", "network.host"),
        ("RUN --security=insecure true", "security.insecure"),
    ];
    for (run, entitlement) in cases {
        let case =
            Case::new(&format!("FROM scratch\nRUN first\n{run}\n"), &[]).script(recorder.clone());
        let err = case.build_with(|_| {}).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("failed to solve: {entitlement} is not allowed")
        );
        assert_eq!(case.runs(), 0, "refused before any step ran");
        case.build_with(|request| {
            request.run.entitlements.allow(entitlement).unwrap();
        })
        .unwrap();
        assert_eq!(case.runs(), 2);
    }
    let specs = specs.lock().unwrap();
    let last = |args: &str| {
        specs
            .iter()
            .rev()
            .find(|s| s.args.last().is_some_and(|a| a == args))
            .unwrap()
            .clone()
    };
    let host = specs
        .iter()
        .find(|s| s.network == Network::Host && s.confinement == Confinement::Default);
    assert!(host.is_some());
    assert_eq!(last("true").confinement, Confinement::Privileged);
}

#[test]
fn build_wide_run_settings_reach_every_step() {
    let specs = Arc::new(Mutex::new(Vec::<RunSpec>::new()));
    let case = Case::new("FROM scratch\nRUN one\nRUN --network=none two\n", &[]).script({
        let specs = Arc::clone(&specs);
        move |spec, _| {
            specs.lock().unwrap().push(spec.clone());
            Ok(ExitStatus::Code(0))
        }
    });
    let options = RunOptions {
        extra_hosts: vec![hoist_engine::HostEntry {
            host: "db".into(),
            ip: "10.0.0.5".parse().unwrap(),
        }],
        shm_size: Some(1 << 27),
        ulimits: vec!["nofile=1024:2048".parse().unwrap()],
        cgroup_parent: Some("builds".into()),
        entitlements: Entitlements::default(),
    };
    case.build_with(|request| request.run = options.clone())
        .unwrap();
    let specs = specs.lock().unwrap();
    assert_eq!(specs.len(), 2);
    for spec in specs.iter() {
        assert_eq!(spec.extra_hosts, options.extra_hosts);
        assert_eq!(spec.shm_size, Some(1 << 27));
        assert_eq!(spec.ulimits, options.ulimits);
        assert_eq!(spec.cgroup_parent.as_deref(), Some("builds"));
    }
    // The default network stays the host's; `--network=none` gets its own namespace.
    let networks: Vec<Network> = specs.iter().map(|s| s.network).collect();
    assert_eq!(networks, [Network::Host, Network::None]);
}
