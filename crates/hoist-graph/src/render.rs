//! [`Graph::render`]: one line per vertex, stable enough for snapshot tests.
//!
//! ```text
//! v0 3f1a2b4c5d6e image "docker.io/library/alpine:latest@sha256:…" [linux/amd64]
//! v1 9c8d7e6f5a4b exec args=["/bin/sh", "-c", "make"] env=["PATH=…"] cwd="/src" mounts=[/ <- v0] [linux/amd64]
//! ```
//!
//! Each line: `v<index>`, the first 12 hex digits of the digest, the op and its fields,
//! then the platform in brackets when the vertex has one. Inputs are shown as `v<index>`
//! (`:<output>` when not 0).

use std::fmt::Write as _;

use crate::graph::{Graph, Output, Vertex, VertexId};
use crate::op::{
    Copy, Exec, FileAction, FileBase, FileMode, MountKind, MountSource, Op, Owner, Source,
};

impl Graph {
    /// Renders the vertices `root` depends on (itself included), one line each, in
    /// topological order, numbered from 0 in that order.
    pub fn render(&self, root: Output) -> String {
        let ids = self.ancestors(root.vertex);
        let number = |id: VertexId| ids.iter().position(|x| *x == id).unwrap_or(usize::MAX);
        let mut out = String::new();
        for id in &ids {
            if let Some(vertex) = self.get(*id) {
                let _ = writeln!(out, "{}", render_vertex(vertex, number(*id), &number));
            }
        }
        if root.index != 0 {
            let _ = writeln!(out, "result v{}:{}", number(root.vertex), root.index);
        }
        out
    }

    /// Renders every vertex of the graph.
    pub fn render_all(&self) -> String {
        let mut out = String::new();
        for (id, vertex) in self.vertices() {
            let _ = writeln!(out, "{}", render_vertex(vertex, id.0, &|v: VertexId| v.0));
        }
        out
    }
}

fn render_vertex(vertex: &Vertex, n: usize, number: &dyn Fn(VertexId) -> usize) -> String {
    let hex = vertex.digest.encoded();
    let short = hex.get(..12).unwrap_or(hex);
    let input = |i: usize| match vertex.inputs.get(i) {
        Some(o) if o.index == 0 => format!("v{}", number(o.vertex)),
        Some(o) => format!("v{}:{}", number(o.vertex), o.index),
        None => format!("input{i}?"),
    };
    let mut line = format!("v{n} {short} ");
    match &vertex.op {
        Op::Source(source) => render_source(&mut line, source),
        Op::Exec(exec) => render_exec(&mut line, exec, &input),
        Op::File(file) => {
            line.push_str("file base=");
            line.push_str(&match file.base {
                FileBase::Input(i) => input(i),
                FileBase::Scratch => "scratch".to_string(),
            });
            for action in &file.actions {
                line.push(' ');
                render_action(&mut line, action, &input);
            }
        }
        Op::Merge => {
            let inputs: Vec<String> = (0..vertex.inputs.len()).map(input).collect();
            let _ = write!(line, "merge {}", inputs.join(" "));
        }
    }
    if let Some(platform) = &vertex.platform {
        let _ = write!(line, " [{}]", platform.format_all());
    }
    if vertex.ignore_cache {
        line.push_str(" no-cache");
    }
    line
}

fn render_source(line: &mut String, source: &Source) {
    match source {
        Source::Image {
            reference,
            platform: _,
        } => {
            let _ = write!(line, "image {reference:?}");
        }
        Source::Local {
            name,
            include_patterns,
            exclude_patterns,
            follow_paths,
        } => {
            let _ = write!(line, "local {name:?}");
            list(line, "include", include_patterns);
            list(line, "exclude", exclude_patterns);
            list(line, "follow", follow_paths);
        }
        Source::Git {
            remote,
            reference,
            subdir,
            keep_git_dir,
            checksum,
        } => {
            let _ = write!(line, "git {remote:?}");
            opt(line, "ref", reference);
            opt(line, "subdir", subdir);
            if *keep_git_dir {
                line.push_str(" keep-git-dir");
            }
            opt(line, "checksum", checksum);
        }
        Source::Http {
            url,
            filename,
            checksum,
        } => {
            let _ = write!(line, "http {url:?} filename={filename:?}");
            opt(line, "checksum", checksum);
        }
    }
}

fn render_exec(line: &mut String, exec: &Exec, input: &dyn Fn(usize) -> String) {
    let _ = write!(
        line,
        "exec args={:?} env={:?} cwd={:?}",
        exec.args, exec.env, exec.cwd
    );
    if !exec.user.is_empty() {
        let _ = write!(line, " user={:?}", exec.user);
    }
    if exec.network != crate::op::Network::Sandbox {
        let _ = write!(line, " network={:?}", exec.network);
    }
    if exec.security != crate::op::Security::Sandbox {
        let _ = write!(line, " security={:?}", exec.security);
    }
    let mounts: Vec<String> = exec
        .mounts
        .iter()
        .map(|m| {
            let mut s = m.target.clone();
            s.push_str(" <- ");
            s.push_str(&match m.source {
                MountSource::Input(i) => input(i),
                MountSource::Scratch => "scratch".to_string(),
            });
            if let Some(sel) = &m.selector {
                let _ = write!(s, ":{sel}");
            }
            if m.readonly {
                s.push_str(" ro");
            }
            match &m.kind {
                MountKind::Bind => {}
                MountKind::Cache { id, sharing } => {
                    let _ = write!(s, " cache(id={id:?} sharing={sharing:?})");
                }
                MountKind::Tmpfs { size } => {
                    let _ = write!(s, " tmpfs(size={size})");
                }
                MountKind::Secret {
                    id, env, required, ..
                } => {
                    let _ = write!(s, " secret(id={id:?} env={env:?} required={required})");
                }
                MountKind::Ssh { id, required, .. } => {
                    let _ = write!(s, " ssh(id={id:?} required={required})");
                }
            }
            s
        })
        .collect();
    let _ = write!(line, " mounts=[{}]", mounts.join(", "));
    if exec.output_mount != 0 {
        let _ = write!(line, " output={}", exec.output_mount);
    }
}

fn render_action(line: &mut String, action: &FileAction, input: &dyn Fn(usize) -> String) {
    match action {
        FileAction::Copy(copy) => render_copy(line, copy, input),
        FileAction::Mkdir(mkdir) => {
            let _ = write!(line, "mkdir({:?} {:o}", mkdir.path, mkdir.mode);
            if mkdir.make_parents {
                line.push_str(" parents");
            }
            owner(line, &mkdir.owner);
            line.push(')');
        }
        FileAction::Mkfile(mkfile) => {
            let _ = write!(
                line,
                "mkfile({:?} {:o} data={:?}",
                mkfile.path, mkfile.mode, mkfile.data
            );
            owner(line, &mkfile.owner);
            line.push(')');
        }
        FileAction::Rm(rm) => {
            let _ = write!(line, "rm({:?}", rm.path);
            if rm.allow_not_found {
                line.push_str(" allow-not-found");
            }
            if rm.allow_wildcard {
                line.push_str(" allow-wildcard");
            }
            line.push(')');
        }
    }
}

fn render_copy(line: &mut String, copy: &Copy, input: &dyn Fn(usize) -> String) {
    let _ = write!(
        line,
        "copy({}:{:?} -> {:?}",
        input(copy.src),
        copy.src_path,
        copy.dest
    );
    owner(line, &copy.owner);
    match &copy.mode {
        Some(FileMode::Octal(m)) => {
            let _ = write!(line, " mode={m:o}");
        }
        Some(FileMode::Symbolic(m)) => {
            let _ = write!(line, " mode={m}");
        }
        None => {}
    }
    let flags = [
        (copy.follow_symlinks, "follow"),
        (copy.dir_contents_only, "contents"),
        (copy.create_dest_path, "mkdir-dest"),
        (copy.allow_wildcard, "wildcard"),
        (copy.allow_empty_wildcard, "empty-wildcard"),
        (copy.attempt_unpack, "unpack"),
        (copy.parents, "parents"),
    ];
    for (on, name) in flags {
        if on {
            line.push(' ');
            line.push_str(name);
        }
    }
    list(line, "include", &copy.include_patterns);
    list(line, "exclude", &copy.exclude_patterns);
    list(line, "required", &copy.required_paths);
    line.push(')');
}

fn owner(line: &mut String, owner: &Option<Owner>) {
    if let Some(o) = owner {
        match &o.group {
            Some(g) => {
                let _ = write!(line, " owner={}:{}", o.user, g);
            }
            None => {
                let _ = write!(line, " owner={}", o.user);
            }
        }
    }
}

fn list(line: &mut String, name: &str, items: &[String]) {
    if !items.is_empty() {
        let _ = write!(line, " {name}={items:?}");
    }
}

fn opt(line: &mut String, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        let _ = write!(line, " {name}={v:?}");
    }
}
