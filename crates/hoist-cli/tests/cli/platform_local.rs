//! `--platform local` means the machine doing the build, as in buildx, and a platform named
//! twice builds once.

use std::process::Command;

#[test]
fn platform_local_is_the_host_and_duplicates_build_once() {
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("hoist build uses snapshots and namespaces: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY hello /hello\n").unwrap();
    std::fs::write(ctx.join("hello"), "hi\n").unwrap();
    let host = hoist_oci::Platform::host();
    let out_dir = dir.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--root")
        .arg(dir.path().join("state"))
        .args(["build", "--progress", "quiet", "--platform"])
        .arg(format!("local,{}", host.format()))
        .arg("-o")
        .arg(format!("type=oci,tar=false,dest={}", out_dir.display()))
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.trim_start_matches("sha256:");
        serde_json::from_slice(&std::fs::read(out_dir.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one platform, one image: {index}");
    let manifest = read(manifests[0]["digest"].as_str().unwrap());
    let config = read(manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["os"], host.os.as_str());
    assert_eq!(config["architecture"], host.architecture.as_str());
}
