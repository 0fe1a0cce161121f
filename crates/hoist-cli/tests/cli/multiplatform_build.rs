//! Multi-platform builds end to end: `hoist build --platform a,b,c --push` with RUN steps
//! under QEMU (binfmt_misc), the cross-compile pattern (`FROM --platform=$BUILDPLATFORM`)
//! that runs its builder natively, the early error for a platform nothing executes, and
//! `--load` refusing manifest lists.
//!
//! Base images are `hoist_testkit`'s busybox for amd64/arm64/arm/v7 pushed to a
//! [`TestRegistry`]; results are read back with `skopeo` and `umoci`. Needs root, the
//! Debian busybox .debs, `docker-registry`, `skopeo`, `umoci`, and (for emulated RUN steps)
//! the qemu-aarch64 and qemu-arm binfmt_misc handlers; each test says why it skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_engine::binfmt::{ExecSupport, Execution};
use hoist_oci::Platform;
use hoist_testkit::images::{BaseImages, PushedImages};
use hoist_testkit::registry::TestRegistry;

const THREE: &str = "linux/amd64,linux/arm64,linux/arm/v7";

struct Setup {
    registry: TestRegistry,
    pushed: PushedImages,
    dir: tempfile::TempDir,
}

impl Setup {
    /// `None` (with the reason printed) when the test cannot run here.
    fn new() -> Option<Setup> {
        if !hoist_testkit::is_root() {
            hoist_testkit::skip("hoist build runs RUN steps in namespaces: needs root");
            return None;
        }
        let images = BaseImages::get()?;
        let registry = TestRegistry::start()?;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let pushed = runtime.block_on(images.push(&registry)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        Some(Setup {
            registry,
            pushed,
            dir,
        })
    }

    /// Writes the Dockerfile; `BASE` becomes the busybox index.
    fn dockerfile(&self, text: &str) {
        let text = text.replace("BASE", &self.pushed.reference("latest"));
        std::fs::write(self.dir.path().join("ctx/Dockerfile"), text).unwrap();
    }

    /// `hoist build --progress=plain ARGS CONTEXT`.
    fn build(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .arg("build")
            .arg("--progress=plain")
            .args(args)
            .arg(self.dir.path().join("ctx"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("HOIST_ROOT")
            .env_remove("HOIST_CONFIG")
            .output()
            .unwrap()
    }

    fn build_ok(&self, args: &[&str]) -> String {
        let out = self.build(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hoist build failed:\n{stderr}");
        stderr
    }

    /// The image `reference` of `platform`, copied with skopeo and unpacked with umoci;
    /// returns the rootfs.
    fn unpack(&self, reference: &str, platform: &Platform) -> PathBuf {
        let name = platform.format().replace('/', "-");
        let layout = self.dir.path().join(format!("layout-{name}"));
        let mut copy = Command::new("skopeo");
        copy.args(["copy", "--src-tls-verify=false"])
            .args(["--override-os", &platform.os])
            .args(["--override-arch", &platform.architecture]);
        if !platform.variant.is_empty() {
            copy.args(["--override-variant", &platform.variant]);
        }
        let out = copy
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:v", layout.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bundle = self.dir.path().join(format!("bundle-{name}"));
        let out = Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:v", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "umoci unpack {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bundle.join("rootfs")
    }

    /// `skopeo inspect --raw` of `reference`, parsed.
    fn raw_manifest(&self, reference: &str) -> serde_json::Value {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn tools_present() -> bool {
    for tool in ["skopeo", "umoci"] {
        if Command::new(tool).arg("--version").output().is_err() {
            hoist_testkit::skip(&format!("{tool} is not installed"));
            return false;
        }
    }
    true
}

/// Whether linux/arm64 and linux/arm/v7 binaries run here (natively or under QEMU).
fn emulators_present() -> bool {
    let Ok(support) = ExecSupport::detect() else {
        hoist_testkit::skip("cannot read /proc/sys/fs/binfmt_misc");
        return false;
    };
    for platform in ["linux/arm64", "linux/arm/v7"] {
        if support.check(&Platform::parse(platform).unwrap()) == Execution::Unavailable {
            hoist_testkit::skip(&format!(
                "no binfmt_misc handler runs {platform} binaries \
                 (hoist binfmt --install arm64,arm, from Debian's qemu-user-static)"
            ));
            return false;
        }
    }
    true
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn platforms() -> Vec<Platform> {
    Platform::parse_list(THREE).unwrap()
}

#[test]
fn push_three_platforms_runs_each_under_its_own_machine() {
    if !tools_present() || !emulators_present() {
        return;
    }
    let Some(setup) = Setup::new() else { return };
    setup.dockerfile("FROM BASE\nRUN uname -m > /machine\n");
    let name = format!("{}/multi:1", setup.registry.host());
    let progress = setup.build_ok(&["--platform", THREE, "--push", "-t", &name]);
    assert!(
        progress.contains("[emulated] qemu-aarch64"),
        "no emulator note for arm64:\n{progress}"
    );
    assert!(
        progress.contains("[emulated] qemu-arm"),
        "no emulator note for arm/v7:\n{progress}"
    );

    let index = setup.raw_manifest(&name);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3, "{index}");
    let mut listed: Vec<String> = manifests
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    listed.sort();
    assert_eq!(listed, ["linux/amd64", "linux/arm/v7", "linux/arm64"]);

    for (platform, machine) in platforms().iter().zip(["x86_64", "aarch64", "armv7l"]) {
        let rootfs = setup.unpack(&name, platform);
        assert_eq!(
            read(rootfs.join("machine")),
            format!("{machine}\n"),
            "{platform:?}"
        );
    }
}

#[test]
fn cross_compile_builder_runs_natively_once() {
    if !tools_present() {
        return;
    }
    let Some(setup) = Setup::new() else { return };
    setup.dockerfile(
        "FROM --platform=$BUILDPLATFORM BASE AS builder\n\
         RUN uname -m > /machine\n\
         ARG TARGETOS TARGETARCH\n\
         RUN mkdir /out && echo \"$TARGETOS/$TARGETARCH built on $(cat /machine)\" > /out/app.txt\n\
         FROM scratch\n\
         COPY --from=builder /out/app.txt /app.txt\n",
    );
    let name = format!("{}/cross:1", setup.registry.host());
    let progress = setup.build_ok(&["--platform", THREE, "--push", "-t", &name]);
    assert!(
        !progress.contains("[emulated]"),
        "the builder ran under emulation:\n{progress}"
    );
    // Vertex numbers (`#3`) of the steps whose progress lines contain `needle`.
    let steps = |needle: &str| {
        progress
            .lines()
            .filter(|l| l.starts_with('#') && l.contains(needle))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        steps("RUN uname -m > /machine").len(),
        1,
        "the builder's platform-independent step ran more than once:\n{progress}"
    );
    assert_eq!(
        steps("RUN mkdir /out").len(),
        3,
        "the TARGETARCH step should run once per platform:\n{progress}"
    );

    let index = setup.raw_manifest(&name);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3, "{index}");
    for (platform, arch) in platforms().iter().zip(["amd64", "arm64", "arm"]) {
        let rootfs = setup.unpack(&name, platform);
        assert_eq!(
            read(rootfs.join("app.txt")),
            format!("linux/{arch} built on x86_64\n"),
            "{platform:?}"
        );
    }
}

#[test]
fn platform_without_emulator_fails_before_running_anything() {
    let Some(setup) = Setup::new() else { return };
    let support = ExecSupport::detect().unwrap();
    let mips = Platform::parse("linux/mips64le").unwrap();
    if support.check(&mips) != Execution::Unavailable {
        hoist_testkit::skip("a binfmt_misc handler runs linux/mips64le binaries here");
        return;
    }
    // The single-platform amd64 manifest (not the index), so the base resolves for any
    // platform and the failure is the RUN's.
    let base = setup.pushed.reference("amd64");
    std::fs::write(
        setup.dir.path().join("ctx/Dockerfile"),
        format!("FROM {base}\nRUN echo ran > /ran\n"),
    )
    .unwrap();
    let out = setup.build(&["--platform", "linux/mips64le"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "linux/mips64le",
        "hoist binfmt --install mips64le",
        "FROM --platform=$BUILDPLATFORM",
        "native node",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    // Only the Dockerfile and the base image's metadata were loaded: no step started.
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with('#') && (l.contains("] FROM ") || l.contains("] RUN "))),
        "a step ran:\n{stderr}"
    );
}

#[test]
fn load_of_two_platforms_fails_as_buildx() {
    let Some(setup) = Setup::new() else { return };
    setup.dockerfile("FROM BASE\n");
    let out = setup.build(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "--load",
        "-t",
        "two:1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("docker exporter does not currently support exporting manifest lists"),
        "{stderr}"
    );
    let out = setup.build(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        "type=docker,dest=-",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("docker exporter does not support exporting manifest lists, use the oci exporter instead"),
        "{stderr}"
    );
}
