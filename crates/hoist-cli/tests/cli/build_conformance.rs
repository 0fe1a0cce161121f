//! BuildKit's Dockerfile integration cases (`buildkit-dockerfile-integration`) run through
//! the built `hoist build`: every run of every case is built from a materialised context with
//! its frontend attributes as buildx flags, exported as the run wants (`type=local` for file
//! checks, `type=oci` for the image config and the OCI index), and every expectation is
//! checked.
//!
//! Cases known to fail are listed with their reason in `build_conformance_known_failures.txt`
//! next to this file. The test fails when a case not on the list fails, and when a listed
//! case passes (so the list, and `docs/dev/conformance.md`, stay true).
//!
//! Needs root, `docker-registry` and the busybox .debs (see `hoist_testkit::images`); it says
//! why and returns early when one is missing.

#![allow(clippy::print_stdout)] // conformance runners print their counts

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::build_env::{tar_entries, BuildEnv};
use hoist_testkit::integration::{Export, IntegrationCase, Run};
use serde_json::Value;

/// A build taking longer than this is killed and counted as failed.
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

const KNOWN_FAILURES: &str = include_str!("build_conformance_known_failures.txt");

#[test]
fn build_conformance() {
    let Some(cases) = hoist_testkit::integration::cases() else {
        return;
    };
    let Some(env) = BuildEnv::new() else {
        return;
    };
    let known = hoist_testkit::integration::known_failures(KNOWN_FAILURES);
    for id in known.keys() {
        assert!(
            cases.iter().any(|case| &case.id == id),
            "build_conformance_known_failures.txt names {id}, which is not a case"
        );
    }

    let total_runs: usize = cases.iter().map(|case| case.runs.len()).sum();
    let mut runs_passed = 0;
    let mut cases_passed = 0;
    let mut failing: Vec<(String, Vec<String>)> = Vec::new();
    for case in &cases {
        let ctx = case.materialize().unwrap();
        let mut reasons = Vec::new();
        for (index, run) in case.runs.iter().enumerate() {
            let started = Instant::now();
            let result = run_one(&env, case, &ctx, run);
            let took = started.elapsed().as_secs_f32();
            match result {
                Ok(()) => {
                    runs_passed += 1;
                    println!("ok   {} run {index} ({took:.1}s)", case.id);
                }
                Err(reason) => {
                    println!("FAIL {} run {index} ({took:.1}s): {reason}", case.id);
                    reasons.push(format!("run {index}: {reason}"));
                }
            }
        }
        if reasons.is_empty() {
            cases_passed += 1;
        } else {
            failing.push((case.id.clone(), reasons));
        }
    }

    println!(
        "build conformance: {runs_passed}/{total_runs} runs passed ({cases_passed}/{} cases)",
        cases.len()
    );
    for (id, reasons) in &failing {
        let listed = if known.contains_key(id) {
            "known"
        } else {
            "NEW"
        };
        println!("  [{listed}] {id}");
        for reason in reasons {
            println!("      {reason}");
        }
    }

    let (unexpected, fixed) = hoist_testkit::integration::unexpected_and_fixed(&failing, &known);
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "build conformance: cases failing that are not in build_conformance_known_failures.txt: \
         {unexpected:?}; cases listed there that now pass (remove them, and from \
         docs/dev/conformance.md): {fixed:?}"
    );
}

/// Builds one run and checks what it expects; the reason when something does not hold.
fn run_one(
    env: &BuildEnv,
    case: &IntegrationCase,
    ctx: &hoist_testkit::integration::MaterializedCase,
    run: &Run,
) -> Result<(), String> {
    let dockerfile = ctx.dockerfile(case, run);
    let out_dir = env.fresh_dir("out");
    let mut args: Vec<String> = vec![
        "build".into(),
        "--progress=plain".into(),
        "-f".into(),
        dockerfile.display().to_string(),
    ];
    let attrs = &run.frontend_attrs;
    for (name, value) in &attrs.build_args {
        args.push("--build-arg".into());
        args.push(format!("{name}={value}"));
    }
    for (name, value) in &attrs.labels {
        args.push("--label".into());
        args.push(format!("{name}={value}"));
    }
    if let Some(target) = &attrs.target {
        args.push("--target".into());
        args.push(target.clone());
    }
    if let Some(platform) = attrs.raw.get("platform") {
        args.push("--platform".into());
        args.push(platform.clone());
    }
    let local = out_dir.join("local");
    let oci = out_dir.join("image.tar");
    match run.export {
        Some(Export::Local) => {
            args.push("-o".into());
            args.push(format!("type=local,dest={}", local.display()));
        }
        Some(Export::Image | Export::Oci) => {
            args.push("-o".into());
            args.push(format!("type=oci,dest={}", oci.display()));
        }
        None => {}
    }
    args.push(ctx.context().display().to_string());

    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_with_timeout(env, &arg_refs)?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let result = if run.expect_success {
        if !output.status.success() {
            return Err(format!(
                "build failed ({}): {}",
                output.status,
                last_lines(&stderr)
            ));
        }
        match run.export {
            Some(Export::Local) => run.check_local(&local),
            Some(Export::Image) => check_image(&oci, run),
            Some(Export::Oci) => check_oci(&oci, run),
            None => Ok(()),
        }
    } else {
        check_error(&output, &stderr, run)
    };
    let _ = std::fs::remove_dir_all(&out_dir);
    result
}

/// Runs `hoist ARGS`, killing it after [`BUILD_TIMEOUT`].
fn run_with_timeout(env: &BuildEnv, args: &[&str]) -> Result<Output, String> {
    let mut child = env
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot start hoist: {err}"))?;
    // Read the pipes on threads so a chatty build cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BUILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("build took over {}s", BUILD_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    })
}

/// The last few non-empty lines of a build's stderr, joined, for a failure reason.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

fn check_error(output: &Output, stderr: &str, run: &Run) -> Result<(), String> {
    if output.status.success() {
        return Err("build succeeded, an error was expected".into());
    }
    for want in &run.expect_error_contains {
        if !stderr.contains(want.as_str()) {
            return Err(format!(
                "error lacks {want:?}; it was: {}",
                last_lines(stderr)
            ));
        }
    }
    Ok(())
}

/// An OCI layout tarball read into memory.
struct OciTar {
    files: BTreeMap<String, Vec<u8>>,
}

impl OciTar {
    fn open(path: &Path) -> Result<OciTar, String> {
        if !path.is_file() {
            return Err(format!("no OCI tarball at {}", path.display()));
        }
        Ok(OciTar {
            files: tar_entries(path),
        })
    }

    fn json(&self, name: &str) -> Result<Value, String> {
        let bytes = self
            .files
            .get(name)
            .ok_or_else(|| format!("OCI tarball lacks {name}"))?;
        serde_json::from_slice(bytes).map_err(|err| format!("{name}: {err}"))
    }

    fn blob(&self, descriptor: &Value) -> Result<Value, String> {
        let digest = descriptor["digest"]
            .as_str()
            .ok_or_else(|| format!("descriptor without digest: {descriptor}"))?;
        self.json(&format!("blobs/{}", digest.replacen(':', "/", 1)))
    }

    /// `index.json`'s first manifest descriptor.
    fn top(&self) -> Result<Value, String> {
        let index = self.json("index.json")?;
        index["manifests"]
            .get(0)
            .cloned()
            .ok_or_else(|| "index.json lists no manifest".to_owned())
    }
}

fn is_index(descriptor: &Value) -> bool {
    matches!(
        descriptor["mediaType"].as_str(),
        Some("application/vnd.oci.image.index.v1+json")
            | Some("application/vnd.docker.distribution.manifest.list.v2+json")
    )
}

fn check_image(path: &Path, run: &Run) -> Result<(), String> {
    let oci = OciTar::open(path)?;
    let mut descriptor = oci.top()?;
    if is_index(&descriptor) {
        let index = oci.blob(&descriptor)?;
        descriptor = index["manifests"]
            .get(0)
            .cloned()
            .ok_or_else(|| "the image index lists no manifest".to_owned())?;
    }
    let manifest = oci.blob(&descriptor)?;
    let config = oci.blob(&manifest["config"])?;
    run.check_image_config(&config)
}

/// A dotted path (`config.Entrypoint`) into a JSON value; `None` when absent or null.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = value;
    for key in path.split('.') {
        at = at.get(key)?;
    }
    (!at.is_null()).then_some(at)
}

fn check_oci(path: &Path, run: &Run) -> Result<(), String> {
    let Some(expect) = &run.expect_oci else {
        return Ok(());
    };
    let oci = OciTar::open(path)?;
    let top = oci.top()?;
    let manifests: Vec<Value> = if is_index(&top) {
        let index = oci.blob(&top)?;
        index["manifests"].as_array().cloned().unwrap_or_default()
    } else if expect.manifests.len() > 1 {
        return Err(format!(
            "index.json manifests[0] is {}, want an image index",
            top["mediaType"]
        ));
    } else {
        vec![top]
    };
    if manifests.len() != expect.manifests.len() {
        return Err(format!(
            "the index has {} manifests, want {}",
            manifests.len(),
            expect.manifests.len()
        ));
    }
    for (descriptor, want) in manifests.iter().zip(&expect.manifests) {
        let manifest = oci.blob(descriptor)?;
        let config = oci.blob(&manifest["config"])?;
        let platform = platform_text(&descriptor["platform"])
            .unwrap_or_else(|| platform_text(&config).unwrap_or_else(|| "<none>".to_owned()));
        if platform != want.platform {
            return Err(format!("manifest for {platform}, want {}", want.platform));
        }
        let layers = manifest["layers"].as_array().map_or(0, Vec::len);
        if layers != want.layers {
            return Err(format!("{platform}: {layers} layers, want {}", want.layers));
        }
        for (key, value) in &want.config {
            let got = lookup(&config, key);
            let ok = match (got, value) {
                (None, Value::Null) => true,
                (Some(got), want) => got == want,
                (None, _) => false,
            };
            if !ok {
                return Err(format!("{platform}: {key} is {got:?}, want {value}"));
            }
        }
    }
    Ok(())
}

/// `os/architecture[/variant]` of a platform object or an image config.
fn platform_text(value: &Value) -> Option<String> {
    let os = value["os"].as_str()?;
    let arch = value["architecture"].as_str()?;
    Some(match value["variant"].as_str() {
        Some(variant) => format!("{os}/{arch}/{variant}"),
        None => format!("{os}/{arch}"),
    })
}
