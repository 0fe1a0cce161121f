//! Stage 2 of a build, [`load_definition`]: the Dockerfile parsed and the ignore files of
//! the main and named contexts read (those that were local directories: BuildKit reads
//! none of a remote or piped context) — everything later stages need from the request's
//! files, reported as BuildKit's `[internal] load build definition from Dockerfile` and
//! `[internal] load .dockerignore`. The Dockerfile's build checks (hoist-dockerfile's
//! `lint`, settings from `BUILDKIT_DOCKERFILE_CHECK` or `# check=`) are warnings of the
//! first of those steps, as BuildKit's frontend sends them; the frontend's own findings
//! follow once it converted ([`report_frontend_checks`], called by `resolve`).

use std::path::{Path, PathBuf};

use hoist_dockerfile::ast::Dockerfile;
use hoist_dockerfile::dockerignore::{
    ignore_file_candidates, read_ignore_file, IgnoreFileLocation,
};
use hoist_dockerfile::lint::{keep_enabled, lint, violation_error, CheckConfig, LintWarning};
use hoist_frontend::{BuildOptions, MAIN_CONTEXT};
use hoist_oci::Platform;
use hoist_solver::{SourceLines, Warning, WarningSource};

use crate::context::Prepared;
use crate::error::{Error, Result};
use crate::ops::{LocalContext, LocalContexts};
use crate::run_options::RunOptions;
use crate::secrets::SecretStore;
use crate::ssh::SshStore;
use crate::steps::Progress;

/// A build's definition as loaded: what the frontend and the solver read.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub dockerfile: Dockerfile,
    /// The request's options with the ignore patterns filled in.
    pub options: BuildOptions,
    pub platforms: Vec<Platform>,
    /// The local contexts by name (the main one as `context`).
    pub contexts: LocalContexts,
    /// `--pull` (see [`crate::BuildRequest::pull`]).
    pub pull: bool,
    /// The values of the build's secrets, read before any step runs.
    pub secrets: SecretStore,
    /// The build's SSH agents, checked before any step runs.
    pub ssh: SshStore,
    /// The build-wide settings of RUN steps.
    pub run: RunOptions,
    /// The build checks' settings, for the findings of later stages (the frontend's).
    pub checks: CheckConfig,
    /// The step that loaded the Dockerfile, which the build checks' warnings are about,
    /// and the Dockerfile as their source.
    pub definition_step: String,
    pub definition_source: WarningSource,
}

/// Parses the prepared request's Dockerfile and reads the ignore files of its contexts.
pub fn load_definition(prepared: &Prepared, progress: &Progress) -> Result<Loaded> {
    let request = &prepared.request;
    let secrets = prepared.secrets.clone();
    let ssh = prepared.ssh.clone();
    let file_name = dockerfile_base_name(&prepared.dockerfile_name);
    let definition_step = format!("[internal] load build definition from {file_name}");
    let step = progress.step(definition_step.clone());
    let source = WarningSource {
        filename: file_name,
        language: "Dockerfile".to_owned(),
        data: prepared.dockerfile.as_slice().into(),
    };
    let parsed =
        hoist_dockerfile::parser::parse_bytes(&prepared.dockerfile).and_then(|dockerfile| {
            let checks = run_checks(&dockerfile, prepared, &step, &source)?;
            Ok((dockerfile, checks))
        });
    let (dockerfile, checks) = step.finish(parsed)?;
    let mut options = request.options.clone();
    let main = prepared.contexts.get(MAIN_CONTEXT);
    if let Some(LocalContext { dir, .. }) =
        main.filter(|_| prepared.reads_ignore_file(MAIN_CONTEXT))
    {
        if prepared.ignore_given(MAIN_CONTEXT) {
            // Read by the context's owner: the step as BuildKit shows it, nothing to read.
            progress
                .step("[internal] load .dockerignore".into())
                .finish(Ok::<(), Error>(()))?;
        } else if options.context_excludes.is_empty() {
            let step = progress.step("[internal] load .dockerignore".into());
            options.context_excludes =
                step.finish(read_dockerignore(&prepared.dockerfile_name, dir))?;
        }
    }
    // Each local named context is filtered by its own `.dockerignore`, as BuildKit reads it.
    for (name, LocalContext { dir, .. }) in &prepared.contexts {
        if name == MAIN_CONTEXT || !prepared.reads_ignore_file(name) || prepared.ignore_given(name)
        {
            continue;
        }
        let patterns = read_ignore_at(&dir.join(".dockerignore"))?.unwrap_or_default();
        options
            .named_context_excludes
            .insert(name.clone(), patterns);
    }
    Ok(Loaded {
        dockerfile,
        options,
        platforms: request.platforms.clone(),
        contexts: prepared.contexts.clone(),
        pull: request.pull,
        secrets,
        ssh,
        run: request.run.clone(),
        checks,
        definition_step,
        definition_source: source,
    })
}

/// BuildKit's build checks of `dockerfile`, as its Dockerfile frontend runs them: the
/// options of the `BUILDKIT_DOCKERFILE_CHECK` build arg, else of the `# check=` directive;
/// each finding a warning of `step` (the one loading the Dockerfile) pointing into it; under
/// `error=true` a finding fails the build once all are reported. Gives the settings, for
/// the frontend's findings ([`report_frontend_checks`]).
fn run_checks(
    dockerfile: &Dockerfile,
    prepared: &Prepared,
    step: &crate::steps::Step<'_>,
    source: &WarningSource,
) -> hoist_dockerfile::Result<CheckConfig> {
    let config = match prepared.request.options.build_args.get(CHECK_BUILD_ARG) {
        Some(options) => {
            CheckConfig::parse(options).map_err(|err| hoist_dockerfile::Error::Check {
                message: format!("failed to parse build-arg:{CHECK_BUILD_ARG}: {err}"),
            })?
        }
        None => CheckConfig::from_directive(&String::from_utf8_lossy(&prepared.dockerfile))?,
    };
    let findings = lint(dockerfile, &config);
    for finding in &findings {
        step.warn(lint_warning(finding, source));
    }
    match violation_error(&findings) {
        Some(err) if config.error => Err(err),
        _ => Ok(config),
    }
}

/// The build checks the frontend found while converting (those of the first platform, as
/// BuildKit warns for one), after the build's check settings: warnings about the step that
/// loaded the Dockerfile; under `error=true` the build fails.
pub(crate) fn report_frontend_checks(
    loaded: &Loaded,
    findings: &[LintWarning],
    progress: &Progress,
) -> Result<()> {
    let findings = keep_enabled(&loaded.dockerfile, &loaded.checks, findings.to_vec());
    for finding in &findings {
        progress.warn(
            &loaded.definition_step,
            lint_warning(finding, &loaded.definition_source),
        );
    }
    match violation_error(&findings) {
        Some(err) if loaded.checks.error => Err(err.into()),
        _ => Ok(()),
    }
}

/// The build arg whose value overrides the Dockerfile's `# check=` directive.
const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// A build check's finding as the warning BuildKit's Dockerfile frontend sends: level 1,
/// the rule's description as detail, its URL, the finding's lines in the Dockerfile.
pub(crate) fn lint_warning(lint: &LintWarning, source: &WarningSource) -> Warning {
    Warning {
        level: 1,
        short: lint.short(),
        detail: vec![lint.rule.description.to_owned()],
        url: lint.rule.url.to_owned(),
        source: Some(source.clone()),
        ranges: vec![SourceLines {
            start: lint.span.start,
            end: lint.span.end,
        }],
    }
}

/// The Dockerfile's file name as BuildKit shows it (`Dockerfile` for stdin).
pub(crate) fn dockerfile_base_name(name: &str) -> String {
    match Path::new(name).file_name() {
        Some(base) if name != "-" => base.to_string_lossy().into_owned(),
        _ => "Dockerfile".to_owned(),
    }
}

/// The `.dockerignore` patterns: `<Dockerfile>.dockerignore` beside the Dockerfile first,
/// then `.dockerignore` at the context root `context`.
fn read_dockerignore(dockerfile_name: &str, context: &Path) -> Result<Vec<String>> {
    for candidate in ignore_file_candidates(dockerfile_name) {
        let path = match candidate.location {
            IgnoreFileLocation::BesideDockerfile => PathBuf::from(&candidate.path),
            IgnoreFileLocation::ContextRoot => context.join(&candidate.path),
        };
        if let Some(patterns) = read_ignore_at(&path)? {
            return Ok(patterns);
        }
    }
    Ok(Vec::new())
}

/// The patterns of the ignore file at `path`; `None` when there is none.
fn read_ignore_at(path: &Path) -> Result<Option<Vec<String>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(read_ignore_file(&text)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}
