//! `OciRuntimeExecutor::remove_orphans`: a hoist container whose owner lock is free (its
//! hoist process was killed) is stopped and deleted with its bundle; one a live run owns
//! stays. Needs root, busybox and runc.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoist_sandbox::{CancelToken, CollectedOutput, Executor, OciRuntimeExecutor, RunSpec};

use crate::fixture::{busybox, busybox_rootfs};

/// The container ids under `state`.
fn ids(runc: &Path, state: &Path) -> Vec<String> {
    let out = Command::new(runc)
        .arg("--root")
        .arg(state)
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn remove_orphans_stops_the_unowned_container_and_keeps_the_running_one() {
    let Some(busybox) = busybox() else { return };
    let Some(executor) = OciRuntimeExecutor::find("runc") else {
        hoist_testkit::skip("runc is not installed: its orphan sweep is not tested");
        return;
    };
    let runc = executor.runtime().to_path_buf();
    let rootfs = busybox_rootfs(&busybox);
    let dir = tempfile::Builder::new()
        .prefix("hoist-sandbox-orphans-")
        .tempdir()
        .unwrap();
    let state = dir.path().join("state");
    let executor = executor.with_state_root(&state);

    // A run owned by this live process.
    let cancel = CancelToken::new();
    let live = {
        let (executor, cancel) = (executor.clone(), cancel.clone());
        let spec = RunSpec::new(rootfs.path(), ["sleep", "1000"]);
        std::thread::spawn(move || {
            executor.run_cancellable(&spec, &mut CollectedOutput::default(), &cancel)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids(&runc, &state).is_empty() {
        assert!(Instant::now() < deadline, "the live run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let live_id = ids(&runc, &state).remove(0);

    // A killed build's: its bundle's owner lock is there, and nobody holds it.
    let bundle = dir.path().join("hoist-bundle-orphan");
    std::fs::create_dir(&bundle).unwrap();
    let spec = Command::new(&runc)
        .arg("spec")
        .current_dir(&bundle)
        .status()
        .unwrap();
    assert!(spec.success());
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    config["root"] = serde_json::json!({"path": rootfs.path(), "readonly": true});
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::write(bundle.join("owner.lock"), "").unwrap();
    let orphan_id = format!("hoist-orphan-{}", std::process::id());
    let started = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["run", "-d", "--bundle"])
        .arg(&bundle)
        .arg(&orphan_id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(started.success(), "runc run -d of the orphan failed");

    // Scoped to another state dir, the orphan is not this sweep's to remove.
    let elsewhere = tempfile::tempdir().unwrap();
    let report = executor.remove_orphans(Some(elsewhere.path()));
    assert!(report.removed.is_empty(), "{report:?}");

    let report = executor.remove_orphans(None);
    assert_eq!(report.removed, vec![orphan_id.clone()], "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(ids(&runc, &state), vec![live_id]);
    assert!(!bundle.exists(), "the orphan's bundle is left");

    cancel.cancel();
    assert!(matches!(
        live.join().unwrap(),
        Err(hoist_sandbox::Error::Cancelled)
    ));
    assert_eq!(ids(&runc, &state), Vec::<String>::new());
}
