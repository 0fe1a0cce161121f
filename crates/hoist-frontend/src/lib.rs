//! Dockerfile stages → a build graph and an image config per target platform: BuildKit's
//! `dockerfile2llb`.
//!
//! The one entry point for a build is [`solve`]: the Dockerfile, the build's options and
//! target platforms (given once) and a [`MetaResolver`] that resolves base images (the
//! caller's I/O) → a [`Definition`] with one [`Target`] (graph, target output, image config)
//! per platform. Every base image of every platform is resolved once, concurrently; the
//! images named by the bases' ONBUILD triggers (module `onbuild`) make a second round.
//!
//! Inside, per platform, two pure phases (public for tests and tools):
//!
//! 1. [`plan`] (or [`plan_stages`]): which stages the target needs ([`Plan::stages`], unused
//!    ones never built), and which base images must be resolved ([`Plan::images`]: every
//!    `FROM` expanded with the global ARGs, build args and the automatic platform ARGs,
//!    `COPY --from=<image>` and `RUN --mount from=<image>` too).
//! 2. [`convert`]: with those images' digests and configs ([`ImageResolver`], a
//!    `BTreeMap<ImageRequest, ResolvedImage>` is one), dispatch every reachable stage into a
//!    [`hoist_graph::Graph`] and return the target's [`Converted::target`] output and
//!    [`Converted::config`] — the config BuildKit writes, history included.
//!
//! [`BuildOptions`] carries build args, target, platforms, labels, named contexts and cache
//! filters. A multi-platform build plans and converts once per target platform; vertices that
//! do not depend on it (the context, `FROM --platform=$BUILDPLATFORM` stages) come out with
//! identical digests, so the solver runs them once.
//!
//! Which vertices carry a platform: image sources (the manifest chosen) and execs (the
//! binaries run). File ops and merges do not — copying, creating directories and resolving
//! `--chown` names in the destination's `/etc/passwd` do the same on every platform, so a
//! file op differs between platforms only when its inputs do. (BuildKit stamps every op with
//! the stage's platform; leaving it off file ops lets `COPY --from=<build-platform stage>`
//! into `FROM scratch` run once for all targets.)
//!
//! Semantics follow BuildKit: ARG/ENV scoping (global ARGs visible in a stage only after a
//! bare `ARG NAME`), proxy build args given to RUN without being declared yet kept out of
//! history and digests, WORKDIR creating its directory, ENTRYPOINT resetting an inherited CMD,
//! ONBUILD triggers of the base run first, history texts such as
//! `RUN |1 A=1 /bin/sh -c make # buildkit`. Errors carry BuildKit's texts and the span of the
//! offending instruction ([`Error::span`]).

mod args;
mod convert;
mod copy;
mod error;
mod image;
mod onbuild;
mod options;
mod plan;
mod run;
mod session;
mod steps;

pub use args::EnvList;
pub use convert::{convert, Converted, StageInfo, MAIN_CONTEXT};
pub use copy::has_wildcard;
pub use error::{Error, Result};
pub use image::DEFAULT_PATH;
pub use options::{BuildOptions, LayoutSelect, NamedContext, OciLayoutRef};
pub use plan::{
    plan, plan_stages, Base, ImageRequest, ImageResolver, Plan, ResolvedImage, StagePlan,
};
pub use session::{solve, Definition, MetaResolver, Target};
