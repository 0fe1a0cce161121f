//! BuildKit's Dockerfile integration cases (`buildkit-dockerfile-integration`), checked at the
//! level the frontend owns: every run is planned and converted for each of its platforms, runs
//! that must fail fail with BuildKit's error text, and the image-config expectations
//! (`expect_image_config`, the configs of `expect_oci`) hold. Filesystem expectations
//! (exported files) need the engine and are not checked here.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{options, resolve_all};
use hoist_frontend::{convert, plan, BuildOptions, Converted};
use hoist_oci::Platform;
use serde_json::Value;

const FOLDER: &str = "buildkit-dockerfile-integration";

#[test]
#[allow(clippy::print_stdout)] // the runner's count is its output
fn integration_conformance() {
    let Some(root) = hoist_testkit::conformance_dir(FOLDER) else {
        return;
    };
    let mut cases: Vec<PathBuf> = fs::read_dir(root.join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let spec: Value =
            serde_json::from_str(&fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        for (i, run) in spec["runs"].as_array().unwrap().iter().enumerate() {
            total += 1;
            if let Err(why) = check_run(case, &spec, run) {
                failures.push(format!("{name} run {i}: {why}"));
            }
        }
    }
    println!(
        "integration (frontend level): {}/{} passed",
        total - failures.len(),
        total
    );
    assert!(
        failures.is_empty(),
        "failing runs:\n{}",
        failures.join("\n")
    );
}

fn dockerfile_path(case: &Path, spec: &Value, run: &Value) -> PathBuf {
    if let Some(variant) = run["dockerfile"].as_str() {
        return case.join(variant);
    }
    let dir = spec["layout"]["dockerfile_dir"]
        .as_str()
        .unwrap_or("context");
    let file = run["frontend_attrs"]["filename"]
        .as_str()
        .unwrap_or("Dockerfile");
    // Symlinks of the upstream context are listed; git stores them as files.
    let listing = spec["layout"]["context_listing"].as_array();
    let target = listing.and_then(|entries| {
        entries.iter().find_map(|e| {
            (e["type"] == "symlink" && e["path"] == file)
                .then(|| e["target"].as_str().map(str::to_string))
                .flatten()
        })
    });
    case.join(dir).join(target.as_deref().unwrap_or(file))
}

fn options_for(run: &Value) -> (BuildOptions, Vec<Option<Platform>>) {
    let mut opts = options();
    let mut platforms = vec![None];
    if let Some(attrs) = run["frontend_attrs"].as_object() {
        for (key, value) in attrs {
            let value = value.as_str().unwrap_or_default().to_string();
            if let Some(arg) = key.strip_prefix("build-arg:") {
                opts.build_args.insert(arg.to_string(), value);
            } else if let Some(label) = key.strip_prefix("label:") {
                opts.labels.insert(label.to_string(), value);
            } else if key == "target" {
                opts.target = Some(value);
            } else if key == "platform" {
                platforms = value
                    .split(',')
                    .map(|p| Some(Platform::parse(p.trim()).unwrap().normalize()))
                    .collect();
            }
        }
    }
    (opts, platforms)
}

fn build(dockerfile: &[u8], opts: &BuildOptions) -> Result<Converted, String> {
    let df = hoist_dockerfile::parser::parse_bytes(dockerfile).map_err(|e| e.to_string())?;
    let plan = plan(&df, opts).map_err(|e| e.to_string())?;
    let resolved = resolve_all(&plan.images);
    convert(&plan, &resolved, opts).map_err(|e| e.to_string())
}

fn check_run(case: &Path, spec: &Value, run: &Value) -> Result<(), String> {
    let path = dockerfile_path(case, spec, run);
    let dockerfile = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (opts, platforms) = options_for(run);
    let mut results = Vec::new();
    for platform in &platforms {
        let opts = match platform {
            Some(p) => opts.for_platform(p.clone()),
            None => opts.clone(),
        };
        results.push((platform.clone(), build(&dockerfile, &opts)));
    }
    if run["expect_success"] == false {
        let err = match results.iter().find_map(|(_, r)| r.as_ref().err()) {
            Some(e) => e.clone(),
            None => return Err("expected an error, the conversion succeeded".into()),
        };
        for want in run["expect_error_contains"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let want = want.as_str().unwrap_or_default();
            if !err.contains(want) {
                return Err(format!("error {err:?} does not contain {want:?}"));
            }
        }
        return Ok(());
    }
    let mut configs = Vec::new();
    for (platform, result) in results {
        let converted = result.map_err(|e| format!("conversion failed: {e}"))?;
        configs.push((platform, serde_json::to_value(&converted.config).unwrap()));
    }
    if let Some(expect) = run["expect_image_config"].as_object() {
        for (path, want) in expect {
            check_path(&configs[0].1, path, want)?;
        }
    }
    if let Some(manifests) = run["expect_oci"]["manifests"].as_array() {
        for manifest in manifests {
            let platform = Platform::parse(manifest["platform"].as_str().unwrap_or_default())
                .map_err(|e| e.to_string())?
                .normalize();
            let Some((_, config)) = configs.iter().find(|(p, _)| p.as_ref() == Some(&platform))
            else {
                return Err(format!("no config for {platform}"));
            };
            for (key, want) in manifest.as_object().into_iter().flatten() {
                if let Some(path) = key.strip_prefix("config.") {
                    check_path(config, &format!("config.{path}"), want)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks one `expect_image_config` entry: a dotted path (`history[0].created_by`,
/// `history.length`), optionally followed by ` contains`.
fn check_path(config: &Value, path: &str, want: &Value) -> Result<(), String> {
    let (path, contains) = match path.strip_suffix(" contains") {
        Some(p) => (p, true),
        None => (path, false),
    };
    let mut value = Some(config.clone());
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        value = match (value, key) {
            (Some(Value::Array(items)), "length") => Some(Value::from(items.len())),
            (None, "length") => Some(Value::from(0)),
            (Some(v), key) => v.get(key).cloned(),
            (None, _) => None,
        };
        if let Some(i) = index {
            value = value.and_then(|v| v.get(i).cloned());
        }
    }
    let got = value.unwrap_or(Value::Null);
    let ok = match (contains, want) {
        (true, Value::String(s)) => got.as_str().is_some_and(|g| g.contains(s.as_str())),
        (true, Value::Array(items)) => items.iter().all(|w| {
            got.as_array()
                .is_some_and(|g| g.iter().any(|x| matches_placeholder(x, w)))
        }),
        (false, w) => matches_placeholder(&got, w),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{path}: got {got}, want {want}"))
    }
}

fn matches_placeholder(got: &Value, want: &Value) -> bool {
    match want {
        Value::String(w) if w == "<non-empty>" => match got {
            Value::String(s) => !s.is_empty(),
            Value::Null => false,
            _ => true,
        },
        Value::String(w) if w == "<any>" => true,
        Value::String(w) if w.ends_with("<any>") => got
            .as_str()
            .is_some_and(|g| g.starts_with(w.trim_end_matches("<any>"))),
        Value::Array(w) if w.is_empty() => got.is_null() || got == want,
        Value::Bool(false) => got.is_null() || got == want,
        Value::Null => got.is_null() || got.as_array().is_some_and(|a| a.is_empty()),
        Value::Object(w) => got.as_object().is_some_and(|g| {
            g.len() == w.len() && w.iter().all(|(k, v)| g.get(k).is_some_and(|x| x == v))
        }),
        _ => got == want,
    }
}
