//! Every BuildKit Dockerfile integration case loads, agrees with the folder's index.json,
//! and materialises with upstream's modes and symlinks.

use std::os::unix::fs::PermissionsExt as _;

use hoist_testkit::integration::{self, Entry, Export};

#[test]
fn integration_cases_conformance_all_load_and_materialize() {
    let Some(dir) = hoist_testkit::conformance_dir(integration::FOLDER) else {
        return;
    };
    let cases = integration::cases().unwrap();
    let index: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(err) = check_case(case, &index) {
            failures.push(format!("{}: {err}", case.id));
        }
    }
    let passed = cases.len() - failures.len();
    eprintln!(
        "integration cases: {passed}/{} loaded and materialised",
        index.len()
    );
    assert_eq!(cases.len(), index.len(), "cases on disk vs index.json");
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert_eq!(cases.len(), 46);
    let runs: usize = cases.iter().map(|case| case.runs.len()).sum();
    assert_eq!(runs, 63);
    assert_eq!(cases.iter().filter(|case| case.expects_error()).count(), 4);
}

fn check_case(
    case: &integration::IntegrationCase,
    index: &[serde_json::Value],
) -> Result<(), String> {
    let listed = index
        .iter()
        .find(|entry| entry["id"] == case.id.as_str())
        .ok_or("not in index.json")?;
    if listed["runs"] != case.runs.len() {
        return Err(format!(
            "index.json says {} runs, case.json has {}",
            listed["runs"],
            case.runs.len()
        ));
    }
    if listed["function"] != case.upstream.function.as_str() {
        return Err("upstream function differs from index.json".to_owned());
    }
    if listed["expects_error"] != case.expects_error() {
        return Err("expects_error differs from index.json".to_owned());
    }
    for run in &case.runs {
        run.image_config_checks()?;
        if !run.expect_success && run.expect_error_contains.is_empty() {
            return Err("a failing run with no expected error text".to_owned());
        }
        if !case.dockerfile(run).is_file() {
            return Err(format!("no Dockerfile {}", case.dockerfile(run).display()));
        }
    }
    let ctx = case.materialize().map_err(|err| err.to_string())?;
    for entry in &case.layout.context_listing {
        let path = ctx.context().join(entry.path());
        let meta =
            std::fs::symlink_metadata(&path).map_err(|err| format!("{}: {err}", path.display()))?;
        match entry {
            Entry::File {
                upstream_mode,
                size,
                ..
            } => {
                if !meta.is_file()
                    || meta.len() != *size
                    || meta.permissions().mode() & 0o7777 != upstream_mode.0
                {
                    return Err(format!(
                        "{} not materialised as a {upstream_mode} file",
                        path.display()
                    ));
                }
            }
            Entry::Dir { upstream_mode, .. } => {
                if !meta.is_dir() || meta.permissions().mode() & 0o7777 != upstream_mode.0 {
                    return Err(format!(
                        "{} not materialised as a {upstream_mode} dir",
                        path.display()
                    ));
                }
            }
            Entry::Symlink { target, .. } => {
                let found = std::fs::read_link(&path)
                    .map_err(|err| format!("{}: {err}", path.display()))?;
                if found.to_str() != Some(target.as_str()) {
                    return Err(format!("{} links to {}", path.display(), found.display()));
                }
            }
        }
    }
    for run in &case.runs {
        let dockerfile = ctx.dockerfile(case, run);
        if std::fs::read(&dockerfile).map_err(|err| format!("{}: {err}", dockerfile.display()))?
            != std::fs::read(case.dockerfile(run)).map_err(|err| err.to_string())?
        {
            return Err(format!(
                "{} differs from the conformance copy",
                dockerfile.display()
            ));
        }
    }
    Ok(())
}

#[test]
fn integration_case_fields_are_typed() {
    let Some(cases) = integration::cases() else {
        return;
    };
    let by_id = |id: &str| cases.iter().find(|case| case.id == id).unwrap();

    let chown = by_id("08-copy-chown");
    assert_eq!(chown.images_used, ["busybox"]);
    assert_eq!(chown.runs[0].frontend_attrs.build_args["group"], "nobody");
    assert_eq!(chown.runs[0].export, Some(Export::Local));
    assert_eq!(chown.runs[0].expect_files["fooowner"], "daemon daemon\n");

    let exclude = by_id("16-copy-exclude");
    assert_eq!(exclude.layout.dockerfile_dir, "dockerfile-dir");
    assert_eq!(exclude.layout.dockerfile_dir_listing.len(), 1);

    let required = by_id("23-arg-required-default");
    assert!(!required.runs[0].expect_success);
    assert_eq!(required.runs[0].expect_error_contains, ["FOO: foo missing"]);
    assert_eq!(required.runs[0].export, None);

    let platforms = by_id("30-platform-args-explicit");
    let attrs = &platforms.runs[0].frontend_attrs;
    assert_eq!(attrs.platforms.len(), 1);
    assert_eq!(attrs.platforms[0].format(), "darwin/ppc64le");
    assert_eq!(attrs.build_args["TARGETOS"], "freebsd");
    let multi = &by_id("39-default-entrypoint-shell-and-path").runs[0];
    assert_eq!(multi.frontend_attrs.platforms.len(), 2);
    assert_eq!(multi.export, Some(Export::Oci));
    assert_eq!(
        multi.expect_oci.as_ref().unwrap().manifests[1].platform,
        "linux/amd64"
    );

    let user = by_id("35-user-switching");
    let checks = user.runs[1].image_config_checks().unwrap();
    checks[0]
        .check(&serde_json::json!({"config": {"User": "nobody"}}))
        .unwrap();

    let ignore = by_id("46-dockerignore-per-dockerfile");
    let ctx = ignore.materialize().unwrap();
    assert_eq!(
        ctx.dockerfile(ignore, &ignore.runs[1]),
        ctx.context().join("Dockerfile2")
    );

    let symlinked = by_id("09-copy-ownership-existing-dirs");
    let ctx = symlinked.materialize().unwrap();
    assert_eq!(
        std::fs::read_link(ctx.context().join("Dockerfile"))
            .unwrap()
            .to_str(),
        Some("Dockerfile.web")
    );
    assert!(by_id("40-copy-from-image-and-stage-masking")
        .variants
        .contains_key("stage-masks-image"));
}
