//! `hoist build`: buildx's flags turned into a [`hoist_engine::BuildRequest`], run on the
//! in-process engine, with progress on stderr and `--metadata-file` / `--iidfile` written
//! afterwards; with `--addr`, sent to a daemon instead ([`super::build_remote`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use hoist_engine::runtime::Runtime;
use hoist_engine::{
    BuildRequest, CacheExport, CacheImport, CacheOptions, ContextSource, RunOptions, SecretSource,
    Secrets, SshAgents, TarStream, UsageKind, Worker,
};
use hoist_export::Output;
use hoist_frontend::{BuildOptions, NamedContext, OciLayoutRef};
use hoist_oci::{Platform, Reference};
use hoist_registry::{Credentials, RegistryClient};

use super::{block_on, Context};
use crate::cli::BuildArgs;
use crate::progress::{self, ProgressMode};

pub fn run(ctx: &Context, args: BuildArgs) -> anyhow::Result<ExitCode> {
    if let Some(addr) = &args.addr {
        let tls = super::RemoteTls {
            ca: args.tlscacert.clone(),
            cert: args.tlscert.clone(),
            key: args.tlskey.clone(),
            server_name: args.tlsservername.clone(),
        };
        return super::build_remote::run(&args, addr, tls);
    }
    match ctx.build_target()? {
        super::BuildTarget::Remote { addr, tls } => {
            return super::build_remote::run(&args, &addr, tls);
        }
        super::BuildTarget::DockerContainer(driver) => {
            return super::build_remote::run_on(
                &args,
                &super::build_remote::Dial::Container(driver),
            );
        }
        super::BuildTarget::Kubernetes(driver) => {
            // buildx's sticky key: the context's absolute path (as given when it is not a
            // local directory).
            let key = std::path::absolute(&args.context)
                .ok()
                .filter(|p| p.is_dir())
                .map_or_else(|| args.context.clone(), |p| p.display().to_string());
            return super::build_remote::run_on(
                &args,
                &super::build_remote::Dial::Kubernetes { driver, key },
            );
        }
        super::BuildTarget::Embedded => {}
        super::BuildTarget::Nodes { builder, nodes } => {
            return super::build_nodes::run(ctx, &args, &builder, &nodes);
        }
    }
    let inputs = inputs(&args, &mut std::io::stdin().lock())?;
    let mut options = build_options(&args)?;
    let named = named_contexts(&args.build_contexts, &mut options)?;
    let mut platforms = Vec::new();
    for list in &args.platforms {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            // buildx: `local` is the platform of the machine doing the build.
            let platform = if item == "local" {
                Platform::host()
            } else {
                Platform::parse(item)
                    .map(|p| p.normalize())
                    .with_context(|| format!("invalid platform {item:?}"))?
            };
            if !platforms.contains(&platform) {
                platforms.push(platform);
            }
        }
    }
    let outputs = outputs(&args)?;
    refuse_terminal_stdout(&outputs, std::io::stdout().is_terminal())?;
    if outputs.is_empty() {
        eprintln!(
            "WARNING: No output specified. Build result will only remain in the build cache. \
             To push result image into registry use --push or to load image into docker use --load"
        );
    }
    let Inputs {
        context,
        dockerfile,
        dockerfile_name,
    } = inputs;
    let request = BuildRequest {
        dockerfile: dockerfile.clone(),
        dockerfile_name: dockerfile_name.clone(),
        context,
        options,
        platforms,
        outputs,
        pull: args.pull,
        named_contexts: named,
        secrets: secrets(&args.secrets)?,
        ssh: ssh_agents(&args.ssh),
        run: run_options(&args)?,
        cache: cache_options(&args)?,
        late_inputs: None,
    };
    let insecure = insecure_push_hosts(&request.outputs);
    let insecure: Vec<&str> = insecure.iter().map(String::as_str).collect();
    let client = RegistryClient::new(
        ctx.registry_config(&insecure)?,
        Credentials::from_docker_config(),
    );
    let gc_config = ctx.gc_config()?;
    let executor = Runtime::from_flag(&args.runtime).executor()?;
    let state = ctx.state_dir()?;
    let worker = Arc::new(Worker::with_executor(state.clone(), client, executor)?);
    let mode = progress_mode(&args)?;
    let started = SystemTime::now();
    let (result, numbered) = block_on(async move {
        let (events, renderer) = progress::start(mode);
        let result = hoist_engine::build(worker, request, Some(events)).await;
        (result, renderer.await.unwrap_or(0))
    })?;
    let exit = report(&args, result, dockerfile.as_deref(), &dockerfile_name)?;
    // After the result is out: the gc must not hold it up.
    collect_garbage(&state, &gc_config, started, mode, numbered);
    Ok(exit)
}

/// Trims the state dir to the gc policy after a build, keeping what it used. Plain
/// progress gets a last `#N [internal] gc` step when something was removed; a failing gc
/// is a warning, never the build's failure.
fn collect_garbage(
    state: &hoist_engine::StateDir,
    config: &hoist_engine::GcConfig,
    started: SystemTime,
    mode: ProgressMode,
    numbered: usize,
) {
    let report = match hoist_engine::gc(state, config, Some(started)) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("WARNING: gc after the build failed: {err}");
            return;
        }
    };
    let pruned = &report.prune;
    if mode != ProgressMode::Plain || (pruned.removed.is_empty() && pruned.reclaimed == 0) {
        return;
    }
    let n = numbered + 1;
    let count = |kind: UsageKind| pruned.removed.iter().filter(|r| r.kind == kind).count();
    eprint!(
        "\n#{n} [internal] gc\n#{n} removed {} cache records, {} cache mounts, {} git repositories: {} reclaimed\n#{n} DONE {:.1}s\n",
        count(UsageKind::Regular),
        count(UsageKind::CacheMount),
        count(UsageKind::GitRepo),
        super::du::human_size(pruned.reclaimed),
        report.elapsed.as_secs_f64()
    );
}

/// Prints the build's outcome (the error, or `--metadata-file`, `--iidfile` and `-q`'s id)
/// and gives the exit code.
fn report(
    args: &BuildArgs,
    result: hoist_engine::Result<hoist_engine::BuildResult>,
    dockerfile: Option<&[u8]>,
    dockerfile_name: &str,
) -> anyhow::Result<ExitCode> {
    let result = match result {
        Ok(result) => result,
        Err(err) => {
            // A remote context's Dockerfile was read by the engine: no excerpt of it, but the
            // failing step's output all the same.
            let source = dockerfile.map(String::from_utf8_lossy);
            // buildx names the Dockerfile by its base name in excerpts.
            let shown = match std::path::Path::new(dockerfile_name).file_name() {
                Some(name) if dockerfile_name != "-" => name.to_string_lossy().into_owned(),
                _ => "Dockerfile".to_owned(),
            };
            let text = match &err {
                hoist_engine::Error::Frontend(e) if source.is_some() => {
                    e.excerpt(&shown, source.as_deref().unwrap_or_default())
                }
                hoist_engine::Error::Dockerfile(e) if source.is_some() => {
                    let source = source.as_deref().unwrap_or_default();
                    hoist_dockerfile::instructions::error_context(&shown, source, e)
                }
                hoist_engine::Error::Step {
                    step,
                    output,
                    location,
                    ..
                } => {
                    // BuildKit's block: the failing step and its last lines, then the error.
                    let mut text = format!("------\n > {step}:\n");
                    for line in output {
                        text.push_str(line);
                        text.push('\n');
                    }
                    text.push_str("------\n");
                    if let (Some(lines), Some(source)) = (location, source.as_deref()) {
                        let span = hoist_dockerfile::ast::LineSpan {
                            start: lines.start,
                            end: lines.end,
                        };
                        text.push_str(&hoist_dockerfile::instructions::source_excerpt(
                            &shown, source, span,
                        ));
                    }
                    format!("{text}ERROR: {err}\n")
                }
                other => format!("ERROR: {other}\n"),
            };
            eprint!("{text}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let metadata = result.export.metadata();
    if let Some(path) = &args.metadata_file {
        let json = metadata.to_json()?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    // buildx's image ID: the config digest of a single-platform image, else the root
    // digest (an index's), else nothing.
    let id = metadata.config_digest.as_ref().or(metadata.digest.as_ref());
    let id = id.map(ToString::to_string).unwrap_or_default();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.quiet {
        super::print(format!("{id}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--progress`, with `-q` as buildx reads it: quiet progress, refused next to any other
/// explicit mode.
pub(super) fn progress_mode(args: &BuildArgs) -> anyhow::Result<ProgressMode> {
    if args.quiet {
        if args.progress != "auto" && args.progress != "quiet" {
            bail!(
                "progress={} and quiet cannot be used together",
                args.progress
            );
        }
        return Ok(ProgressMode::Quiet);
    }
    Ok(ProgressMode::parse(&args.progress))
}

/// The build's main context and Dockerfile, as buildx's `LoadInputs` reads the context
/// argument and `-f`.
#[derive(Debug)]
struct Inputs {
    context: ContextSource,
    /// `None`: read `dockerfile_name` from the (remote or piped) context.
    dockerfile: Option<Vec<u8>>,
    dockerfile_name: String,
}

/// Reads the context argument and `-f` (with `stdin` for `-`):
///
/// - `-`: stdin, told apart by its first bytes: an archive is the context (its Dockerfile
///   named by `-f`, inside it), anything else the Dockerfile of an empty context (and then
///   `-f` is refused);
/// - a directory: that directory, the Dockerfile from `-f -` (stdin), `-f FILE`, or
///   `DIR/Dockerfile`;
/// - a Git or http(s) URL: the Dockerfile from `-f -`, an absolute `-f`, else read inside
///   the context by the name `-f` gives (`Dockerfile` by default).
fn inputs(args: &BuildArgs, stdin: &mut dyn std::io::Read) -> anyhow::Result<Inputs> {
    let file = args.file.as_deref();
    if args.context.is_empty() {
        bail!("please specify build context (e.g. \".\" for the current directory)");
    }
    let in_context = |context: ContextSource| Inputs {
        context,
        dockerfile: None,
        dockerfile_name: file.unwrap_or("Dockerfile").to_owned(),
    };
    if args.context == "-" {
        if file == Some("-") {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        let mut head = Vec::with_capacity(hoist_engine::HEAD_LEN);
        stdin
            .take(hoist_engine::HEAD_LEN as u64)
            .read_to_end(&mut head)
            .context("failed to peek context header from STDIN")?;
        if hoist_engine::is_archive(&head) {
            // The rest is read by the engine as it unpacks the context.
            let rest = std::io::stdin();
            let stream = TarStream::new(std::io::Cursor::new(head).chain(rest));
            return Ok(in_context(ContextSource::Tar(stream)));
        }
        if file.is_some() {
            bail!("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles");
        }
        let mut bytes = head;
        stdin
            .read_to_end(&mut bytes)
            .context("cannot read the Dockerfile from stdin")?;
        return Ok(Inputs {
            context: ContextSource::Empty,
            dockerfile: Some(bytes),
            dockerfile_name: "-".to_owned(),
        });
    }
    let dir = PathBuf::from(&args.context);
    if dir.is_dir() {
        let (dockerfile_name, dockerfile) = read_dockerfile(file, &dir, stdin)?;
        return Ok(Inputs {
            context: ContextSource::Local(dir),
            dockerfile: Some(dockerfile),
            dockerfile_name,
        });
    }
    let Some(remote) = ContextSource::remote(&args.context) else {
        bail!(
            "unable to prepare context: path {:?} not found",
            args.context
        );
    };
    match file {
        Some(file) if file == "-" || std::path::Path::new(file).is_absolute() => {
            let (dockerfile_name, dockerfile) = read_dockerfile(Some(file), &dir, stdin)?;
            Ok(Inputs {
                context: remote,
                dockerfile: Some(dockerfile),
                dockerfile_name,
            })
        }
        _ => Ok(in_context(remote)),
    }
}

/// The Dockerfile's name (for messages) and bytes: `-f -` from stdin, `-f FILE`, or
/// `PATH/Dockerfile`.
fn read_dockerfile(
    file: Option<&str>,
    context: &std::path::Path,
    stdin: &mut dyn std::io::Read,
) -> anyhow::Result<(String, Vec<u8>)> {
    match file {
        Some("-") => {
            let mut bytes = Vec::new();
            stdin
                .read_to_end(&mut bytes)
                .context("cannot read the Dockerfile from stdin")?;
            Ok(("-".to_owned(), bytes))
        }
        Some(file) => {
            let bytes = std::fs::read(file)
                .with_context(|| format!("failed to read dockerfile: open {file}"))?;
            Ok((file.to_owned(), bytes))
        }
        None => {
            let path = context.join("Dockerfile");
            let bytes = std::fs::read(&path)
                .with_context(|| format!("failed to read dockerfile: open {}", path.display()))?;
            Ok((path.to_string_lossy().into_owned(), bytes))
        }
    }
}

/// `KEY=VALUE` pairs; a bare `KEY` takes its value from the environment (skipped when
/// unset), as buildx does for `--build-arg`.
pub(super) fn key_values(
    values: &[String],
    flag: &str,
    from_env: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for value in values {
        match value.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None if from_env && !value.is_empty() => {
                if let Ok(v) = std::env::var(value) {
                    out.insert(value.clone(), v);
                }
            }
            None if !from_env && !value.is_empty() => {
                out.insert(value.clone(), String::new());
            }
            _ => bail!("invalid {flag} {value:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

fn build_options(args: &BuildArgs) -> anyhow::Result<BuildOptions> {
    let mut options = BuildOptions::new(Platform::host());
    options.build_args = key_values(&args.build_args, "--build-arg", true)?;
    options.labels = key_values(&args.labels, "--label", false)?;
    options.target = args.target.clone();
    options.no_cache = args.no_cache;
    options.network = network_mode(&args.network)?;
    if !args.no_cache_filter.is_empty() {
        options.no_cache_filter = Some(
            args.no_cache_filter
                .iter()
                .flat_map(|s| s.split(','))
                .map(str::to_owned)
                .collect::<BTreeSet<_>>(),
        );
    }
    Ok(options)
}

/// `--build-context NAME=VALUE` as buildx reads it: a Git or http(s) URL is a remote
/// context, `docker-image://REF` names an image, `oci-layout://DIR[:TAG|@DIGEST]`
/// an image in an OCI layout (imported by the engine), anything else must be a directory; the
/// files of each context are sent under the local name NAME. Returns their sources by
/// local name.
fn named_contexts(
    flags: &[String],
    options: &mut BuildOptions,
) -> anyhow::Result<BTreeMap<String, ContextSource>> {
    let mut sources = BTreeMap::new();
    for flag in flags.iter().filter(|f| !f.is_empty()) {
        let Some((name, value)) = flag.split_once('=') else {
            bail!("invalid context value: {flag}, expected key=value");
        };
        if let Err(err) = Reference::parse_normalized(name) {
            bail!("invalid context name {name}: {err}");
        }
        let name = name.to_owned();
        let context = if let Some(remote) = ContextSource::remote(value) {
            sources.insert(name.clone(), remote);
            NamedContext::Local(name.clone())
        } else if let Some(reference) = value.strip_prefix("docker-image://") {
            NamedContext::Image(reference.to_owned())
        } else if value.starts_with("target:") {
            // A bake target; BuildKit knows no such source.
            bail!("unsupported context source target for {name}");
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            NamedContext::OciLayout(
                OciLayoutRef::parse(layout)
                    .map_err(|e| anyhow::anyhow!("--build-context {name}: {e}"))?,
            )
        } else {
            if name == hoist_frontend::MAIN_CONTEXT {
                bail!("--build-context {name}: the name {name:?} is the main context's");
            }
            let dir = PathBuf::from(value);
            let meta = std::fs::metadata(&dir)
                .with_context(|| format!("failed to get build context {name}: stat {value}"))?;
            if !meta.is_dir() {
                bail!("failed to get build context path {value}: not a directory");
            }
            sources.insert(name.clone(), ContextSource::Local(dir));
            NamedContext::Local(name.clone())
        };
        options.named_contexts.insert(name, context);
    }
    Ok(sources)
}

/// `--secret` as buildx reads it: `id=`, `src=`/`source=` (a file), `env=` (a variable),
/// `type=file|env` (with `env`, a `src` names the variable). With neither source, the
/// variable named like the id when it is set, else the file of that name. A variable that is
/// not set gives no secret (a RUN that requires it fails); a file is read by the engine,
/// which names it when it cannot.
pub(super) fn secrets(flags: &[String]) -> anyhow::Result<Secrets> {
    let mut secrets = Secrets::new();
    for flag in flags {
        let (mut id, mut file, mut env, mut kind) = (None, None, None, None);
        for field in flag.split(',') {
            let Some((key, value)) = field.split_once('=') else {
                bail!("invalid field '{field}' must be a key=value pair");
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "type" => match value {
                    "file" | "env" => kind = Some(value.to_owned()),
                    _ => bail!("unsupported secret type {value:?}"),
                },
                "id" => id = Some(value.to_owned()),
                "source" | "src" => file = Some(value.to_owned()),
                "env" => env = Some(value.to_owned()),
                _ => bail!("unexpected key '{key}' in '{field}'"),
            }
        }
        if kind.as_deref() == Some("env") && env.as_deref().unwrap_or_default().is_empty() {
            env = file.take();
        }
        let id = id.filter(|id| !id.is_empty());
        let Some(id) = id else {
            bail!("invalid --secret {flag:?}: secret ID missing");
        };
        let env = env.filter(|e| !e.is_empty());
        let file = file.filter(|f| !f.is_empty());
        let (env, file) = match (env, file) {
            (None, None) if std::env::var_os(&id).is_some() => (Some(id.clone()), None),
            (None, None) => (None, Some(id.clone())),
            other => other,
        };
        let source = match (env, file) {
            (Some(var), _) => match std::env::var_os(&var) {
                Some(value) => SecretSource::Value(value.into_encoded_bytes()),
                None => continue,
            },
            (None, Some(file)) => SecretSource::File(PathBuf::from(file)),
            (None, None) => continue,
        };
        secrets.insert(id, source);
    }
    Ok(secrets)
}

/// `--network` as buildx reads it: the default network of RUN steps.
fn network_mode(mode: &str) -> anyhow::Result<hoist_graph::Network> {
    Ok(match mode {
        "" | "default" => hoist_graph::Network::Sandbox,
        "none" => hoist_graph::Network::None,
        "host" => hoist_graph::Network::Host,
        other => bail!(
            "network mode {other:?} not supported by buildkit - you can define a custom \
             network for your builder using the network driver-opt in buildx create"
        ),
    })
}

/// `--ssh ID[=PATH[,PATH…]]` as buildx splits it; what the paths are is checked by the
/// engine before the build starts.
fn ssh_agents(flags: &[String]) -> SshAgents {
    let mut agents = SshAgents::new();
    for flag in flags.iter().filter(|flag| !flag.is_empty()) {
        let (id, paths) = match flag.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').map(PathBuf::from).collect()),
            None => (flag.as_str(), Vec::new()),
        };
        agents.insert(id, paths);
    }
    agents
}

/// `--allow`, `--add-host`, `--shm-size`, `--ulimit` and `--cgroup-parent`; `--network
/// host` grants `network.host`, as buildx does.
fn run_options(args: &BuildArgs) -> anyhow::Result<RunOptions> {
    let mut run = RunOptions::default();
    for name in &args.allow {
        run.entitlements.allow(name)?;
    }
    if args.network == "host" {
        run.entitlements.network_host = true;
    }
    for flag in &args.add_hosts {
        run.extra_hosts.extend(extra_hosts(flag)?);
    }
    if let Some(size) = &args.shm_size {
        run.shm_size = Some(
            mem_bytes(size).with_context(|| format!("invalid argument {size:?} for --shm-size"))?,
        );
    }
    for ulimit in &args.ulimits {
        run.ulimits.push(ulimit.parse()?);
    }
    run.cgroup_parent = args.cgroup_parent.clone().filter(|c| !c.is_empty());
    Ok(run)
}

/// One `--add-host` as buildx reads it: `host:ip` or `host=ip`, several comma-separated
/// addresses, IPv6 ones optionally in brackets; each address its own line.
fn extra_hosts(flag: &str) -> anyhow::Result<Vec<hoist_engine::HostEntry>> {
    let (host, ips) = flag
        .split_once('=')
        .or_else(|| flag.split_once(':'))
        .filter(|(host, ip)| !host.is_empty() && !ip.is_empty())
        .with_context(|| format!("invalid host {flag}"))?;
    if ips == "host-gateway" {
        bail!("invalid host {flag}: host-gateway is only known to the docker driver");
    }
    ips.split(',')
        .map(|ip| {
            let ip = ip
                .strip_prefix('[')
                .and_then(|ip| ip.strip_suffix(']'))
                .unwrap_or(ip);
            let ip = ip.parse().with_context(|| format!("invalid host {flag}"))?;
            Ok(hoist_engine::HostEntry {
                host: host.to_owned(),
                ip,
            })
        })
        .collect()
}

/// A size as Docker's `MemBytes` reads it: a number with an optional binary unit
/// (`b`, `k`, `m`, `g`, `t`, `p`, each optionally followed by `b` or `ib`).
fn mem_bytes(text: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits);
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!("invalid size: {text:?}"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: {text:?}"))?;
    Ok((value * (1u64 << shift) as f64) as u64)
}

/// `--cache-from` / `--cache-to`, typed.
fn cache_options(args: &BuildArgs) -> anyhow::Result<CacheOptions> {
    Ok(CacheOptions {
        imports: (args.cache_from.iter())
            .map(|spec| CacheImport::parse(spec))
            .collect::<Result<_, _>>()?,
        exports: (args.cache_to.iter())
            .map(|spec| CacheExport::parse(spec))
            .collect::<Result<_, _>>()?,
    })
}

/// The registries that `registry.insecure=true` outputs push to: for this build, the client
/// reaches them over unverified TLS or plain HTTP.
fn insecure_push_hosts(outputs: &[Output]) -> BTreeSet<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Image(image) if image.push && image.insecure => Some(&image.names),
            _ => None,
        })
        .flatten()
        .map(|name| name.domain().to_owned())
        .collect()
}

/// Refuses, before anything is built, an output that would write a tar to a terminal
/// (buildx's check and message).
fn refuse_terminal_stdout(outputs: &[Output], stdout_is_terminal: bool) -> anyhow::Result<()> {
    match outputs.iter().find(|o| o.writes_stdout()) {
        Some(output) if stdout_is_terminal => bail!(
            "dest file is required for {} exporter. refusing to write to console",
            output.type_name()
        ),
        _ => Ok(()),
    }
}

/// `-o`, `--push`, `--load` and `-t` combined as buildx combines them.
fn outputs(args: &BuildArgs) -> anyhow::Result<Vec<Output>> {
    let tags = args
        .tags
        .iter()
        .map(|t| Reference::parse_docker(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut outputs = Output::parse_all(&args.outputs)?;
    if args.push && args.load {
        bail!("push and load may not be set together at the moment");
    }
    if args.push {
        match outputs.first_mut() {
            None => outputs.push(Output::push_shorthand(&tags)),
            Some(Output::Image(image)) => image.push = true,
            Some(other) => bail!(
                "push and {:?} output can't be used together",
                other.type_name()
            ),
        }
    }
    if args.load {
        match outputs.first() {
            None => outputs.push(Output::load_shorthand(&tags)),
            Some(Output::Docker(_)) => {}
            Some(other) => bail!(
                "load and {:?} output can't be used together",
                other.type_name()
            ),
        }
    }
    if outputs.is_empty() && !tags.is_empty() {
        // No output but names: keep the image under those names in hoist's own store.
        outputs.push(Output::Image(hoist_export::ImageOutput {
            names: tags.clone(),
            store: true,
            ..hoist_export::ImageOutput::default()
        }));
    }
    // buildx adds `--annotation` to every output's attributes.
    let annotations = hoist_export::Annotations::parse_flags(&args.annotations)?;
    for output in &mut outputs {
        output.apply_tags(&tags);
        output.add_annotations(&annotations);
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_to_a_terminal_is_refused_before_building() {
        let outputs = Output::parse_all(&["type=tar,dest=-".to_owned()]).unwrap();
        let err = refuse_terminal_stdout(&outputs, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dest file is required for tar exporter. refusing to write to console"
        );
        refuse_terminal_stdout(&outputs, false).unwrap();
        let to_file = Output::parse_all(&["type=tar,dest=out.tar".to_owned()]).unwrap();
        refuse_terminal_stdout(&to_file, true).unwrap();
    }
}
