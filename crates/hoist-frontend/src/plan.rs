//! Phase one: which stages the target needs and which base images must be resolved.
//!
//! [`plan`] reads the stages, expands every `FROM` with the global ARGs, links stages to
//! their bases and to the stages and images their `COPY --from` / `RUN --mount from=` read,
//! rejects cycles, and lists the images the reachable stages need ([`Plan::images`]). The
//! caller resolves those (registry, local store) and hands the results to
//! [`crate::convert`].

use std::collections::{BTreeMap, BTreeSet};

use hoist_dockerfile::ast::{Dockerfile, LineSpan};
use hoist_dockerfile::instructions::{self, Command, Instruction, MetaArg, Stage};
use hoist_dockerfile::shell::{Env, Lexer};
use hoist_oci::{Digest, ImageConfig, Platform, Reference};

use crate::args::{default_args, meta_args, EnvList, Platforms};
use crate::{BuildOptions, Error, NamedContext, Result};

/// The name BuildKit gives the empty base.
pub(crate) const SCRATCH: &str = "scratch";

/// A base image to resolve: a reference (normalised, `:latest` added when it has neither tag
/// nor digest) for a platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRequest {
    pub reference: Reference,
    pub platform: Platform,
}

/// What the caller found for an [`ImageRequest`]: the manifest digest it resolved to and the
/// image's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub digest: Digest,
    pub config: ImageConfig,
}

/// Where [`crate::convert`] finds resolved images. A `BTreeMap` keyed by request is one.
pub trait ImageResolver {
    fn resolved(&self, request: &ImageRequest) -> Option<&ResolvedImage>;
}

impl ImageResolver for BTreeMap<ImageRequest, ResolvedImage> {
    fn resolved(&self, request: &ImageRequest) -> Option<&ResolvedImage> {
        self.get(request)
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a handful per build; boxing would only add noise
pub enum Base {
    /// `FROM scratch`.
    Scratch,
    /// `FROM <earlier stage>`: that stage's index in [`Plan::stages`].
    Stage(usize),
    /// A registry image.
    Image(ImageRequest),
    /// A local named context (`--build-context name=dir`).
    Context(String),
}

/// One stage of the plan: a Dockerfile stage, or an image that `COPY --from` / `RUN --mount
/// from=` names (those come after the Dockerfile's stages and have no commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// The stage's name (lower-cased) when it has one.
    pub name: Option<String>,
    /// The name in messages: the name, `stage-N` for unnamed ones, empty when the
    /// Dockerfile has a single stage.
    pub display_name: String,
    pub base: Base,
    /// `FROM --platform`, expanded and parsed.
    pub platform: Option<Platform>,
    /// The `FROM` line (or the instruction naming the image).
    pub span: LineSpan,
    /// Needed by the target.
    pub reachable: bool,
    /// False for images named by `COPY --from` / `RUN --mount from=`.
    pub is_dockerfile_stage: bool,
    pub(crate) commands: Vec<PlannedCommand>,
    /// Stages this one reads with `--from`, with the reading instruction's lines.
    pub(crate) deps: Vec<(usize, LineSpan)>,
}

/// A command with the plan stages its `--from`s refer to (one per source / mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedCommand {
    pub command: Command,
    pub sources: Vec<Option<usize>>,
}

/// The result of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub stages: Vec<StagePlan>,
    /// The index of the target stage.
    pub target: usize,
    /// Images the reachable stages need, without duplicates.
    pub images: Vec<ImageRequest>,
    pub(crate) global_args: EnvList,
    pub(crate) lexer: Lexer,
    pub(crate) platforms: Platforms,
    /// `SOURCE_DATE_EPOCH` in Unix seconds, from the build args or a global ARG default.
    pub(crate) epoch: Option<i64>,
}

/// Plans the build of `dockerfile` with `opts` (see the module docs).
pub fn plan(dockerfile: &Dockerfile, opts: &BuildOptions) -> Result<Plan> {
    let (meta, stages) = instructions::parse_stages(dockerfile)?;
    plan_stages(&meta, &stages, dockerfile.escape, opts)
}

/// [`plan`] for stages already read with [`instructions::parse_stages`]; `escape` is the
/// Dockerfile's escape character.
pub fn plan_stages(
    meta: &[MetaArg],
    stages: &[Stage],
    escape: char,
    opts: &BuildOptions,
) -> Result<Plan> {
    if stages.is_empty() {
        return Err(Error::Option {
            message: "dockerfile contains no stages to build".to_string(),
        });
    }
    let lexer = Lexer::new(escape);
    let platforms = Platforms::from_options(opts);
    let target_name = match &opts.target {
        Some(t) => t.clone(),
        None => stages
            .last()
            .and_then(|s| s.name.clone())
            .unwrap_or_default(),
    };
    let defaults = default_args(&platforms, &opts.build_args, &target_name);
    let global_args = meta_args(defaults, &lexer, meta, &opts.build_args)?;
    // Only the numeric form: BuildKit also accepts `context` and named contexts, whose
    // times are read from the files.
    let epoch = opts
        .build_args
        .get("SOURCE_DATE_EPOCH")
        .map(String::as_str)
        .or_else(|| global_args.get("SOURCE_DATE_EPOCH"))
        .and_then(|v| v.parse::<i64>().ok());

    let mut planner = Planner {
        opts,
        lexer,
        platforms: &platforms,
        global_args: &global_args,
        stages: Vec::new(),
        by_name: BTreeMap::new(),
    };
    for stage in stages {
        planner.add_stage(stage)?;
    }
    let target = match &opts.target {
        None => stages.len() - 1,
        Some(name) => planner
            .by_name
            .get(&name.to_lowercase())
            .copied()
            .ok_or_else(|| Error::TargetNotFound {
                target: name.clone(),
                suggestion: String::new(),
            })?,
    };
    planner.link_commands(stages)?;
    check_cycles(&planner.stages)?;
    if planner.stages.len() == 1 {
        planner.stages[0].display_name.clear();
    }
    mark_reachable(&mut planner.stages, target);

    let mut images = Vec::new();
    let mut seen = BTreeSet::new();
    for stage in planner.stages.iter().filter(|s| s.reachable) {
        if let Base::Image(request) = &stage.base {
            if seen.insert(request.clone()) {
                images.push(request.clone());
            }
        }
    }
    let stages = planner.stages;
    Ok(Plan {
        stages,
        target,
        images,
        global_args,
        lexer,
        platforms,
        epoch,
    })
}

struct Planner<'a> {
    opts: &'a BuildOptions,
    lexer: Lexer,
    platforms: &'a Platforms,
    global_args: &'a EnvList,
    stages: Vec<StagePlan>,
    /// Stage names (lower-cased) seen so far.
    by_name: BTreeMap<String, usize>,
}

impl Planner<'_> {
    /// BuildKit's `buildDispatchStates` + `addState` for one Dockerfile stage.
    fn add_stage(&mut self, stage: &Stage) -> Result<()> {
        let span = stage.span;
        let base_name = self
            .lexer
            .process_word(&stage.base_name, self.global_args)
            .map_err(|e| Error::from(e).located(span))?;
        if base_name.is_empty() {
            return Err(Error::at(
                span,
                format!("base name ({}) should not be blank", stage.base_name),
            ));
        }
        let platform = match &stage.platform {
            None => None,
            Some(expr) => Some(self.platform(expr, span)?),
        };
        let index = self.stages.len();
        let display_name = match &stage.name {
            Some(name) => name.clone(),
            None => format!("stage-{index}"),
        };
        // A named context replaces the stage of the same name entirely.
        let replaced = stage
            .name
            .as_ref()
            .and_then(|n| self.opts.named_contexts.get(n));
        let base = match replaced {
            Some(context) => self.context_base(context, platform.as_ref(), span)?,
            None => match self.by_name.get(&base_name) {
                Some(&i) => Base::Stage(i),
                None => self.image_base(&base_name, platform.as_ref(), span)?,
            },
        };
        let commands = if replaced.is_some() {
            Vec::new()
        } else {
            stage
                .commands
                .iter()
                .map(|c| PlannedCommand {
                    command: c.clone(),
                    sources: Vec::new(),
                })
                .collect()
        };
        self.stages.push(StagePlan {
            name: stage.name.clone(),
            display_name,
            base,
            platform,
            span,
            reachable: false,
            is_dockerfile_stage: true,
            commands,
            deps: Vec::new(),
        });
        if let Some(name) = &stage.name {
            self.by_name.insert(name.to_lowercase(), index);
        }
        Ok(())
    }

    fn platform(&self, expr: &str, span: LineSpan) -> Result<Platform> {
        let value = self
            .lexer
            .process_word(expr, self.global_args)
            .map_err(|e| {
                Error::at(
                    span,
                    format!("failed to process arguments for platform {expr}: {e}"),
                )
            })?;
        if value.is_empty() {
            return Err(Error::at(
                span,
                format!("empty platform value from expression {expr}"),
            ));
        }
        Platform::parse_with_host(&value, &self.platforms.build)
            .map(|p| p.normalize())
            .map_err(|e| Error::at(span, format!("failed to parse platform {expr}: {e}")))
    }

    /// The base for a name that is not a stage: scratch, a named context or an image.
    fn image_base(&self, name: &str, platform: Option<&Platform>, span: LineSpan) -> Result<Base> {
        if let Some(context) = self.opts.named_contexts.get(name) {
            return self.context_base(context, platform, span);
        }
        if name == SCRATCH {
            return Ok(Base::Scratch);
        }
        self.image_request(name, platform, span).map(Base::Image)
    }

    fn context_base(
        &self,
        context: &NamedContext,
        platform: Option<&Platform>,
        span: LineSpan,
    ) -> Result<Base> {
        match context {
            NamedContext::Local(name) => Ok(Base::Context(name.clone())),
            NamedContext::OciLayout(layout) => Err(Error::at(
                span,
                format!("{layout} was not imported into the build's store before planning"),
            )),
            NamedContext::Image(reference) => self
                .image_request(reference, platform, span)
                .map(Base::Image),
        }
    }

    fn image_request(
        &self,
        name: &str,
        platform: Option<&Platform>,
        span: LineSpan,
    ) -> Result<ImageRequest> {
        let reference = Reference::parse_normalized(name)
            .map_err(|e| Error::at(span, format!("failed to parse stage name {name:?}: {e}")))?
            .tag_name_only();
        Ok(ImageRequest {
            reference,
            platform: platform.unwrap_or(&self.platforms.target).clone(),
        })
    }

    /// BuildKit's `buildStageDependencyGraph`: resolves every `--from` of every stage.
    fn link_commands(&mut self, stages: &[Stage]) -> Result<()> {
        for (index, _) in stages.iter().enumerate() {
            for c in 0..self.stages[index].commands.len() {
                let command = self.stages[index].commands[c].command.clone();
                let sources = self.command_sources(&command)?;
                for source in sources.iter().flatten() {
                    let deps = &mut self.stages[index].deps;
                    if !deps.iter().any(|(d, _)| d == source) {
                        deps.push((*source, command.span));
                    }
                }
                self.stages[index].commands[c].sources = sources;
            }
        }
        Ok(())
    }

    /// The plan stages a command reads (BuildKit's `toCommand` + `detectRunMount`).
    pub(crate) fn command_sources(&mut self, command: &Command) -> Result<Vec<Option<usize>>> {
        match &command.instruction {
            Instruction::Copy(copy) => {
                let Some(from) = &copy.from else {
                    return Ok(Vec::new());
                };
                let unexpanded = self
                    .lexer
                    .process_word(from, &Env::new())
                    .map_err(|e| Error::from(e).located(command.span))?;
                if &unexpanded != from {
                    return Err(Error::at(
                        command.span,
                        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    ));
                }
                let source = match from.parse::<i64>() {
                    Ok(i) => {
                        if i < 0 || i as usize >= self.stages.len() {
                            return Err(Error::at(
                                command.span,
                                format!("invalid stage index {i}"),
                            ));
                        }
                        i as usize
                    }
                    Err(_) => self.stage_or_image(from, command.span)?,
                };
                Ok(vec![Some(source)])
            }
            Instruction::Run(run) => run
                .mounts
                .iter()
                .map(|m| match &m.from {
                    Some(from) if !from.is_empty() => {
                        self.stage_or_image(from, command.span).map(Some)
                    }
                    _ => Ok(None),
                })
                .collect(),
            _ => Ok(Vec::new()),
        }
    }

    /// A stage by name, or a plan entry for the image (or named context) `name`.
    fn stage_or_image(&mut self, name: &str, span: LineSpan) -> Result<usize> {
        if let Some(&i) = self.by_name.get(&name.to_lowercase()) {
            return Ok(i);
        }
        let base = self.image_base(name, None, span)?;
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| !s.is_dockerfile_stage && s.base == base)
        {
            return Ok(i);
        }
        self.stages.push(StagePlan {
            name: None,
            display_name: name.to_string(),
            base,
            platform: None,
            span,
            reachable: false,
            is_dockerfile_stage: false,
            commands: Vec::new(),
            deps: Vec::new(),
        });
        Ok(self.stages.len() - 1)
    }
}

impl Plan {
    /// The plan stages `command`'s `--from`s read, adding entries for images (or named
    /// contexts) not in the plan yet: linking a command that was not in the Dockerfile
    /// (an ONBUILD trigger of a base image, see [`crate::onbuild`]).
    pub(crate) fn link_sources(
        &mut self,
        opts: &BuildOptions,
        command: &Command,
    ) -> Result<Vec<Option<usize>>> {
        let by_name = self
            .stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.name.clone().map(|n| (n, i)))
            .collect();
        let mut planner = Planner {
            opts,
            lexer: self.lexer,
            platforms: &self.platforms,
            global_args: &self.global_args,
            stages: std::mem::take(&mut self.stages),
            by_name,
        };
        let result = planner.command_sources(command);
        self.stages = planner.stages;
        result
    }
}

/// BuildKit's `validateCircularDependency`.
fn check_cycles(stages: &[StagePlan]) -> Result<()> {
    fn visit(
        stages: &[StagePlan],
        state: usize,
        visited: &mut [bool],
        path: &mut [bool],
        first: Option<LineSpan>,
    ) -> Option<LineSpan> {
        if visited[state] {
            return None;
        }
        visited[state] = true;
        path[state] = true;
        for (dep, span) in &stages[state].deps {
            let first = first.or(Some(*span));
            if path[*dep] {
                return first;
            }
            if let Some(found) = visit(stages, *dep, visited, path, first) {
                return Some(found);
            }
        }
        path[state] = false;
        None
    }
    let mut visited = vec![false; stages.len()];
    let mut path = vec![false; stages.len()];
    for (i, stage) in stages.iter().enumerate() {
        if let Some(span) = visit(stages, i, &mut visited, &mut path, None) {
            return Err(Error::at(
                span,
                format!(
                    "circular dependency detected on stage: {}",
                    stage.display_name
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn mark_reachable(stages: &mut [StagePlan], target: usize) {
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        let Some(stage) = stages.get_mut(i) else {
            continue;
        };
        if stage.reachable {
            continue;
        }
        stage.reachable = true;
        if let Base::Stage(b) = stage.base {
            stack.push(b);
        }
        stack.extend(stage.deps.iter().map(|(d, _)| *d));
    }
}

impl Plan {
    /// The target stage.
    pub fn target_stage(&self) -> &StagePlan {
        &self.stages[self.target]
    }

    /// The platform the conversion builds for.
    pub fn target_platform(&self) -> &Platform {
        &self.platforms.target
    }
}
