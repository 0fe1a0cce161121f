//! `hoist build` with images that need no registry — a layout written by
//! `-o type=oci,tar=false` used as `--build-context NAME=oci-layout://DIR:TAG`, an image
//! kept in hoist's store by `-t` used by the next build's `FROM` — and `--annotation`
//! written into an OCI layout. `FROM scratch` builds only, so nothing here needs root or
//! a registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_oci::{Index, Manifest, OciLayout};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
        Env { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self, rel: &str, text: &str) {
        std::fs::write(self.path("ctx").join(rel), text).unwrap();
    }

    /// `hoist --root STATE build --progress=plain ARGS CTX`.
    fn build(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(self.path("state"))
            .args(["build", "--progress=plain"])
            .args(args)
            .arg(self.path("ctx"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env_remove("HOIST_ROOT")
            .env_remove("HOIST_CONFIG")
            .output()
            .unwrap()
    }

    fn build_ok(&self, args: &[&str]) {
        let out = self.build(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn an_oci_layout_from_one_build_is_a_named_context_of_the_next() {
    let env = Env::new();
    env.file("Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n");
    env.file("a.txt", "from the layout\n");
    let layout = env.path("layout");
    env.build_ok(&[
        "-o",
        &format!("type=oci,tar=false,dest={},name=app:v1", layout.display()),
    ]);

    env.file("Dockerfile", "FROM app\nCOPY b.txt /b.txt\n");
    env.file("b.txt", "from the context\n");
    let out = env.path("out");
    let context = format!("app=oci-layout://{}:v1", layout.display());
    env.build_ok(&[
        "--build-context",
        &context,
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert_eq!(read(&out.join("a.txt")), "from the layout\n");
    assert_eq!(read(&out.join("b.txt")), "from the context\n");

    // A tag the layout does not have: the error names the layout and what it has.
    let missing = format!("app=oci-layout://{}:v2", layout.display());
    let failed = env.build(&["--build-context", &missing]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains(&format!(
            "oci-layout://{}:v2: no image tagged \"v2\" in its index.json (tags: v1)",
            layout.display()
        )),
        "{stderr}"
    );
}

#[test]
fn an_image_kept_by_tag_is_the_next_builds_base() {
    let env = Env::new();
    env.file("Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n");
    env.file("a.txt", "kept in the store\n");
    // No output but a tag: the image is named in hoist's store only.
    env.build_ok(&["-t", "chain-base"]);

    env.file(
        "Dockerfile",
        "FROM chain-base\nCOPY --from=chain-base /a.txt /copy.txt\n",
    );
    let out = env.path("out");
    env.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(read(&out.join("a.txt")), "kept in the store\n");
    assert_eq!(read(&out.join("copy.txt")), "kept in the store\n");
}

#[test]
fn annotation_flags_reach_the_index_and_manifests_of_a_layout() {
    let env = Env::new();
    env.file("Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n");
    env.file("a.txt", "annotated\n");
    let layout = env.path("layout");
    env.build_ok(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "--annotation",
        "index:org.example.index=i",
        "--annotation",
        "org.example.all=m",
        "--annotation",
        "manifest[linux/arm64]:org.example.arm=a",
        "--annotation",
        "index-descriptor:org.example.entry=e",
        "-o",
        &format!("type=oci,tar=false,dest={},name=app:1", layout.display()),
    ]);
    let mut layout = OciLayout::open_dir(&layout).unwrap();
    let entry = layout.find("1").unwrap().clone();
    assert_eq!(entry.annotations["org.example.entry"], "e");
    let index: Index = serde_json::from_slice(&layout.read_blob(&entry.digest).unwrap()).unwrap();
    assert_eq!(index.annotations["org.example.index"], "i");
    for child in &index.manifests {
        let platform = child.platform.as_ref().unwrap().format();
        let manifest: Manifest =
            serde_json::from_slice(&layout.read_blob(&child.digest).unwrap()).unwrap();
        assert_eq!(manifest.annotations["org.example.all"], "m", "{platform}");
        assert_eq!(
            manifest
                .annotations
                .get("org.example.arm")
                .map(String::as_str),
            (platform == "linux/arm64").then_some("a"),
            "{platform}"
        );
    }

    let bad = env.build(&["--annotation", "novalue"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("invalid annotation \"novalue\": expected key=value"),
        "{stderr}"
    );
}
