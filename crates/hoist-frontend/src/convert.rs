//! Phase two: dispatching the planned stages into a [`Graph`] and an image config, as
//! BuildKit's `dispatchStages` does. RUN is in `run.rs`, COPY/ADD in `copy.rs`; the other
//! instructions, which mostly edit the config, are here.

use std::collections::BTreeSet;

use hoist_dockerfile::ast::LineSpan;
use hoist_dockerfile::instructions::{self, Command, Instruction};
use hoist_dockerfile::lint::{json_args_recommended, LintWarning};
use hoist_graph::{FileAction, FileBase, FileOp, Graph, Mkdir, Op, Output, Owner, Source};
use hoist_oci::{EmptyObject, ImageConfig, Platform};

use crate::args::{proxy_env, EnvList};
use crate::image::{self, add_env, empty_image, go_duration, go_list, go_quoted_list, with_shell};
use crate::onbuild;
use crate::plan::{mark_reachable, Base, ImageResolver, Plan, PlannedCommand};
use crate::steps::StepCounter;
use crate::{BuildOptions, Error, Result};

/// The local name of the main build context.
pub const MAIN_CONTEXT: &str = "context";

/// The result of [`convert`].
#[derive(Debug, Clone)]
pub struct Converted {
    pub graph: Graph,
    /// The target stage's filesystem; `None` for an empty one (`FROM scratch` and only
    /// config changes).
    pub target: Option<Output>,
    /// The image config: the base image's (rootfs and history included: the exporter
    /// appends the new layers' diff ids) plus what the Dockerfile changed.
    pub config: ImageConfig,
    /// One entry per plan stage, in plan order.
    pub stages: Vec<StageInfo>,
    /// `SOURCE_DATE_EPOCH` (Unix seconds) when given: the exporter uses it as the image's
    /// creation time and to clamp file times.
    pub source_date_epoch: Option<i64>,
    /// The build checks found while dispatching the stages (BuildKit's
    /// `JSONArgsRecommended`), in dispatch order, before any `# check=` config is applied.
    pub lints: Vec<LintWarning>,
}

/// What became of one stage of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInfo {
    pub name: Option<String>,
    pub display_name: String,
    /// Whether it was built (it is reachable from the target).
    pub dispatched: bool,
    pub platform: Option<Platform>,
    pub output: Option<Output>,
    pub config: Option<ImageConfig>,
}

/// Converts a plan into a graph and the target's image config, with base images from
/// `resolver` (every request of [`Plan::images`] must be there).
pub fn convert(
    plan: &Plan,
    resolver: &dyn ImageResolver,
    opts: &BuildOptions,
) -> Result<Converted> {
    // The context source lists the paths the build reads, which are known only once every
    // stage is dispatched: convert once to learn them, and again when they restrict it.
    let first = Converter::new(plan, resolver, opts, Vec::new()).run()?;
    let follow = follow_paths(&first.1);
    if follow.is_empty() {
        return Ok(first.0);
    }
    Converter::new(plan, resolver, opts, follow)
        .run()
        .map(|(c, _)| c)
}

/// BuildKit's `normalizeContextPaths`: relative, sorted, none at all when `/` is read.
fn follow_paths(paths: &BTreeSet<String>) -> Vec<String> {
    if paths.contains("/") {
        return Vec::new();
    }
    paths
        .iter()
        .map(|p| image::clean(p.trim_start_matches('/')))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The state of one stage while it is dispatched (BuildKit's `dispatchState` + `llb.State`).
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    pub output: Option<Output>,
    pub config: ImageConfig,
    pub platform: Platform,
    /// The variables RUN sees and words expand with: the image's ENV, then ENV and ARG.
    pub env: EnvList,
    pub dir: String,
    pub user: String,
    /// The ARGs declared in the stage, with their values.
    pub build_args: Vec<(String, Option<String>)>,
    pub cmd_set: bool,
    pub ignore_cache: bool,
    /// The stage's name in step names: its name, `stage-N`, or empty when the Dockerfile
    /// has one stage.
    pub name: String,
    /// The step numbering of step names (see [`StepCounter`]).
    pub steps: StepCounter,
    /// ONBUILD instructions of this stage (triggers for stages built on it).
    pub onbuild_commands: Vec<String>,
    /// `SOURCE_DATE_EPOCH` as RFC 3339, the `created` time of history entries.
    pub created: Option<String>,
}

impl StageState {
    /// Appends a history entry (see [`image::commit`]).
    pub fn commit(&mut self, created_by: String, with_layer: bool, buildkit_suffix: bool) {
        image::commit(
            &mut self.config,
            created_by,
            self.created.clone(),
            with_layer,
            buildkit_suffix,
        );
    }
}

pub(crate) struct Converter<'a> {
    pub plan: Plan,
    pub opts: &'a BuildOptions,
    resolver: &'a dyn ImageResolver,
    pub graph: Graph,
    pub states: Vec<Option<StageState>>,
    context: Option<Output>,
    follow: Vec<String>,
    pub ctx_paths: BTreeSet<String>,
    pub proxy: Option<hoist_graph::ProxyEnv>,
    lints: Vec<LintWarning>,
}

impl<'a> Converter<'a> {
    fn new(
        plan: &Plan,
        resolver: &'a dyn ImageResolver,
        opts: &'a BuildOptions,
        follow: Vec<String>,
    ) -> Converter<'a> {
        Converter {
            plan: plan.clone(),
            opts,
            resolver,
            graph: Graph::new(),
            states: vec![None; plan.stages.len()],
            context: None,
            follow,
            ctx_paths: BTreeSet::new(),
            proxy: proxy_env(&opts.build_args),
            lints: Vec::new(),
        }
    }

    fn run(mut self) -> Result<(Converted, BTreeSet<String>)> {
        // Images and contexts named by --from are ready before any stage runs.
        for i in 0..self.plan.stages.len() {
            let stage = &self.plan.stages[i];
            if stage.reachable && !stage.is_dockerfile_stage {
                let state = self.base_state(i)?;
                self.states[i] = Some(state);
            }
        }
        let mut i = 0;
        while i < self.plan.stages.len() {
            let stage = &self.plan.stages[i];
            if stage.reachable && stage.is_dockerfile_stage {
                self.dispatch_stage(i)?;
            } else if stage.reachable && self.states[i].is_none() {
                // An image an ONBUILD trigger named.
                let state = self.base_state(i)?;
                self.states[i] = Some(state);
            }
            i += 1;
        }
        let target = self.plan.target;
        let Some(state) = self.states.get(target).cloned().flatten() else {
            return Err(Error::Option {
                message: "target stage was not built".to_string(),
            });
        };
        let config = self.finalize(state.config);
        let stages = self
            .plan
            .stages
            .iter()
            .zip(&self.states)
            .map(|(plan, state)| StageInfo {
                name: plan.name.clone(),
                display_name: plan.display_name.clone(),
                dispatched: state.is_some(),
                platform: state.as_ref().map(|s| s.platform.clone()),
                output: state.as_ref().and_then(|s| s.output),
                config: state.as_ref().map(|s| s.config.clone()),
            })
            .collect();
        Ok((
            Converted {
                graph: self.graph,
                target: state.output,
                config,
                stages,
                source_date_epoch: self.plan.epoch,
                lints: self.lints,
            },
            self.ctx_paths,
        ))
    }

    /// BuildKit's `finalizeResultImage`: labels, and the target platform in the config.
    fn finalize(&self, mut config: ImageConfig) -> ImageConfig {
        for (k, v) in &self.opts.labels {
            config.config.labels.insert(k.clone(), v.clone());
        }
        let platforms = &self.plan.platforms;
        if !platforms.implicit_target {
            let tp = &platforms.target;
            let same = tp.os == config.os && tp.architecture == config.architecture;
            config.os = tp.os.clone();
            config.architecture = tp.architecture.clone();
            if !tp.variant.is_empty() || !same {
                config.variant = (!tp.variant.is_empty()).then(|| tp.variant.clone());
            }
            if !tp.os_version.is_empty() || !same {
                config.os_version = (!tp.os_version.is_empty()).then(|| tp.os_version.clone());
            }
            if !tp.os_features.is_empty() {
                config.os_features = tp.os_features.clone();
            }
        }
        let normalized = config.platform().normalize();
        config.architecture = normalized.architecture;
        config.variant = (!normalized.variant.is_empty()).then_some(normalized.variant);
        config
    }

    /// The main context source, created on first use.
    pub fn context(&mut self) -> Result<Output> {
        if let Some(c) = self.context {
            return Ok(c);
        }
        let out = self.graph.add(
            Op::Source(Source::Local {
                name: MAIN_CONTEXT.to_string(),
                include_patterns: Vec::new(),
                exclude_patterns: self.opts.context_excludes.clone(),
                follow_paths: self.follow.clone(),
            }),
            Vec::new(),
            None,
            "[internal] load build context",
        )?;
        self.context = Some(out);
        Ok(out)
    }

    /// The state a stage starts from when its base is not another stage; the vertices it
    /// adds are located on the stage's `FROM` line (or the instruction naming the image).
    fn base_state(&mut self, index: usize) -> Result<StageState> {
        let mark = self.graph.len();
        let state = self.unlocated_base_state(index)?;
        self.graph
            .locate_since(mark, range(self.plan.stages[index].span));
        Ok(state)
    }

    fn unlocated_base_state(&mut self, index: usize) -> Result<StageState> {
        let stage = &self.plan.stages[index];
        let target = self.plan.platforms.target.clone();
        let name = stage.display_name.clone();
        let ignore_cache = self.opts.ignores_cache(stage.name.as_deref());
        let mut steps = StepCounter::for_stage(stage, self.opts);
        let (output, config, platform) = match stage.base.clone() {
            Base::Scratch => (None, empty_image(&target), target),
            Base::Context(local) => {
                let platform = stage.platform.clone().unwrap_or(target);
                let out = self.graph.add(
                    Op::Source(Source::Local {
                        name: local.clone(),
                        include_patterns: Vec::new(),
                        exclude_patterns: self
                            .opts
                            .named_context_excludes
                            .get(&local)
                            .cloned()
                            .unwrap_or_default(),
                        follow_paths: Vec::new(),
                    }),
                    Vec::new(),
                    None,
                    format!("[context {local}] load"),
                )?;
                (Some(out), empty_image(&platform), platform)
            }
            Base::Image(request) => {
                let resolved =
                    self.resolver
                        .resolved(&request)
                        .ok_or_else(|| Error::ImageNotResolved {
                            reference: request.reference.to_string(),
                            platform: request.platform.format_all(),
                        })?;
                let mut config = resolved.config.clone();
                config.created = None;
                let is_scratch = config.rootfs.diff_ids.is_empty()
                    && config.history.iter().all(|h| h.empty_layer);
                let output = if is_scratch {
                    None
                } else {
                    let pinned = request.reference.with_digest(resolved.digest.clone());
                    let step = steps.name(
                        &name,
                        self.opts.multi_platform.then_some(&request.platform),
                        None,
                        &format!("FROM {pinned}"),
                    );
                    Some(self.graph.add(
                        Op::Source(Source::Image {
                            reference: pinned.to_string(),
                            platform: request.platform.clone(),
                        }),
                        Vec::new(),
                        Some(request.platform.clone()),
                        step,
                    )?)
                };
                (output, config, request.platform)
            }
            Base::Stage(_) => {
                return Err(Error::at(
                    stage.span,
                    "a stage based on a stage has no base state of its own",
                ))
            }
        };
        Ok(StageState {
            output,
            config,
            platform,
            env: EnvList::new(),
            dir: "/".to_string(),
            user: String::new(),
            build_args: Vec::new(),
            cmd_set: false,
            ignore_cache,
            name,
            steps,
            onbuild_commands: Vec::new(),
            created: self.plan.epoch.map(image::rfc3339),
        })
    }

    fn dispatch_stage(&mut self, index: usize) -> Result<()> {
        let stage = self.plan.stages[index].clone();
        let mut triggers: Vec<String> = Vec::new();
        let mut state = match stage.base {
            Base::Stage(b) => {
                let Some(base) = self.states.get(b).cloned().flatten() else {
                    return Err(Error::at(
                        stage.span,
                        format!("base stage {b} was not built before stage {index}"),
                    ));
                };
                let mut state = base;
                state.config.config.on_build.clear();
                triggers.append(&mut state.onbuild_commands);
                state.cmd_set = false;
                state.name = stage.display_name.clone();
                state.steps = StepCounter::for_stage(&stage, self.opts);
                state.ignore_cache = self.opts.ignores_cache(stage.name.as_deref());
                state
            }
            _ => {
                let mut state = self.base_state(index)?;
                triggers.append(&mut state.config.config.on_build);
                state
            }
        };
        // PATH is always set (but on Windows, where the OS decides).
        if state.platform.os != "windows"
            && !state
                .config
                .config
                .env
                .iter()
                .any(|e| e.starts_with("PATH="))
        {
            state
                .config
                .config
                .env
                .push(format!("PATH={}", image::DEFAULT_PATH));
        }
        for entry in state.config.config.env.clone() {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            state.env.set(k, v);
        }
        if !state.config.config.working_dir.is_empty() {
            let wd = state.config.config.working_dir.clone();
            let normalized = image::normalize_workdir(&state.config.config.working_dir, &wd);
            state.config.config.working_dir = normalized.clone();
            state.dir = normalized;
        }
        if !state.config.config.user.is_empty() {
            state.user = state.config.config.user.clone();
        }

        let mut commands = Vec::new();
        for trigger in &triggers {
            let planned = onbuild::link(&mut self.plan, self.opts, trigger, stage.span)?;
            self.states.resize(self.plan.stages.len(), None);
            for source in planned.sources.iter().flatten() {
                if !self.plan.stages[*source].reachable {
                    mark_reachable(&mut self.plan.stages, *source);
                    let state = self.base_state(*source)?;
                    self.states[*source] = Some(state);
                }
            }
            commands.push(planned);
        }
        // BuildKit counts the triggers only once the base is resolved, after its FROM was
        // named, so the FROM of a stage with triggers shows a smaller total than its steps.
        state.steps.total += commands.len();
        let triggers = commands.len();
        commands.extend(stage.commands.iter().cloned());

        for (i, planned) in commands.iter().enumerate() {
            state.steps.onbuild = i < triggers;
            let mark = self.graph.len();
            self.dispatch(&mut state, planned)
                .map_err(|e| e.located(planned.command.span))?;
            self.graph.locate_since(mark, range(planned.command.span));
        }
        self.states[index] = Some(state);
        Ok(())
    }

    /// BuildKit's `JSONArgsRecommended` for a shell-form `CMD`/`ENTRYPOINT`: only when the
    /// image config names no `SHELL` (one set on purpose is the user's choice).
    fn check_json_args(&mut self, state: &StageState, command: &Command) {
        if state.config.config.shell.is_empty() {
            let keyword = command.source.split_whitespace().next().unwrap_or_default();
            self.lints
                .push(json_args_recommended(keyword, command.span));
        }
    }

    fn dispatch(&mut self, state: &mut StageState, planned: &PlannedCommand) -> Result<()> {
        let command = &planned.command;
        let lexer = self.plan.lexer;
        let command = match &command.instruction {
            Instruction::Arg(_) => command.clone(),
            _ => {
                let env = state.env.clone();
                command.expand(&|word: &str| lexer.process_word(word, &env))?
            }
        };
        let span = command.span;
        match &command.instruction {
            Instruction::From(_) => {}
            Instruction::Env(env) => {
                let mut message = String::from("ENV");
                for kv in &env.vars {
                    message.push_str(&format!(" {}={}", kv.key, kv.value));
                    state.env.set(&kv.key, &kv.value);
                    add_env(&mut state.config.config.env, &kv.key, &kv.value);
                }
                state.commit(message, false, false);
            }
            Instruction::Run(run) => self.dispatch_run(state, run, &planned.sources, &command)?,
            Instruction::Workdir(w) => self.dispatch_workdir(state, &w.path, &command)?,
            Instruction::Add(add) => self.dispatch_add(state, add, &command)?,
            Instruction::Copy(copy) => self.dispatch_copy(
                state,
                copy,
                planned.sources.first().copied().flatten(),
                &command,
            )?,
            Instruction::Label(label) => {
                let mut message = String::from("LABEL");
                for kv in &label.labels {
                    state
                        .config
                        .config
                        .labels
                        .insert(kv.key.clone(), kv.value.clone());
                    message.push_str(&format!(" {}={}", kv.key, kv.value));
                }
                state.commit(message, false, false);
            }
            Instruction::OnBuild(onbuild) => {
                state
                    .config
                    .config
                    .on_build
                    .push(onbuild.expression.clone());
                state.onbuild_commands.push(onbuild.expression.clone());
            }
            Instruction::Cmd(cmd) => {
                let mut args = cmd.line.words();
                if cmd.line.prepends_shell() {
                    self.check_json_args(state, &command);
                    args = with_shell(&state.config, &args);
                }
                state.config.config.cmd = args.clone();
                state.config.config.args_escaped = true;
                state.cmd_set = true;
                state.commit(format!("CMD {}", go_quoted_list(&args)), false, false);
            }
            Instruction::Entrypoint(ep) => {
                let mut args = ep.line.words();
                if ep.line.prepends_shell() {
                    self.check_json_args(state, &command);
                    args = with_shell(&state.config, &args);
                }
                state.config.config.entrypoint = args.clone();
                if !state.cmd_set {
                    state.config.config.cmd.clear();
                }
                state.commit(
                    format!("ENTRYPOINT {}", go_quoted_list(&args)),
                    false,
                    false,
                );
            }
            Instruction::Healthcheck(hc) => {
                let health = match hc {
                    instructions::Healthcheck::None => hoist_oci::Healthcheck {
                        test: vec!["NONE".to_string()],
                        ..Default::default()
                    },
                    instructions::Healthcheck::Cmd(c) => hoist_oci::Healthcheck {
                        test: c.test.clone(),
                        interval: nanos(c.interval),
                        timeout: nanos(c.timeout),
                        start_period: nanos(c.start_period),
                        start_interval: nanos(c.start_interval),
                        retries: i64::from(c.retries),
                    },
                };
                let (interval, timeout, start_period, start_interval, retries) = match hc {
                    instructions::Healthcheck::None => Default::default(),
                    instructions::Healthcheck::Cmd(c) => (
                        c.interval,
                        c.timeout,
                        c.start_period,
                        c.start_interval,
                        c.retries,
                    ),
                };
                let message = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    go_list(&health.test),
                    go_duration(interval),
                    go_duration(timeout),
                    go_duration(start_period),
                    go_duration(start_interval),
                    retries
                );
                state.config.config.healthcheck = Some(health);
                state.commit(message, false, false);
            }
            Instruction::Expose(expose) => {
                let mut ports = Vec::new();
                for word in &expose.ports {
                    for port in word.split_whitespace() {
                        ports.extend(parse_port(port).map_err(|m| Error::at(span, m))?);
                    }
                }
                for port in &ports {
                    state
                        .config
                        .config
                        .exposed_ports
                        .insert(port.clone(), EmptyObject {});
                }
                state.commit(format!("EXPOSE {}", go_list(&ports)), false, false);
            }
            Instruction::User(user) => {
                state.user = user.user.clone();
                state.config.config.user = user.user.clone();
                state.commit(format!("USER {}", user.user), false, false);
            }
            Instruction::Volume(volume) => {
                for v in &volume.volumes {
                    if v.is_empty() {
                        return Err(Error::at(
                            span,
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    state
                        .config
                        .config
                        .volumes
                        .insert(v.clone(), EmptyObject {});
                }
                state.commit(format!("VOLUME {}", go_list(&volume.volumes)), false, false);
            }
            Instruction::StopSignal(signal) => {
                check_signal(&signal.signal).map_err(|m| Error::at(span, m))?;
                state.config.config.stop_signal = signal.signal.clone();
                state.commit(format!("STOPSIGNAL {}", signal.signal), false, false);
            }
            Instruction::Shell(shell) => {
                state.config.config.shell = shell.shell.clone();
                state.commit(format!("SHELL {}", go_list(&shell.shell)), false, false);
            }
            Instruction::Maintainer(m) => {
                state.config.author = Some(m.maintainer.clone());
                state.commit(format!("MAINTAINER {}", m.maintainer), false, false);
            }
            Instruction::Arg(arg) => self.dispatch_arg(state, arg)?,
        }
        Ok(())
    }

    /// BuildKit's `dispatchArg`.
    fn dispatch_arg(&mut self, state: &mut StageState, arg: &instructions::Arg) -> Result<()> {
        let mut parts = Vec::new();
        for def in &arg.args {
            let key = def.key.clone();
            let provided = self.opts.build_args.get(&key).cloned();
            let mut value = def.value.clone();
            if value.is_none() && provided.is_none() {
                if let Some(global) = self.plan.global_args.get(&key) {
                    value = Some(global.to_string());
                }
            }
            if let Some(v) = provided {
                value = Some(v);
            } else if def.value.is_some() {
                if let Some(default) = &value {
                    value = Some(self.plan.lexer.process_word(default, &state.env)?);
                }
            }
            if let Some(v) = &value {
                if key != "BUILDKIT_SBOM_SCAN_CONTEXT" && key != "BUILDKIT_SBOM_SCAN_STAGE" {
                    state.env.set(&key, v);
                }
            }
            state.build_args.push((key.clone(), value.clone()));
            parts.push(match &value {
                Some(v) => format!("{key}={v}"),
                None => key,
            });
        }
        state.commit(format!("ARG {}", parts.join(" ")), false, false);
        Ok(())
    }

    /// BuildKit's `dispatchWorkdir` with commit: the directory is created (owned by the
    /// current user) unless it is `/`.
    fn dispatch_workdir(
        &mut self,
        state: &mut StageState,
        path: &str,
        command: &Command,
    ) -> Result<()> {
        let wd = image::normalize_workdir(&state.config.config.working_dir, path);
        state.config.config.working_dir = wd.clone();
        state.dir = wd.clone();
        let mut with_layer = false;
        if wd != "/" {
            let owner = (!state.config.config.user.is_empty())
                .then(|| Owner::parse(&state.config.config.user));
            let (base, inputs) = match state.output {
                Some(o) => (FileBase::Input(0), vec![o]),
                None => (FileBase::Scratch, Vec::new()),
            };
            let out = self.graph.add_with_cache(
                Op::File(FileOp {
                    base,
                    actions: vec![FileAction::Mkdir(Mkdir {
                        path: wd.clone(),
                        mode: 0o755,
                        make_parents: true,
                        owner,
                        created: self.plan.epoch,
                    })],
                }),
                inputs,
                None,
                self.vertex_name(state, &command.source),
                state.ignore_cache,
            )?;
            state.output = Some(out);
            with_layer = true;
        }
        state.commit(format!("WORKDIR {wd}"), with_layer, false);
        Ok(())
    }

    /// `[stage 2/5] INSTRUCTION text`, what progress shows for the vertex of the next step
    /// of `state` (each call takes the next number).
    pub fn vertex_name(&self, state: &mut StageState, source: &str) -> String {
        self.step_name(state, &uppercase_keyword(source))
    }

    /// [`Converter::vertex_name`] for a text already in shape.
    pub fn step_name(&self, state: &mut StageState, text: &str) -> String {
        let platform = self.opts.multi_platform.then_some(&state.platform);
        state
            .steps
            .name(&state.name, platform, Some(&state.env), text)
    }
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// BuildKit's `uppercaseCmd`.
pub(crate) fn uppercase_keyword(text: &str) -> String {
    match text.split_once(' ') {
        Some((k, rest)) => format!("{} {rest}", k.to_uppercase()),
        None => text.to_uppercase(),
    }
}

/// A Dockerfile span as the graph's source range.
fn range(span: LineSpan) -> hoist_graph::SourceRange {
    hoist_graph::SourceRange {
        start: span.start,
        end: span.end,
    }
}

/// One EXPOSE word → `port/proto` entries (ranges expanded).
fn parse_port(raw: &str) -> std::result::Result<Vec<String>, String> {
    let invalid = || format!("invalid port: {raw:?}");
    let (port_part, proto) = match raw.rsplit_once('/') {
        Some((p, proto)) if !proto.is_empty() => (p, proto.to_lowercase()),
        Some(_) => return Err(invalid()),
        None => (raw, "tcp".to_string()),
    };
    // ip:hostPort:containerPort — only the container port matters.
    let container = port_part.rsplit(':').next().unwrap_or(port_part);
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (a, b),
        None => (container, container),
    };
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {container}"))
    };
    let (start, end) = (parse(start)?, parse(end)?);
    if end < start {
        return Err(format!("invalid containerPort: {container}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Moby's `signal.ParseSignal`: a number, or a known name with or without `SIG`.
fn check_signal(signal: &str) -> std::result::Result<(), String> {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
        "XFSZ",
    ];
    if let Ok(n) = signal.parse::<u32>() {
        return if n == 0 {
            Err(format!("invalid signal: {signal}"))
        } else {
            Ok(())
        };
    }
    let name = signal.trim_start_matches("SIG");
    let rt = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"));
    let known = NAMES.contains(&name)
        || rt.is_some_and(|r| {
            r.is_empty() || r.trim_start_matches(['+', '-']).parse::<u8>().is_ok()
        });
    if known {
        Ok(())
    } else {
        Err(format!("invalid signal: {signal}"))
    }
}
