//! RUN: an exec over the stage's filesystem, with heredocs and `--mount`s (BuildKit's
//! `dispatchRun` and `dispatchRunMounts`).

use hoist_dockerfile::instructions;
use hoist_dockerfile::instructions::{Command, CommandLine, MountType, NetworkMode, Run};
use hoist_dockerfile::parser;
use hoist_graph::{
    Exec, FileAction, FileBase, FileOp, Mkdir, Mkfile, Mount, MountKind, MountSource, Network, Op,
    Output, Owner, Security,
};

use crate::convert::{Converter, StageState};
use crate::image::{self, with_shell};
use crate::{Error, Result};

/// Mounts with their inputs, collected while building an exec.
struct Inputs {
    outputs: Vec<Output>,
}

impl Inputs {
    fn source(&mut self, output: Option<Output>) -> MountSource {
        match output {
            None => MountSource::Scratch,
            Some(o) => match self.outputs.iter().position(|x| *x == o) {
                Some(i) => MountSource::Input(i),
                None => {
                    self.outputs.push(o);
                    MountSource::Input(self.outputs.len() - 1)
                }
            },
        }
    }
}

impl Converter<'_> {
    pub(crate) fn dispatch_run(
        &mut self,
        state: &mut StageState,
        run: &Run,
        sources: &[Option<usize>],
        command: &Command,
    ) -> Result<()> {
        let span = command.span;
        // BuildKit gives CDI devices to RUN when its worker has them and the build is
        // entitled; hoist's sandbox has none, so a device is refused, never dropped.
        if let Some(device) = run.devices.first() {
            let required = if device.required { ",required" } else { "" };
            return Err(Error::at(
                span,
                format!(
                    "RUN --device={}{required}: device {:?} cannot be provided: \
                     hoist's sandbox does not support CDI devices",
                    device.name, device.name
                ),
            ));
        }
        let mut inputs = Inputs {
            outputs: Vec::new(),
        };
        let root = inputs.source(state.output);
        let mut mounts = vec![Mount {
            source: root,
            target: "/".to_string(),
            readonly: false,
            selector: None,
            kind: hoist_graph::MountKind::Bind,
        }];

        let mut args = run.line.words();
        if !run.files.is_empty() {
            let single = match &run.line {
                CommandLine::Shell(line) if args.len() == 1 => {
                    parser::parse_heredoc(line.trim()).ok().flatten()
                }
                _ => {
                    return Err(Error::at(
                        span,
                        format!(
                            "parsing produced an invalid run command: [{}]",
                            args.join(" ")
                        ),
                    ))
                }
            };
            match single {
                Some(_) => {
                    let file = &run.files[0];
                    let data = if file.chomp {
                        parser::chomp_heredoc_content(&file.data)
                    } else {
                        file.data.clone()
                    };
                    if state.config.os != "windows" && data.starts_with("#!") {
                        // A script with a shebang: written to a file and run.
                        let script = self.graph.add(
                            Op::File(FileOp {
                                base: FileBase::Scratch,
                                actions: vec![FileAction::Mkfile(Mkfile {
                                    path: format!("/{}", file.name),
                                    data,
                                    mode: 0o755,
                                    owner: None,
                                })],
                            }),
                            Vec::new(),
                            None,
                            "preparing inline document",
                        )?;
                        mounts.push(Mount {
                            source: inputs.source(Some(script)),
                            target: "/dev/pipes/".to_string(),
                            readonly: true,
                            selector: Some("/".to_string()),
                            kind: MountKind::Bind,
                        });
                        args = vec![format!("/dev/pipes/{}", file.name)];
                    } else {
                        args = vec![data];
                    }
                }
                None => {
                    let mut text = args.first().cloned().unwrap_or_default();
                    for file in &run.files {
                        text.push('\n');
                        text.push_str(&file.data);
                        text.push_str(&file.name);
                    }
                    args = vec![text];
                }
            }
        }
        if run.line.prepends_shell() {
            args = with_shell(&state.config, &args);
        }

        let mut ssh_count = 0;
        for (i, mount) in run.mounts.iter().enumerate() {
            let source = sources.get(i).copied().flatten();
            if let Some(m) = self.run_mount(state, mount, source, ssh_count, &mut inputs)? {
                if matches!(m.kind, MountKind::Ssh { .. }) {
                    ssh_count += 1;
                }
                mounts.push(m);
            }
        }

        let network = match run.network {
            Some(NetworkMode::Host) => Network::Host,
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Default) => Network::Sandbox,
            None => self.opts.network,
        };
        let security = match run.security {
            Some(instructions::Security::Insecure) => Security::Insecure,
            _ => Security::Sandbox,
        };
        let exec = Exec {
            args: args.clone(),
            env: state.env.to_entries(),
            cwd: state.dir.clone(),
            user: state.user.clone(),
            network,
            security,
            mounts,
            output_mount: 0,
            proxy: self.proxy.clone(),
        };
        let name = self.vertex_name(state, &command.source);
        let out = self.graph.add_with_cache(
            Op::Exec(exec),
            inputs.outputs,
            Some(state.platform.clone()),
            name,
            state.ignore_cache,
        )?;
        state.output = Some(out);
        let message = format!("RUN {}", run_command_string(&args, state));
        state.commit(message, true, true);
        Ok(())
    }

    /// One `--mount`; `ssh_index` counts the SSH mounts before it (their default targets
    /// are numbered).
    fn run_mount(
        &mut self,
        state: &StageState,
        mount: &instructions::Mount,
        source: Option<usize>,
        ssh_index: usize,
        inputs: &mut Inputs,
    ) -> Result<Option<Mount>> {
        let target_or_dir = |target: &str| {
            if target.starts_with('/') {
                image::clean(target)
            } else {
                image::clean(&format!("/{}/{target}", state.dir))
            }
        };
        match mount.kind {
            MountType::Secret => {
                let id = mount
                    .source
                    .clone()
                    .or_else(|| mount.id.clone())
                    .filter(|s| !s.is_empty());
                let target = mount.target.clone().filter(|t| !t.is_empty());
                let id = match (id, &target) {
                    (Some(id), _) => id,
                    (None, Some(t)) => base_name(t),
                    (None, None) => {
                        return Err(Error::Option {
                            message: "one of source, target required".to_string(),
                        })
                    }
                };
                let target = match (&mount.env, target) {
                    (_, Some(t)) => target_or_dir(&t),
                    (None, None) => format!("/run/secrets/{}", base_name(&id)),
                    (Some(_), None) => String::new(),
                };
                return Ok(Some(Mount {
                    source: MountSource::Scratch,
                    target,
                    readonly: true,
                    selector: None,
                    kind: MountKind::Secret {
                        id,
                        env: mount.env.clone(),
                        required: mount.required,
                        mode: mount.mode.unwrap_or(0o400),
                        uid: mount.uid.unwrap_or(0),
                        gid: mount.gid.unwrap_or(0),
                    },
                }));
            }
            MountType::Ssh => {
                let id = mount
                    .id
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "default".to_string());
                let target = match mount.target.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => target_or_dir(t),
                    None => format!("/run/buildkit/ssh_agent.{ssh_index}"),
                };
                return Ok(Some(Mount {
                    source: MountSource::Scratch,
                    target,
                    readonly: true,
                    selector: None,
                    kind: MountKind::Ssh {
                        id,
                        required: mount.required,
                        mode: mount.mode.unwrap_or(0o600),
                        uid: mount.uid.unwrap_or(0),
                        gid: mount.gid.unwrap_or(0),
                    },
                }));
            }
            _ => {}
        }
        let target_text = mount.target.clone().unwrap_or_default();
        // The mount's filesystem: a stage/image, the context, or empty.
        let mut from_output = match (source, mount.kind) {
            (_, MountType::Tmpfs) => None,
            (Some(i), _) => {
                let Some(src) = self.states.get(i).cloned().flatten() else {
                    return Err(Error::Option {
                        message: format!(
                            "cannot mount from stage {:?} to {:?}, stage needs to be defined before current command",
                            mount.from.clone().unwrap_or_default(),
                            target_text
                        ),
                    });
                };
                src.output
            }
            (None, MountType::Cache) => None,
            (None, _) => {
                let ctx = self.context()?;
                self.ctx_paths.insert(image::join(
                    "/",
                    mount.source.as_deref().unwrap_or_default(),
                ));
                Some(ctx)
            }
        };
        let target = target_or_dir(&target_text);
        if target == "/" {
            return Err(Error::Option {
                message: format!("invalid mount target {target:?}"),
            });
        }
        let kind = match mount.kind {
            MountType::Tmpfs => MountKind::Tmpfs {
                size: mount.size_limit.unwrap_or(0),
            },
            MountType::Cache => MountKind::Cache {
                id: mount
                    .id
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| image::clean(&target_text)),
                sharing: match mount.sharing {
                    Some(instructions::Sharing::Private) => hoist_graph::Sharing::Private,
                    Some(instructions::Sharing::Locked) => hoist_graph::Sharing::Locked,
                    _ => hoist_graph::Sharing::Shared,
                },
            },
            _ => MountKind::Bind,
        };
        let mut selector = None;
        let src = image::join("/", mount.source.as_deref().unwrap_or_default());
        if src != "/" {
            selector = Some(src);
        } else if mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some() {
            // The cache directory gets its owner and mode from a prepared /cache.
            let (base, ins) = match from_output {
                Some(o) => (FileBase::Input(0), vec![o]),
                None => (FileBase::Scratch, Vec::new()),
            };
            let prepared = self.graph.add(
                Op::File(FileOp {
                    base,
                    actions: vec![FileAction::Mkdir(Mkdir {
                        path: "/cache".to_string(),
                        mode: mount.mode.unwrap_or(0o755),
                        make_parents: false,
                        owner: Some(Owner {
                            user: mount.uid.unwrap_or(0).to_string(),
                            group: Some(mount.gid.unwrap_or(0).to_string()),
                        }),
                        created: None,
                    })],
                }),
                ins,
                None,
                "[internal] setting cache mount permissions",
            )?;
            from_output = Some(prepared);
            selector = Some("/cache".to_string());
        }
        Ok(Some(Mount {
            source: inputs.source(from_output),
            target,
            readonly: mount.read_only,
            selector,
            kind,
        }))
    }
}

/// BuildKit's `runCommandString`: `|N K=V ... args` with the stage's ARGs as the process
/// sees them.
fn run_command_string(args: &[String], state: &StageState) -> String {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (key, value) in &state.build_args {
        let v = state
            .env
            .get(key)
            .map(str::to_string)
            .or_else(|| value.clone())
            .unwrap_or_default();
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = v,
            None => entries.push((key.clone(), v)),
        }
    }
    let mut parts = Vec::new();
    if !entries.is_empty() {
        parts.push(format!("|{}", entries.len()));
        parts.extend(entries.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((_, b)) if !b.is_empty() => b.to_string(),
        _ if trimmed.is_empty() => "/".to_string(),
        _ => trimmed.to_string(),
    }
}
