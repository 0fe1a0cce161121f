//! The stable one-line text of each instruction (its `Display`) and [`listing`], what
//! `hoist debug instructions` prints:
//!
//! ```text
//! meta line 1: ARG GO_VERSION="1.22"
//! stage 0 (builder) line 3: FROM golang:${GO_VERSION} AS builder
//! stage 0 (builder) line 4: RUN --mount=type=cache,target=/root/.cache [shell] "go build ./..."
//! ```
//!
//! Values are printed quoted (Rust string escapes), flags in a fixed order with defaults
//! left out, so the text changes only when the parsed meaning changes.

use std::fmt::{self, Write as _};

use super::{
    parse_stages, Add, Arg, Chmod, Cmd, CommandLine, Copy, Entrypoint, Env, Expose, From,
    Healthcheck, InlineFile, Instruction, KeyValue, Label, Maintainer, OnBuild, Run, Shell,
    Sources, StopSignal, User, Volume, Workdir,
};
use crate::ast::Dockerfile;
use crate::Result;

/// One line per instruction: `meta line N: ARG ...` for global ARGs, then
/// `stage I (name) line N: ...` for each stage's FROM and instructions. Every line ends with
/// a newline. Fails as [`parse_stages`] does.
pub fn listing(dockerfile: &Dockerfile) -> Result<String> {
    let (meta_args, stages) = parse_stages(dockerfile)?;
    let mut out = String::new();
    let mut i = 0;
    while i < meta_args.len() {
        let span = meta_args[i].span;
        let mut line = String::new();
        while i < meta_args.len() && meta_args[i].span == span {
            let meta = &meta_args[i];
            line.push(' ');
            push_arg(&mut line, &meta.key, meta.value.as_deref());
            i += 1;
        }
        let _ = writeln!(out, "meta line {}: ARG{line}", span.start);
    }
    for stage in &stages {
        let prefix = match &stage.name {
            Some(name) => format!("stage {} ({name})", stage.index),
            None => format!("stage {}", stage.index),
        };
        let from = From {
            image: stage.base_name.clone(),
            name: stage.name.clone(),
            platform: stage.platform.clone(),
            doc_comment: stage.doc_comment.clone(),
        };
        let _ = writeln!(out, "{prefix} line {}: {from}", stage.span.start);
        for command in &stage.commands {
            let _ = writeln!(
                out,
                "{prefix} line {}: {}",
                command.span.start, command.instruction
            );
        }
    }
    Ok(out)
}

fn push_arg(out: &mut String, key: &str, value: Option<&str>) {
    out.push_str(key);
    if let Some(value) = value {
        let _ = write!(out, "={value:?}");
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instruction::From(c) => c.fmt(f),
            Instruction::Run(c) => c.fmt(f),
            Instruction::Cmd(c) => c.fmt(f),
            Instruction::Entrypoint(c) => c.fmt(f),
            Instruction::Shell(c) => c.fmt(f),
            Instruction::Label(c) => c.fmt(f),
            Instruction::Maintainer(c) => c.fmt(f),
            Instruction::Expose(c) => c.fmt(f),
            Instruction::Env(c) => c.fmt(f),
            Instruction::Add(c) => c.fmt(f),
            Instruction::Copy(c) => c.fmt(f),
            Instruction::Volume(c) => c.fmt(f),
            Instruction::User(c) => c.fmt(f),
            Instruction::Workdir(c) => c.fmt(f),
            Instruction::Arg(c) => c.fmt(f),
            Instruction::OnBuild(c) => c.fmt(f),
            Instruction::StopSignal(c) => c.fmt(f),
            Instruction::Healthcheck(c) => c.fmt(f),
        }
    }
}

impl fmt::Display for From {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FROM ")?;
        if let Some(platform) = &self.platform {
            write!(f, "--platform={platform} ")?;
        }
        f.write_str(&self.image)?;
        if let Some(name) = &self.name {
            write!(f, " AS {name}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLine::Shell(line) => write!(f, "[shell] {line:?}"),
            CommandLine::Exec(argv) => write!(f, "[exec] {argv:?}"),
        }
    }
}

fn write_files(f: &mut fmt::Formatter<'_>, files: &[InlineFile]) -> fmt::Result {
    for file in files {
        let dash = if file.chomp { "-" } else { "" };
        write!(f, " <<{dash}{}={:?}", file.name, file.data)?;
    }
    Ok(())
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RUN ")?;
        for mount in &self.mounts {
            write!(f, "--mount={} ", mount.canonical())?;
        }
        if let Some(network) = self.network {
            write!(f, "--network={} ", network.as_str())?;
        }
        if let Some(security) = self.security {
            write!(f, "--security={} ", security.as_str())?;
        }
        for device in &self.devices {
            let required = if device.required { ",required" } else { "" };
            write!(f, "--device={:?}{required} ", device.name)?;
        }
        self.line.fmt(f)?;
        write_files(f, &self.files)
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CMD {}", self.line)?;
        write_files(f, &self.files)
    }
}

impl fmt::Display for Entrypoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ENTRYPOINT {}", self.line)?;
        write_files(f, &self.files)
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHELL {:?}", self.shell)
    }
}

fn write_pairs(f: &mut fmt::Formatter<'_>, keyword: &str, pairs: &[KeyValue]) -> fmt::Result {
    f.write_str(keyword)?;
    for kv in pairs {
        write!(f, " {:?}={:?}", kv.key, kv.value)?;
    }
    Ok(())
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pairs(f, "ENV", &self.vars)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pairs(f, "LABEL", &self.labels)
    }
}

impl fmt::Display for Maintainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MAINTAINER {:?}", self.maintainer)
    }
}

impl fmt::Display for Expose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EXPOSE {:?}", self.ports)
    }
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VOLUME {:?}", self.volumes)
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "USER {:?}", self.user)
    }
}

impl fmt::Display for Workdir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WORKDIR {:?}", self.path)
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "STOPSIGNAL {:?}", self.signal)
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::from("ARG");
        for def in &self.args {
            text.push(' ');
            push_arg(&mut text, &def.key, def.value.as_deref());
        }
        f.write_str(&text)
    }
}

impl fmt::Display for OnBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ONBUILD {}", self.trigger)
    }
}

fn write_chown_chmod(
    f: &mut fmt::Formatter<'_>,
    chown: &Option<String>,
    chmod: &Option<Chmod>,
) -> fmt::Result {
    if let Some(chown) = chown {
        write!(f, " --chown={chown:?}")?;
    }
    if let Some(chmod) = chmod {
        write!(f, " --chmod={chmod}")?;
    }
    Ok(())
}

fn write_sources(
    f: &mut fmt::Formatter<'_>,
    excludes: &[String],
    sources: &Sources,
) -> fmt::Result {
    for exclude in excludes {
        write!(f, " --exclude={exclude:?}")?;
    }
    write!(f, " {:?}", sources.paths)?;
    for content in &sources.contents {
        let raw = if content.expand { "" } else { " (raw)" };
        write!(f, " <<{}={:?}{raw}", content.path, content.data)?;
    }
    write!(f, " -> {:?}", sources.dest)
}

impl fmt::Display for Copy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("COPY")?;
        if let Some(from) = &self.from {
            write!(f, " --from={from:?}")?;
        }
        write_chown_chmod(f, &self.chown, &self.chmod)?;
        if self.link {
            f.write_str(" --link")?;
        }
        if self.parents {
            f.write_str(" --parents")?;
        }
        write_sources(f, &self.excludes, &self.sources)
    }
}

impl fmt::Display for Add {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ADD")?;
        write_chown_chmod(f, &self.chown, &self.chmod)?;
        if self.link {
            f.write_str(" --link")?;
        }
        if let Some(keep) = self.keep_git_dir {
            write!(f, " --keep-git-dir={keep}")?;
        }
        if let Some(checksum) = &self.checksum {
            write!(f, " --checksum={checksum:?}")?;
        }
        if let Some(unpack) = self.unpack {
            write!(f, " --unpack={unpack}")?;
        }
        write_sources(f, &self.excludes, &self.sources)
    }
}

impl fmt::Display for Healthcheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = match self {
            Healthcheck::None => return f.write_str("HEALTHCHECK NONE"),
            Healthcheck::Cmd(cmd) => cmd,
        };
        f.write_str("HEALTHCHECK")?;
        for (name, value) in [
            ("interval", cmd.interval),
            ("timeout", cmd.timeout),
            ("start-period", cmd.start_period),
            ("start-interval", cmd.start_interval),
        ] {
            if !value.is_zero() {
                write!(f, " --{name}={}", crate::go_duration::format(value))?;
            }
        }
        if cmd.retries != 0 {
            write!(f, " --retries={}", cmd.retries)?;
        }
        write!(f, " {:?}", cmd.test)
    }
}
