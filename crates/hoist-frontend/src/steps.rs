//! Step names as BuildKit's dockerfile2llb makes them for progress: `[base 2/3] RUN make`,
//! `[linux/arm64 stage-1 1/2] FROM ...`, `[b 2/4] ONBUILD RUN ...`. [`StepCounter`] numbers a
//! stage's steps. Names are for progress and errors only: vertex digests never include them.

use hoist_oci::Platform;

use crate::args::EnvList;
use crate::plan::{Base, StagePlan};
use crate::BuildOptions;
use hoist_dockerfile::instructions::Instruction;

/// BuildKit's step numbering (`cmdIndex`/`cmdTotal` and `prefixCommand` of dockerfile2llb):
/// a stage's steps are numbered `i/n`, where `n` counts its `FROM` of an image (not of
/// `scratch` nor of another stage), its `ADD`, `COPY`, `RUN` and `WORKDIR` instructions and,
/// once known, the ONBUILD triggers it runs. Only steps that make a vertex take a number
/// (`WORKDIR /` counts in `n` but takes none); a stage with `n == 0` names its steps
/// without a prefix. Names are for progress only: they are not part of vertex digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StepCounter {
    /// The steps numbered so far.
    pub index: usize,
    /// `n`.
    pub total: usize,
    /// The step being named comes from an ONBUILD trigger (`[s 2/3] ONBUILD RUN ...`).
    pub onbuild: bool,
}

impl StepCounter {
    /// The counter of a planned stage, triggers not counted yet.
    pub(crate) fn for_stage(stage: &StagePlan, opts: &BuildOptions) -> StepCounter {
        if !stage.is_dockerfile_stage
            || stage
                .name
                .as_ref()
                .is_some_and(|n| opts.named_contexts.contains_key(n))
        {
            // Images named by `--from`, and stages a named context replaces, have no steps.
            return StepCounter::default();
        }
        let from = usize::from(matches!(stage.base, Base::Image(_) | Base::Context(_)));
        let steps = stage
            .commands
            .iter()
            .filter(|c| {
                matches!(
                    c.command.instruction,
                    Instruction::Add(_)
                        | Instruction::Copy(_)
                        | Instruction::Run(_)
                        | Instruction::Workdir(_)
                )
            })
            .count();
        StepCounter {
            index: 0,
            total: from + steps,
            onbuild: false,
        }
    }

    /// BuildKit's `prefixCommand`: `text` with `[platform stage i/n] ` before it, taking the
    /// next number. `platform` is given in multi-platform builds; `env` (the step's
    /// variables) adds `->arch` when `TARGETPLATFORM` is declared and differs from it. The
    /// number is right-aligned to the width of `n`.
    pub fn name(
        &mut self,
        stage: &str,
        platform: Option<&Platform>,
        env: Option<&EnvList>,
        text: &str,
    ) -> String {
        if self.total == 0 {
            return text.to_owned();
        }
        let mut out = String::from("[");
        if let Some(platform) = platform {
            out.push_str(&platform.format_all());
            if let Some(target) = env.and_then(target_platform_from_env) {
                out.push_str(&cross_suffix(platform, &target));
            }
            out.push(' ');
        }
        if !stage.is_empty() {
            out.push_str(stage);
            out.push(' ');
        }
        self.index += 1;
        let width = self.total.to_string().len();
        out.push_str(&format!("{:>width$}/{}] ", self.index, self.total));
        if self.onbuild {
            out.push_str("ONBUILD ");
        }
        out.push_str(text);
        out
    }

    /// The number the last named step took back, for a vertex that shares its step's
    /// number (the `LINK` merge of `COPY --link`).
    pub fn reuse_last(&mut self) {
        self.index = self.index.saturating_sub(1);
    }
}

/// BuildKit's `platformFromEnv`: the platform the `TARGET*` variables in scope describe.
fn target_platform_from_env(env: &EnvList) -> Option<Platform> {
    if let Some(p) = env
        .get("TARGETPLATFORM")
        .and_then(|v| Platform::parse(v).ok())
    {
        return Some(p);
    }
    let (os, arch, variant) = (
        env.get("TARGETOS"),
        env.get("TARGETARCH"),
        env.get("TARGETVARIANT"),
    );
    if os.is_none() && arch.is_none() && variant.is_none() {
        return None;
    }
    Some(Platform {
        os: os.unwrap_or_default().to_owned(),
        architecture: arch.unwrap_or_default().to_owned(),
        variant: variant.unwrap_or_default().to_owned(),
        ..Platform::default()
    })
}

/// BuildKit's `formatTargetPlatform`: `->arch[/variant]` (or `->os/arch`) when a step of a
/// `base`-platform stage builds for another platform.
fn cross_suffix(base: &Platform, target: &Platform) -> String {
    let mut target = target.clone();
    if target.os.is_empty() {
        target.os.clone_from(&base.os);
    }
    if target.architecture.is_empty() {
        target.architecture.clone_from(&base.architecture);
    }
    let p = target.normalize();
    if p.os == base.os && p.architecture != base.architecture {
        if p.variant.is_empty() {
            format!("->{}", p.architecture)
        } else {
            format!("->{}/{}", p.architecture, p.variant)
        }
    } else if p.os != base.os {
        format!("->{}", p.format_all())
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hoist_oci::{Digest, ImageConfig};

    use crate::{convert, plan, BuildOptions, ImageRequest, ResolvedImage};

    use super::*;

    /// The vertex names of a conversion in graph order, image digests cut to `@sha256:…`.
    fn names(dockerfile: &str, opts: &BuildOptions) -> Vec<String> {
        let df = hoist_dockerfile::parser::parse(dockerfile).unwrap();
        let plan = plan(&df, opts).unwrap();
        let resolved: BTreeMap<ImageRequest, ResolvedImage> = plan
            .images
            .iter()
            .map(|r| {
                let mut config = ImageConfig::new(&r.platform);
                config.rootfs.diff_ids = vec![Digest::sha256_of(b"layer")];
                if r.reference.path().contains("onbuild") {
                    config.config.on_build = vec!["RUN echo triggered".into(), "WORKDIR /w".into()];
                }
                let digest = Digest::sha256_of(r.reference.to_string().as_bytes());
                (r.clone(), ResolvedImage { digest, config })
            })
            .collect();
        let converted = convert(&plan, &resolved, opts).unwrap();
        converted
            .graph
            .vertices()
            .map(|(_, v)| match v.name.split_once("@sha256:") {
                Some((head, _)) => format!("{head}@sha256:…"),
                None => v.name.clone(),
            })
            .collect()
    }

    fn options() -> BuildOptions {
        BuildOptions::new(Platform::new("linux", "amd64"))
    }

    fn target(name: &str) -> BuildOptions {
        let mut o = options();
        o.target = Some(name.into());
        o
    }

    const MULTI: &str = "FROM localhost:5000/busybox:latest AS base\n\
        RUN echo one\n\
        ENV A=1\n\
        WORKDIR /app\n\
        FROM base AS second\n\
        COPY a b\n\
        FROM scratch\n\
        COPY --from=base /bin/busybox /busybox\n\
        LABEL x=y\n\
        RUN /busybox true\n";

    #[test]
    fn steps_are_numbered_per_stage_with_from_counted() {
        assert_eq!(
            names(MULTI, &target("base")),
            [
                "[base 1/3] FROM localhost:5000/busybox:latest@sha256:…",
                "[base 2/3] RUN echo one",
                "[base 3/3] WORKDIR /app",
            ]
        );
    }

    #[test]
    fn stage_on_a_stage_does_not_count_its_from() {
        let names = names(MULTI, &target("second"));
        assert_eq!(
            names.last().map(String::as_str),
            Some("[second 1/1] COPY a b")
        );
    }

    #[test]
    fn unnamed_scratch_stage_is_stage_n_without_from() {
        let names = names(MULTI, &options());
        assert_eq!(
            &names[names.len() - 2..],
            [
                "[stage-2 1/2] COPY --from=base /bin/busybox /busybox",
                "[stage-2 2/2] RUN /busybox true",
            ]
        );
    }

    #[test]
    fn single_stage_has_no_stage_name() {
        assert_eq!(
            names("FROM busybox\nRUN a\nCOPY x y\n", &options()),
            [
                "[1/3] FROM docker.io/library/busybox:latest@sha256:…",
                "[2/3] RUN a",
                "[internal] load build context",
                "[3/3] COPY x y",
            ]
        );
    }

    #[test]
    fn step_numbers_are_padded_to_the_width_of_the_total() {
        let dockerfile = format!("FROM busybox\n{}", "RUN true\n".repeat(10));
        let names = names(&dockerfile, &options());
        assert_eq!(
            names[0],
            "[ 1/11] FROM docker.io/library/busybox:latest@sha256:…"
        );
        assert_eq!(names[1], "[ 2/11] RUN true");
        // Identical RUNs on identical inputs are distinct vertices (each has the last as input).
        assert_eq!(names[10], "[11/11] RUN true");
    }

    #[test]
    fn workdir_root_counts_but_takes_no_number() {
        assert_eq!(
            names("FROM busybox\nWORKDIR /\nRUN a\n", &options()),
            [
                "[1/3] FROM docker.io/library/busybox:latest@sha256:…",
                "[2/3] RUN a",
            ]
        );
    }

    #[test]
    fn copy_link_shares_its_number_with_the_link() {
        assert_eq!(
            names("FROM busybox\nCOPY --link a /\n", &options())[2..],
            ["[2/2] COPY --link a /", "[2/2] LINK COPY --link a /"]
        );
    }

    #[test]
    fn onbuild_triggers_extend_the_total_after_from() {
        assert_eq!(
            names("FROM example/onbuild\nRUN x\n", &options()),
            [
                "[1/2] FROM docker.io/example/onbuild:latest@sha256:…",
                "[2/4] ONBUILD RUN echo triggered",
                "[3/4] ONBUILD WORKDIR /w",
                "[4/4] RUN x",
            ]
        );
    }

    #[test]
    fn multi_platform_builds_prefix_the_platform() {
        let mut o = options();
        o.target_platform = Some(Platform::new("linux", "arm64"));
        o.multi_platform = true;
        let dockerfile = "FROM --platform=$BUILDPLATFORM busybox AS build\n\
            ARG TARGETPLATFORM\n\
            RUN make\n\
            FROM busybox\n\
            COPY --from=build /out /\n";
        assert_eq!(
            names(dockerfile, &o),
            [
                "[linux/amd64 build 1/2] FROM docker.io/library/busybox:latest@sha256:…",
                "[linux/amd64->arm64 build 2/2] RUN make",
                "[linux/arm64 stage-1 1/2] FROM docker.io/library/busybox:latest@sha256:…",
                "[linux/arm64 stage-1 2/2] COPY --from=build /out /",
            ]
        );
    }

    #[test]
    fn stage_without_numbered_steps_names_steps_bare() {
        let mut counter = StepCounter::default();
        assert_eq!(counter.name("s", None, None, "RUN x"), "RUN x");
    }

    #[test]
    fn names_are_not_part_of_digests() {
        let graph = |dockerfile: &str| {
            let df = hoist_dockerfile::parser::parse(dockerfile).unwrap();
            let plan = plan(&df, &options()).unwrap();
            let converted = convert(&plan, &BTreeMap::new(), &options()).unwrap();
            converted
                .graph
                .vertices()
                .map(|(_, v)| (v.digest.clone(), v.name.clone()))
                .collect::<Vec<_>>()
        };
        let one = graph("FROM scratch AS one\nCOPY a b\nFROM one\nRUN x\n");
        let two = graph("FROM scratch AS other\nCOPY a b\nFROM other AS two\nRUN x\n");
        assert_eq!(one.last().unwrap().1, "[stage-1 1/1] RUN x");
        assert_eq!(two.last().unwrap().1, "[two 1/1] RUN x");
        let digests = |g: &[(Digest, String)]| g.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>();
        assert_eq!(digests(&one), digests(&two));
    }
}
