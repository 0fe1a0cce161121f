//! Typed instructions from hand-built AST nodes (the shapes BuildKit's parser produces).

use hoist_dockerfile::ast::{Dockerfile, Heredoc, LineSpan, Node};
use hoist_dockerfile::instructions::{
    parse_instruction, parse_stages, Chmod, CommandLine, Healthcheck, Instruction, Mount,
    MountType, NetworkMode, Security, Sharing,
};
use hoist_dockerfile::Error;

fn node(keyword: &str, flags: &[&str], args: &[&str]) -> Node {
    Node {
        keyword: keyword.to_lowercase(),
        keyword_original: keyword.to_string(),
        flags: flags.iter().map(|s| s.to_string()).collect(),
        args: args.iter().map(|s| s.to_string()).collect(),
        original: format!("{keyword} {}", args.join(" ")),
        span: LineSpan { start: 1, end: 1 },
        ..Node::default()
    }
}

fn json(mut n: Node) -> Node {
    n.json = true;
    n
}

fn at(mut n: Node, line: usize) -> Node {
    n.span = LineSpan {
        start: line,
        end: line,
    };
    n
}

fn error(n: &Node) -> String {
    match parse_instruction(n) {
        Err(Error::Instruction { message, span }) => {
            assert_eq!(span, n.span);
            message
        }
        other => panic!("expected an instruction error, got {other:?}"),
    }
}

fn run(flags: &[&str]) -> hoist_dockerfile::instructions::Run {
    match parse_instruction(&node("RUN", flags, &["true"])).unwrap() {
        Instruction::Run(run) => run,
        other => panic!("not a RUN: {other:?}"),
    }
}

fn mount(spec: &str) -> Mount {
    let flag = format!("--mount={spec}");
    run(&[&flag]).mounts.remove(0)
}

fn mount_error(spec: &str) -> String {
    let flag = format!("--mount={spec}");
    error(&node("RUN", &[&flag], &["true"]))
}

#[test]
fn run_shell_and_exec_forms() {
    let Instruction::Run(r) = parse_instruction(&node("RUN", &[], &["go build ./..."])).unwrap()
    else {
        panic!()
    };
    assert_eq!(r.line, CommandLine::Shell("go build ./...".to_string()));
    let Instruction::Run(r) = parse_instruction(&json(node("RUN", &[], &["go", "build"]))).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        r.line,
        CommandLine::Exec(vec!["go".to_string(), "build".to_string()])
    );
}

#[test]
fn run_heredoc_files() {
    let mut n = node("RUN", &[], &["<<EOF"]);
    n.heredocs = vec![Heredoc {
        name: "EOF".to_string(),
        content: "\techo hi\n".to_string(),
        expand: true,
        chomp: true,
        file_descriptor: 0,
    }];
    let Instruction::Run(r) = parse_instruction(&n).unwrap() else {
        panic!()
    };
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].name, "EOF");
    assert_eq!(r.files[0].data, "\techo hi\n");
    assert!(r.files[0].chomp);
}

#[test]
fn mount_defaults_per_type() {
    let m = mount("target=/src");
    assert_eq!(m.kind, MountType::Bind);
    assert!(m.read_only);
    let m = mount("type=cache,target=/root/.cache");
    assert_eq!(m.kind, MountType::Cache);
    assert!(!m.read_only);
    assert_eq!(m.target.as_deref(), Some("/root/.cache"));
    assert!(!mount("type=tmpfs,dst=/tmp").read_only);
    assert!(mount("type=secret,id=token").read_only);
    assert!(mount("type=ssh").read_only);
}

#[test]
fn mount_every_key() {
    let m = mount(
        "type=cache,id=gomod,sharing=locked,from=builder,source=/go,destination=/go/pkg,mode=0755,uid=1000,gid=1000,rw=false",
    );
    assert_eq!(m.id.as_deref(), Some("gomod"));
    assert_eq!(m.sharing, Some(Sharing::Locked));
    assert_eq!(m.from.as_deref(), Some("builder"));
    assert_eq!(m.source.as_deref(), Some("/go"));
    assert_eq!(m.target.as_deref(), Some("/go/pkg"));
    assert_eq!(
        (m.mode, m.uid, m.gid),
        (Some(0o755), Some(1000), Some(1000))
    );
    assert!(m.read_only);
    assert_eq!(
        m.canonical(),
        "type=cache,from=builder,source=/go,target=/go/pkg,id=gomod,sharing=locked,ro,mode=0755,uid=1000,gid=1000"
    );

    let m = mount("type=secret,id=aws,target=/root/.aws/credentials,required,env=AWS");
    assert!(m.required);
    assert_eq!(m.env.as_deref(), Some("AWS"));
    let m = mount("type=ssh,required=true,mode=0600");
    assert!(m.required && m.mode == Some(0o600));
    let m = mount("type=tmpfs,target=/t,size=64m");
    assert_eq!(m.size_limit, Some(64 * 1024 * 1024));
    assert_eq!(
        mount("type=tmpfs,target=/t,size=1.5GiB").size_limit,
        Some(1610612736)
    );
    assert_eq!(mount("type=tmpfs,target=/t,size=512").size_limit, Some(512));
    assert!(mount("src=a,dst=/b,ro").read_only);
    assert!(!mount("src=a,dst=/b,readwrite").read_only);
    assert!(!mount("src=a,dst=/b,readonly=false").read_only);
    assert!(mount("TYPE=CACHE,Target=/x").kind == MountType::Cache);
    assert_eq!(
        mount("\"target=/a,b\",type=bind").target.as_deref(),
        Some("/a,b")
    );
}

#[test]
fn mount_errors_match_buildkit() {
    assert_eq!(mount_error("type=nope"), "unsupported mount type \"nope\"");
    assert_eq!(
        mount_error("type=cahce"),
        "unsupported mount type \"cahce\" (did you mean cache?)"
    );
    assert_eq!(
        mount_error("type=cache,sharing=everyone"),
        "unsupported sharing value \"everyone\""
    );
    assert_eq!(
        mount_error("target"),
        "invalid field 'target' must be a key=value pair"
    );
    assert_eq!(
        mount_error("type=bind,required"),
        "unexpected key 'required' for mount type 'bind'"
    );
    assert_eq!(
        mount_error("type=cache,size=10m"),
        "unexpected key 'size' for mount type 'cache'"
    );
    assert_eq!(
        mount_error("type=tmpfs,size=lots"),
        "invalid value for size: lots"
    );
    assert_eq!(mount_error("ro=maybe"), "invalid value for ro: maybe");
    assert_eq!(
        mount_error("type=cache,mode=999"),
        "invalid value 999 for mode"
    );
    assert_eq!(mount_error("type=cache,uid=-1"), "invalid value -1 for uid");
    assert_eq!(mount_error("type=cache,gid=x"), "invalid value x for gid");
    assert_eq!(
        mount_error("type=bind,uid=0"),
        "uid not allowed for \"bind\" type mounts"
    );
    assert_eq!(
        mount_error("type=tmpfs,mode=0700"),
        "mode not allowed for \"tmpfs\" type mounts"
    );
    assert_eq!(
        mount_error("type=secret,from=x,id=a"),
        "secret mount should not have a from"
    );
    assert_eq!(
        mount_error("type=secret,id=a,sharing=shared"),
        "secret mount should not define sharing"
    );
    assert_eq!(
        mount_error("type=secret"),
        "invalid secret mount. one of source, target required"
    );
    assert_eq!(
        mount_error("type=secret,source=a,id=b"),
        "both source and id can't be set"
    );
    assert_eq!(
        mount_error("sharing=private"),
        "invalid cache sharing set for bind mount"
    );
    assert_eq!(
        mount_error("targte=/x"),
        "unexpected key 'targte' in 'targte=/x' (did you mean target?)"
    );
    assert_eq!(
        mount_error("from=$STAGE"),
        "'from' doesn't support variable expansion, define alias stage instead"
    );
}

#[test]
fn mount_with_variables_waits_for_expansion() {
    let m = mount("type=cache,target=$HOME/.cache,uid=$UID");
    assert!(!m.is_expanded());
    assert_eq!(m.canonical(), "type=cache,target=$HOME/.cache,uid=$UID");
    let vars = |word: &str| -> hoist_dockerfile::Result<String> {
        Ok(word.replace("$HOME", "/root").replace("$UID", "1000"))
    };
    let m = m.expand(&vars).unwrap();
    assert!(m.is_expanded());
    assert_eq!(m.target.as_deref(), Some("/root/.cache"));
    assert_eq!(m.uid, Some(1000));

    // The type itself may come from a variable; checks that depend on it wait too.
    let m = mount("type=$KIND,required");
    assert!(!m.is_expanded());
    let secret = |w: &str| -> hoist_dockerfile::Result<String> { Ok(w.replace("$KIND", "secret")) };
    let bind = |w: &str| -> hoist_dockerfile::Result<String> { Ok(w.replace("$KIND", "bind")) };
    assert!(
        m.expand(&secret).is_err(),
        "a secret mount needs an id, source or target"
    );
    let err = m.expand(&bind).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected key 'required' for mount type 'bind'"
    );
    assert!(Mount::parse("type=secret,id=x,required").unwrap().required);
}

#[test]
fn run_network_security_device() {
    let r = run(&[
        "--network=none",
        "--security=insecure",
        "--device=nvidia.com/gpu=all",
    ]);
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security, Some(Security::Insecure));
    assert_eq!(r.devices[0].name, "nvidia.com/gpu=all");
    assert_eq!(run(&["--network=host"]).network, Some(NetworkMode::Host));
    assert_eq!(run(&[]).network, None);
    assert_eq!(
        error(&node("RUN", &["--network=bridge"], &["x"])),
        "invalid network mode \"bridge\""
    );
    assert_eq!(
        error(&node("RUN", &["--security=none"], &["x"])),
        "security \"none\" is not valid"
    );
    assert_eq!(
        error(&node("RUN", &["--mnt=type=cache"], &["x"])),
        "unknown flag: --mnt (did you mean mount?)"
    );
    assert_eq!(
        error(&node("RUN", &["--network=none", "--network=host"], &["x"])),
        "duplicate flag specified: --network"
    );
}

#[test]
fn copy_flags() {
    let n = node(
        "COPY",
        &[
            "--from=builder",
            "--chown=1000:1000",
            "--chmod=u+x,g=r",
            "--link",
            "--parents",
            "--exclude=*.md",
            "--exclude=.git",
        ],
        &["a", "b", "/dest/"],
    );
    let Instruction::Copy(c) = parse_instruction(&n).unwrap() else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("builder"));
    assert_eq!(c.chown.as_deref(), Some("1000:1000"));
    assert!(matches!(&c.chmod, Some(Chmod::Symbolic(s)) if s.text == "u+x,g=r"));
    assert!(c.link && c.parents);
    assert_eq!(c.excludes, vec!["*.md", ".git"]);
    assert_eq!(c.sources.paths, vec!["a", "b"]);
    assert_eq!(c.sources.dest, "/dest/");

    let Instruction::Copy(c) =
        parse_instruction(&node("COPY", &["--chmod=755"], &["a", "/b"])).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.chmod, Some(Chmod::Octal(0o755)));
    assert_eq!(
        error(&node("COPY", &["--chmod=8888"], &["a", "/b"])),
        "invalid chmod parameter: '8888'. it should be octal string and between 0 and 07777"
    );
    assert_eq!(
        error(&node("COPY", &["--checksum=sha256:x"], &["a", "/b"])),
        "unknown flag: --checksum"
    );
    assert_eq!(
        error(&node("COPY", &["--link=maybe"], &["a", "/b"])),
        "expecting boolean value for flag --link, not: maybe"
    );
}

#[test]
fn add_flags() {
    let n = node(
        "ADD",
        &[
            "--keep-git-dir",
            "--checksum=sha256:abc",
            "--unpack=false",
            "--chmod=0644",
        ],
        &["https://example.invalid/a.tar.gz", "/a"],
    );
    let Instruction::Add(a) = parse_instruction(&n).unwrap() else {
        panic!()
    };
    assert_eq!(a.keep_git_dir, Some(true));
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!(a.unpack, Some(false));
    assert_eq!(a.chmod, Some(Chmod::Octal(0o644)));
    let Instruction::Add(a) = parse_instruction(&node("ADD", &[], &["a", "/b"])).unwrap() else {
        panic!()
    };
    assert_eq!((a.keep_git_dir, a.unpack), (None, None));
    assert_eq!(
        error(&node("ADD", &["--from=x"], &["a", "/b"])),
        "unknown flag: --from"
    );
}

#[test]
fn copy_heredoc_sources() {
    let mut n = node("COPY", &[], &["<<-EOF", "<<'RAW'", "file", "/dest"]);
    n.heredocs = vec![
        Heredoc {
            name: "EOF".to_string(),
            content: "\thello $USER\n".to_string(),
            expand: true,
            chomp: true,
            file_descriptor: 0,
        },
        Heredoc {
            name: "RAW".to_string(),
            content: "$kept\n".to_string(),
            expand: false,
            chomp: false,
            file_descriptor: 0,
        },
    ];
    let Instruction::Copy(c) = parse_instruction(&n).unwrap() else {
        panic!()
    };
    assert_eq!(c.sources.paths, vec!["file"]);
    assert_eq!(c.sources.contents.len(), 2);
    assert_eq!(c.sources.contents[0].path, "EOF");
    assert_eq!(c.sources.contents[0].data, "hello $USER\n");
    assert!(c.sources.contents[0].expand);
    assert_eq!(c.sources.contents[1].data, "$kept\n");
    assert!(!c.sources.contents[1].expand);
    let vars = |w: &str| -> hoist_dockerfile::Result<String> { Ok(w.replace("$USER", "root")) };
    let expanded = c.sources.expand_contents(&vars).unwrap();
    assert_eq!(expanded.contents[0].data, "hello root\n");
    assert_eq!(
        expanded.contents[1].data, "$kept\n",
        "a quoted delimiter keeps the body"
    );
    assert_eq!(
        error(&node("COPY", &[], &["a", "<<EOF"])),
        "COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn from_forms() {
    let Instruction::From(f) = parse_instruction(&node(
        "FROM",
        &["--platform=$BUILDPLATFORM"],
        &["golang:1.22", "AS", "Builder"],
    ))
    .unwrap() else {
        panic!()
    };
    assert_eq!(f.image, "golang:1.22");
    assert_eq!(f.name.as_deref(), Some("builder"));
    assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(
        error(&node("FROM", &[], &["a", "b"])),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        error(&node("FROM", &[], &["a", "as", "1st"])),
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        error(&node("FROM", &[], &["a", "as", "b@d"])),
        "invalid name for build stage: \"b@d\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        error(&node("FROM", &["--plattform=x"], &["a"])),
        "unknown flag: --plattform (did you mean platform?)"
    );
}

#[test]
fn env_label_arg() {
    let Instruction::Env(e) =
        parse_instruction(&node("ENV", &[], &["A", "1", "=", "B", "two words", ""])).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.vars[0].key, "A");
    assert!(!e.vars[0].no_delim);
    assert_eq!(e.vars[1].value, "two words");
    assert!(e.vars[1].no_delim);
    assert_eq!(
        error(&node("ENV", &[], &["", "1", "="])),
        "ENV names can not be blank"
    );
    assert_eq!(
        error(&node("LABEL", &[], &["a", "b"])),
        "Bad input to LABEL, too many arguments"
    );
    let Instruction::Arg(a) = parse_instruction(&node("ARG", &[], &["A", "B=1", "C="])).unwrap()
    else {
        panic!()
    };
    let keys: Vec<_> = a
        .args
        .iter()
        .map(|d| (d.key.as_str(), d.value.as_deref()))
        .collect();
    assert_eq!(keys, vec![("A", None), ("B", Some("1")), ("C", Some(""))]);
    assert_eq!(
        error(&node("ARG", &[], &["=1"])),
        "ARG names can not be blank"
    );
    assert_eq!(
        error(&node("ARG", &[], &[])),
        "ARG requires at least one argument"
    );
}

#[test]
fn cmd_entrypoint_shell_volume_expose() {
    let Instruction::Entrypoint(e) =
        parse_instruction(&json(node("ENTRYPOINT", &[], &[]))).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.line, CommandLine::Exec(vec![]));
    let Instruction::Shell(s) =
        parse_instruction(&json(node("SHELL", &[], &["/bin/bash", "-c"]))).unwrap()
    else {
        panic!()
    };
    assert_eq!(s.shell, vec!["/bin/bash", "-c"]);
    assert_eq!(
        error(&node("SHELL", &[], &["bash -c"])),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        error(&json(node("SHELL", &[], &[]))),
        "SHELL requires at least one argument"
    );
    assert_eq!(
        error(&json(node("VOLUME", &[], &["/a", " "]))),
        "VOLUME specified can not be an empty string"
    );
    let Instruction::Expose(e) =
        parse_instruction(&node("EXPOSE", &[], &["8080", "443/tcp", "80"])).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.ports, vec!["443/tcp", "80", "8080"]);
}

#[test]
fn healthcheck_forms() {
    let n = node(
        "HEALTHCHECK",
        &[
            "--interval=1m30s",
            "--timeout=3s",
            "--start-period=0s",
            "--start-interval=5ms",
            "--retries=3",
        ],
        &["CMD", "curl -f http://localhost/"],
    );
    let Instruction::Healthcheck(Healthcheck::Cmd(h)) = parse_instruction(&n).unwrap() else {
        panic!()
    };
    assert_eq!(h.test, vec!["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!(h.interval.as_secs(), 90);
    assert_eq!(h.timeout.as_secs(), 3);
    assert!(h.start_period.is_zero());
    assert_eq!(h.start_interval.as_millis(), 5);
    assert_eq!(h.retries, 3);
    let Instruction::Healthcheck(Healthcheck::Cmd(h)) =
        parse_instruction(&json(node("HEALTHCHECK", &[], &["cmd", "curl", "-f"]))).unwrap()
    else {
        panic!()
    };
    assert_eq!(h.test, vec!["CMD", "curl", "-f"]);
    assert_eq!(
        parse_instruction(&node("HEALTHCHECK", &[], &["none"])).unwrap(),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        error(&node("HEALTHCHECK", &[], &["NONE", "x"])),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        error(&node("HEALTHCHECK", &[], &["RUN", "x"])),
        "Unknown type \"RUN\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        error(&node("HEALTHCHECK", &[], &["CMD"])),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        error(&node("HEALTHCHECK", &["--retries=-1"], &["CMD", "x"])),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        error(&node("HEALTHCHECK", &["--retries=x"], &["CMD", "x"])),
        "strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        error(&node("HEALTHCHECK", &["--timeout=10"], &["CMD", "x"])),
        "time: missing unit in duration \"10\""
    );
    assert_eq!(
        error(&node("HEALTHCHECK", &["--timeout=-5s"], &["CMD", "x"])),
        "Interval \"timeout\" cannot be less than 1ms"
    );
}

#[test]
fn onbuild_nested() {
    let mut n = node("ONBUILD", &[], &[]);
    n.nested = Some(Box::new(node("RUN", &[], &["make"])));
    n.original = "ONBUILD RUN make".to_string();
    let Instruction::OnBuild(o) = parse_instruction(&n).unwrap() else {
        panic!()
    };
    assert_eq!(o.expression, "RUN make");
    assert!(matches!(*o.trigger, Instruction::Run(_)));

    for (keyword, message) in [
        (
            "onbuild",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("from", "FROM isn't allowed as an ONBUILD trigger"),
        (
            "maintainer",
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
    ] {
        let mut n = node("ONBUILD", &[], &[]);
        n.nested = Some(Box::new(node(keyword, &[], &["x"])));
        assert_eq!(error(&n), message);
    }
    assert_eq!(
        error(&node("ONBUILD", &[], &[])),
        "ONBUILD requires at least one argument"
    );
}

#[test]
fn unknown_instruction_keeps_its_case() {
    assert_eq!(
        error(&node("BLAH", &[], &["bar"])),
        "unknown instruction: BLAH"
    );
    assert_eq!(
        error(&node("blah", &[], &["bar"])),
        "unknown instruction: blah"
    );
    // Like BuildKit: FROM is two edits away from FOO.
    assert_eq!(
        error(&node("FOO", &[], &["bar"])),
        "unknown instruction: FOO (did you mean FROM?)"
    );
    assert_eq!(
        error(&node("COPPY", &[], &["a", "b"])),
        "unknown instruction: COPPY (did you mean COPY?)"
    );
}

#[test]
fn flags_on_instructions_without_flags() {
    assert_eq!(
        error(&node("MAINTAINER", &["--boo"], &["joe@example.com"])),
        "unknown flag: --boo"
    );
    assert_eq!(
        error(&node("ENV", &["--x=1"], &["a", "b", "="])),
        "unknown flag: --x"
    );
    // BuildKit does not read flags of ARG and STOPSIGNAL.
    assert!(parse_instruction(&node("STOPSIGNAL", &["--x"], &["SIGKILL"])).is_ok());
    assert!(parse_instruction(&node("ARG", &["--x"], &["a"])).is_ok());
}

fn dockerfile(children: Vec<Node>) -> Dockerfile {
    Dockerfile {
        children,
        span: LineSpan { start: 1, end: 9 },
        escape: '\\',
        warnings: vec![],
    }
}

#[test]
fn stages_and_meta_args() {
    let mut arg = at(node("ARG", &[], &["VERSION=1", "OTHER"]), 1);
    arg.prev_comment = vec!["VERSION picks the version".to_string()];
    let mut from = at(node("FROM", &[], &["base:$VERSION", "AS", "Build"]), 3);
    from.prev_comment = vec!["build compiles".to_string()];
    let df = dockerfile(vec![
        arg,
        from,
        at(node("RUN", &[], &["make"]), 4),
        at(node("ARG", &[], &["LATE"]), 5),
        at(node("FROM", &[], &["scratch"]), 6),
        at(json(node("COPY", &["--from=build"], &["/out", "/"])), 7),
    ]);
    let (metas, stages) = parse_stages(&df).unwrap();
    assert_eq!(metas.len(), 2);
    assert_eq!(metas[0].key, "VERSION");
    assert_eq!(metas[0].value.as_deref(), Some("1"));
    assert_eq!(metas[0].doc_comment, "picks the version");
    assert_eq!(metas[1].doc_comment, "");
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    assert_eq!(stages[0].doc_comment, "compiles");
    assert_eq!(stages[0].base_name, "base:$VERSION");
    assert_eq!(stages[0].commands.len(), 2);
    assert_eq!(stages[0].commands[1].span.start, 5);
    assert_eq!((stages[1].index, stages[1].name.as_deref()), (1, None));
    assert_eq!(stages[1].display_name(), "1");
}

#[test]
fn stage_errors() {
    let df = dockerfile(vec![
        at(node("ARG", &[], &["A"]), 1),
        at(node("RUN", &[], &["x"]), 2),
    ]);
    match parse_stages(&df) {
        Err(Error::Instruction { span, message }) => {
            assert_eq!(span.start, 2);
            assert_eq!(message, "no build stage in current context");
        }
        other => panic!("{other:?}"),
    }
    let df = dockerfile(vec![at(node("ARG", &[], &["A"]), 1)]);
    assert_eq!(
        parse_stages(&df).unwrap_err().to_string(),
        "dockerfile contains no stages to build"
    );
    let df = dockerfile(vec![
        at(node("FROM", &[], &["a"]), 1),
        at(node("BLAH", &[], &["x"]), 3),
    ]);
    assert_eq!(
        parse_stages(&df).unwrap_err().to_string(),
        "dockerfile parse error on line 3: unknown instruction: BLAH"
    );
}

#[test]
fn expansion() {
    let vars = |word: &str| -> hoist_dockerfile::Result<String> {
        Ok(word
            .replace("$V", "1.2")
            .replace("$MODE", "0750")
            .replace("$U", "app"))
    };
    let Instruction::Copy(c) = parse_instruction(&node(
        "COPY",
        &["--from=x", "--chmod=$MODE", "--chown=$U", "--exclude=$V"],
        &["src-$V", "/opt/$V/"],
    ))
    .unwrap() else {
        panic!()
    };
    assert_eq!(c.chmod, Some(Chmod::Unexpanded("$MODE".to_string())));
    let Instruction::Copy(c) = Instruction::Copy(c).expand(&vars).unwrap() else {
        panic!()
    };
    assert_eq!(c.chmod, Some(Chmod::Octal(0o750)));
    assert_eq!(c.chown.as_deref(), Some("app"));
    assert_eq!(c.sources.paths, vec!["src-1.2"]);
    assert_eq!(c.sources.dest, "/opt/1.2/");
    assert_eq!(c.excludes, vec!["$V"], "BuildKit does not expand --exclude");

    let bad = |word: &str| -> hoist_dockerfile::Result<String> { Ok(word.replace("$MODE", "9")) };
    let mut n = at(node("COPY", &["--chmod=$MODE"], &["a", "b"]), 7);
    n.original = "COPY --chmod=$MODE a b".to_string();
    let command = hoist_dockerfile::instructions::parse_command(&n).unwrap();
    match command.expand(&bad) {
        Err(Error::Instruction { span, message }) => {
            assert_eq!(span.start, 7);
            assert!(
                message.starts_with("invalid chmod parameter: '9'"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    for (n, expected) in [
        (
            node("ENV", &[], &["K$V", "v$V", "="]),
            "ENV \"K1.2\"=\"v1.2\"",
        ),
        (node("LABEL", &[], &["k", "$V", "="]), "LABEL \"k\"=\"1.2\""),
        (node("WORKDIR", &[], &["/$V"]), "WORKDIR \"/1.2\""),
        (node("USER", &[], &["$U"]), "USER \"app\""),
        (node("EXPOSE", &[], &["$V"]), "EXPOSE [\"1.2\"]"),
        (node("STOPSIGNAL", &[], &["SIG$U"]), "STOPSIGNAL \"SIGapp\""),
        (node("VOLUME", &[], &["/$U"]), "VOLUME [\"/app\"]"),
        (node("ARG", &[], &["A=$V"]), "ARG A=\"1.2\""),
        (
            node("FROM", &["--platform=$U"], &["img:$V"]),
            "FROM --platform=app img:1.2",
        ),
        (node("CMD", &[], &["echo $V"]), "CMD [shell] \"echo $V\""),
    ] {
        let expanded = parse_instruction(&n).unwrap().expand(&vars).unwrap();
        assert_eq!(expanded.to_string(), expected);
    }
}
