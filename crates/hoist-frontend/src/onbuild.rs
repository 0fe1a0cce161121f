//! ONBUILD triggers: a base image's `config.OnBuild` commands, run first in every stage built
//! on it (BuildKit's `dispatchOnBuildTriggers`). Parsing them, linking their `--from`s into
//! the plan, and listing the images they name that still need resolving all live here.

use hoist_dockerfile::ast::LineSpan;
use hoist_dockerfile::instructions::{self, Command};
use hoist_dockerfile::parser;

use crate::plan::{Base, ImageRequest, ImageResolver, Plan, PlannedCommand, StagePlan};
use crate::{BuildOptions, Error, Result};

/// Parses an ONBUILD trigger, located on the `FROM` line of the stage that runs it.
pub(crate) fn parse(trigger: &str, span: LineSpan) -> Result<Command> {
    let parsed = parser::parse(trigger).map_err(|e| Error::at(span, e.to_string()))?;
    if parsed.children.len() != 1 {
        return Err(Error::at(
            span,
            "onbuild trigger should be a single expression",
        ));
    }
    let node = &parsed.children[0];
    let mut command =
        instructions::parse_command(node).map_err(|e| Error::from(e).located(span))?;
    command.span = span;
    Ok(command)
}

/// Parses `trigger` and links its `--from`s into `plan` (adding entries for the images it
/// names), ready to dispatch.
pub(crate) fn link(
    plan: &mut Plan,
    opts: &BuildOptions,
    trigger: &str,
    span: LineSpan,
) -> Result<PlannedCommand> {
    let command = parse(trigger, span)?;
    let sources = plan.link_sources(opts, &command)?;
    Ok(PlannedCommand { command, sources })
}

impl Plan {
    /// Images the ONBUILD triggers of already resolved base images name (`ONBUILD COPY
    /// --from=img`) that `resolver` does not have yet. Resolve them too before
    /// [`crate::convert`]; an empty list means everything is there.
    pub fn pending_images(
        &self,
        resolver: &dyn ImageResolver,
        opts: &BuildOptions,
    ) -> Result<Vec<ImageRequest>> {
        let mut scratch = self.clone();
        let mut pending = Vec::new();
        for stage in self.stages.iter().filter(|s| s.reachable) {
            let Base::Image(request) = &stage.base else {
                continue;
            };
            let Some(resolved) = resolver.resolved(request) else {
                continue;
            };
            for trigger in &resolved.config.config.on_build {
                let planned = link(&mut scratch, opts, trigger, stage.span)?;
                for source in planned.sources.into_iter().flatten() {
                    if let Some(StagePlan {
                        base: Base::Image(needed),
                        is_dockerfile_stage: false,
                        ..
                    }) = scratch.stages.get(source)
                    {
                        if resolver.resolved(needed).is_none() && !pending.contains(needed) {
                            pending.push(needed.clone());
                        }
                    }
                }
            }
        }
        Ok(pending)
    }
}
