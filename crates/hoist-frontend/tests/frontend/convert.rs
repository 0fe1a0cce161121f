//! Conversion behaviour: ARG/ENV scoping, history texts, config fields, multi-platform
//! digests, errors.

use crate::support::*;
use hoist_frontend::{plan, Base, Converted, Error};
use hoist_graph::{FileAction, MountKind, Op};
use hoist_oci::Platform;

fn history(c: &Converted) -> Vec<String> {
    c.config
        .history
        .iter()
        .map(|h| {
            format!(
                "{}{}",
                h.created_by.clone().unwrap_or_default(),
                if h.empty_layer { " (empty)" } else { "" }
            )
        })
        .collect()
}

/// History entries the Dockerfile added (the fake base image has one).
fn new_history(c: &Converted) -> Vec<String> {
    history(c)
        .into_iter()
        .filter(|h| !h.contains("#(nop) ADD file"))
        .collect()
}

fn target_exec(c: &Converted) -> hoist_graph::Exec {
    let v = c.graph.get(c.target.unwrap().vertex).unwrap();
    match &v.op {
        Op::Exec(e) => e.clone(),
        other => panic!("target is {other:?}"),
    }
}

#[test]
fn history_texts_follow_buildkit() {
    let c = build(
        "FROM busybox\nARG A=1\nARG B\nENV foo=bar baz=\"q x\"\nRUN echo hi\nWORKDIR /x\nWORKDIR /\nCOPY --chown=app:staff --chmod=0755 a b /dest/\nUSER nobody\nLABEL l=v\nEXPOSE 80 53/udp\nVOLUME /data /cache\nSTOPSIGNAL SIGKILL\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo $HOME\nMAINTAINER me\n",
        &{
            let mut o = options();
            o.build_args.insert("B".into(), "2".into());
            o
        },
    )
    .unwrap();
    assert_eq!(
        new_history(&c),
        [
            "ARG A=1 (empty)",
            "ARG B=2 (empty)",
            "ENV foo=bar baz=q x (empty)",
            "RUN |2 A=1 B=2 /bin/sh -c echo hi # buildkit",
            "WORKDIR /x",
            "WORKDIR / (empty)",
            "COPY --chown=app:staff --chmod=0755 a b /dest/ # buildkit",
            "USER nobody (empty)",
            "LABEL l=v (empty)",
            "EXPOSE [53/udp 80/tcp] (empty)",
            "VOLUME [/data /cache] (empty)",
            "STOPSIGNAL SIGKILL (empty)",
            "SHELL [/bin/bash -c] (empty)",
            r#"CMD ["/bin/bash" "-c" "echo $HOME"] (empty)"#,
            "MAINTAINER me (empty)",
        ]
    );
    let cfg = &c.config.config;
    assert_eq!(cfg.user, "nobody");
    assert_eq!(cfg.working_dir, "/");
    assert_eq!(cfg.cmd, ["/bin/bash", "-c", "echo $HOME"]);
    assert!(cfg.args_escaped);
    assert_eq!(cfg.stop_signal, "SIGKILL");
    assert_eq!(cfg.shell, ["/bin/bash", "-c"]);
    assert_eq!(c.config.author.as_deref(), Some("me"));
    assert_eq!(
        cfg.env,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "foo=bar",
            "baz=q x"
        ]
    );
    assert!(c
        .config
        .history
        .iter()
        .skip(1)
        .all(|h| h.comment.as_deref() == Some("buildkit.dockerfile.v0")));
}

#[test]
fn global_args_need_a_bare_arg_in_the_stage() {
    let df = "ARG V=global\nFROM busybox\nRUN echo 1 $V\nARG V\nRUN echo 2 $V\nARG V=local\nRUN echo 3 $V\n";
    let c = build(df, &options()).unwrap();
    let h = new_history(&c);
    assert_eq!(h[0], "RUN /bin/sh -c echo 1 $V # buildkit");
    assert_eq!(h[1], "ARG V=global (empty)");
    assert_eq!(h[2], "RUN |1 V=global /bin/sh -c echo 2 $V # buildkit");
    assert_eq!(h[3], "ARG V=local (empty)");
    assert_eq!(h[4], "RUN |1 V=local /bin/sh -c echo 3 $V # buildkit");
    assert!(target_exec(&c).env.contains(&"V=local".to_string()));

    // A build arg overrides both defaults.
    let mut o = options();
    o.build_args.insert("V".into(), "cli".into());
    let c = build(df, &o).unwrap();
    assert_eq!(
        new_history(&c)[4],
        "RUN |1 V=cli /bin/sh -c echo 3 $V # buildkit"
    );
}

#[test]
fn undeclared_build_args_stay_out_of_env_and_history() {
    let mut o = options();
    o.build_args
        .insert("HTTP_PROXY".into(), "http://proxy:3128".into());
    o.build_args.insert("UNUSED".into(), "x".into());
    let c = build("FROM busybox\nRUN wget example.com\n", &o).unwrap();
    let exec = target_exec(&c);
    assert!(!exec
        .env
        .iter()
        .any(|e| e.starts_with("HTTP_PROXY") || e.starts_with("UNUSED")));
    assert_eq!(
        exec.proxy.unwrap().http_proxy.as_deref(),
        Some("http://proxy:3128")
    );
    assert_eq!(
        new_history(&c),
        ["RUN /bin/sh -c wget example.com # buildkit"]
    );
    // The proxy is not part of the digest.
    let plain = build("FROM busybox\nRUN wget example.com\n", &options()).unwrap();
    let digest = |c: &Converted| {
        c.graph
            .get(c.target.unwrap().vertex)
            .unwrap()
            .digest
            .clone()
    };
    assert_eq!(digest(&c), digest(&plain));

    // Declared, it is an ordinary ARG.
    let c = build("FROM busybox\nARG HTTP_PROXY\nRUN wget example.com\n", &o).unwrap();
    assert_eq!(
        new_history(&c)[1],
        "RUN |1 HTTP_PROXY=http://proxy:3128 /bin/sh -c wget example.com # buildkit"
    );
}

#[test]
fn platform_args() {
    let df = "FROM --platform=$BUILDPLATFORM busybox AS b\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH\nRUN echo\n";
    let mut o = options_for("linux/arm/v7");
    o.build_platform = Platform::new("linux", "amd64");
    let c = build(df, &o).unwrap();
    assert_eq!(
        new_history(&c)[0],
        "ARG TARGETPLATFORM=linux/arm/v7 TARGETOS=linux TARGETARCH=arm TARGETVARIANT=v7 BUILDPLATFORM=linux/amd64 BUILDARCH=amd64 (empty)"
    );
    // The stage runs on the build platform, the config says the target's.
    let v = c.graph.get(c.target.unwrap().vertex).unwrap();
    assert_eq!(v.platform.as_ref().unwrap().format(), "linux/amd64");
    assert_eq!(
        (
            c.config.os.as_str(),
            c.config.architecture.as_str(),
            c.config.variant.as_deref()
        ),
        ("linux", "arm", Some("v7"))
    );
}

#[test]
fn base_image_references_expand_meta_args_and_platforms() {
    let df = "ARG TAG=3.19\nARG REG\nFROM ${REG:-docker.io}/library/alpine:$TAG AS a\nFROM --platform=$BUILDPLATFORM golang:1.22 AS b\nFROM --platform=linux/${TARGETARCH} busybox\nCOPY --from=a / /\nCOPY --from=nginx:1 / /\nFROM unused:1\n";
    let mut o = options_for("linux/arm64");
    o.target = Some("stage-2".into());
    let df = hoist_dockerfile::parser::parse(df).unwrap();
    let err = plan(&df, &o).unwrap_err();
    assert!(err
        .to_string()
        .contains("target stage \"stage-2\" could not be found"));
    o.target = None;
    let mut o2 = o.clone();
    o2.build_args.insert("TAG".into(), "edge".into());
    let df2 = "ARG TAG=3.19\nFROM alpine:$TAG AS a\nFROM --platform=$BUILDPLATFORM golang:1.22 AS b\nFROM --platform=linux/${TARGETARCH} busybox AS c\nCOPY --from=a / /\nCOPY --from=nginx:1 / /\n";
    let p = plan(&hoist_dockerfile::parser::parse(df2).unwrap(), &o2).unwrap();
    let images: Vec<String> = p
        .images
        .iter()
        .map(|r| format!("{} {}", r.reference, r.platform.format()))
        .collect();
    assert_eq!(
        images,
        [
            "docker.io/library/alpine:edge linux/arm64",
            "docker.io/library/busybox:latest linux/arm64",
            "docker.io/library/nginx:1 linux/arm64",
        ],
        "golang is not reachable from the target, so it is not resolved"
    );
    assert!(!p.stages[1].reachable);
    assert_eq!(p.stages[3].base, Base::Image(p.images[2].clone()));
    let _ = df;
}

#[test]
fn entrypoint_resets_inherited_cmd() {
    let c = build("FROM busybox\nENTRYPOINT [\"/app\"]\n", &options()).unwrap();
    assert_eq!(c.config.config.entrypoint, ["/app"]);
    assert!(c.config.config.cmd.is_empty());
    let c = build("FROM busybox\nCMD [\"x\"]\nENTRYPOINT /app\n", &options()).unwrap();
    assert_eq!(c.config.config.entrypoint, ["/bin/sh", "-c", "/app"]);
    assert_eq!(c.config.config.cmd, ["x"]);
    let c = build(
        "FROM busybox\nENTRYPOINT [\"/app\"]\nCMD [\"y\"]\n",
        &options(),
    )
    .unwrap();
    assert_eq!(c.config.config.cmd, ["y"]);
}

#[test]
fn scratch_config() {
    let c = build("FROM scratch\nENV foo=bar\n", &options_for("linux/amd64")).unwrap();
    assert!(c.target.is_none());
    assert_eq!(c.config.config.working_dir, "/");
    assert_eq!(c.config.rootfs.kind, "layers");
    assert_eq!(
        c.config.config.env,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "foo=bar"
        ]
    );
    let c = build(
        "FROM scratch\nENTRYPOINT foo bar\n",
        &options_for("windows/amd64"),
    )
    .unwrap();
    assert_eq!(c.config.config.entrypoint, ["cmd", "/S", "/C", "foo bar"]);
    assert!(c.config.config.env.is_empty());
}

#[test]
fn healthcheck_and_labels() {
    let mut o = options();
    o.labels.insert("org.example".into(), "1".into());
    let c = build(
        "FROM busybox\nHEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/\n",
        &o,
    )
    .unwrap();
    let hc = c.config.config.healthcheck.clone().unwrap();
    assert_eq!(hc.test, ["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!(hc.interval, 30_000_000_000);
    assert_eq!(
        new_history(&c),
        ["HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/] Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3} (empty)"]
    );
    assert_eq!(c.config.config.labels["org.example"], "1");
}

#[test]
fn onbuild_triggers_of_the_base_run_first() {
    let c = build(
        "FROM example/onbuild\nRUN echo mine\nONBUILD RUN echo later\n",
        &options(),
    )
    .unwrap();
    assert_eq!(
        new_history(&c),
        [
            "RUN /bin/sh -c echo triggered # buildkit",
            "WORKDIR /app",
            "RUN /bin/sh -c echo mine # buildkit",
        ]
    );
    assert_eq!(c.config.config.on_build, ["RUN echo later"]);
    assert_eq!(target_exec(&c).cwd, "/app");

    // A stage's ONBUILD triggers run in the stages built on it.
    let c = build(
        "FROM busybox AS base\nONBUILD RUN echo t\nFROM base\nRUN echo x\n",
        &options(),
    )
    .unwrap();
    let h = new_history(&c);
    assert_eq!(h[h.len() - 2], "RUN /bin/sh -c echo t # buildkit");
    assert!(c.config.config.on_build.is_empty());
}

#[test]
fn base_image_workdir_and_user_are_kept() {
    let c = build("FROM example/withwd\nRUN pwd\nWORKDIR sub\n", &options()).unwrap();
    assert_eq!(c.config.config.working_dir, "/srv/sub");
    let g = &c.graph;
    let mkdir = g.get(c.target.unwrap().vertex).unwrap();
    match &mkdir.op {
        Op::File(f) => match &f.actions[0] {
            FileAction::Mkdir(m) => {
                assert_eq!(m.path, "/srv/sub");
                assert_eq!(m.owner.as_ref().unwrap().user, "nobody");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let run = g.get(mkdir.inputs[0].vertex).unwrap();
    match &run.op {
        Op::Exec(e) => {
            assert_eq!(e.cwd, "/srv");
            assert_eq!(e.user, "nobody");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn run_heredocs_and_mounts() {
    let c = build(
        "FROM busybox\nWORKDIR /w\nRUN --mount=type=cache,target=cache --mount=type=secret,id=tok --mount=type=bind,source=src,target=/src <<EOF\n#!/bin/sh\necho hi\nEOF\n",
        &options(),
    )
    .unwrap();
    let exec = target_exec(&c);
    assert_eq!(exec.args, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    let targets: Vec<(&str, bool)> = exec
        .mounts
        .iter()
        .map(|m| (m.target.as_str(), m.readonly))
        .collect();
    assert_eq!(
        targets,
        [
            ("/", false),
            ("/dev/pipes/", true),
            ("/w/cache", false),
            ("/run/secrets/tok", true),
            ("/src", true)
        ]
    );
    assert!(matches!(&exec.mounts[2].kind, MountKind::Cache { id, .. } if id == "cache"));
    assert_eq!(exec.mounts[4].selector.as_deref(), Some("/src"));

    let c = build("FROM busybox\nRUN <<EOF\necho a\necho b\nEOF\n", &options()).unwrap();
    assert_eq!(target_exec(&c).args, ["/bin/sh", "-c", "echo a\necho b\n"]);
}

#[test]
fn copy_heredoc_becomes_a_file() {
    let c = build(
        "FROM busybox\nENV NAME=world\nCOPY <<EOF <<'RAW' /dest/\nhello $NAME\nEOF\nkeep $NAME\nRAW\n",
        &options(),
    )
    .unwrap();
    assert_eq!(
        new_history(&c),
        [
            "ENV NAME=world (empty)",
            "COPY <<EOF <<RAW /dest/ # buildkit"
        ]
    );
    let copy = c.graph.get(c.target.unwrap().vertex).unwrap();
    let data: Vec<String> = copy
        .inputs
        .iter()
        .filter_map(|i| match &c.graph.get(i.vertex).unwrap().op {
            Op::File(f) => match &f.actions[..] {
                [FileAction::Mkfile(m)] => Some(m.data.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(data, ["hello world\n", "keep $NAME\n"]);
}

#[test]
fn copy_from_later_stage_fails_with_span() {
    let err = build(
        "FROM busybox AS target\nCOPY --from=build / /out\n\nFROM alpine AS build\nFROM target\n",
        &options(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot copy from stage \"build\", it needs to be defined before current stage \"target\""
    );
    assert_eq!(err.span().map(|s| s.start), Some(2));
}

#[test]
fn unknown_images_must_be_resolved() {
    let df = hoist_dockerfile::parser::parse("FROM busybox\n").unwrap();
    let p = plan(&df, &options()).unwrap();
    let empty = std::collections::BTreeMap::new();
    let err = hoist_frontend::convert(&p, &empty, &options()).unwrap_err();
    assert!(matches!(err, Error::ImageNotResolved { .. }));
}

#[test]
fn cross_compilation_shares_builder_vertices_across_platforms() {
    let df = "FROM --platform=$BUILDPLATFORM golang:1.22 AS builder\nWORKDIR /src\nCOPY . .\nRUN go mod download\nARG TARGETARCH\nRUN GOARCH=$TARGETARCH go build -o /out/app\n\nFROM scratch\nCOPY --from=builder /out/app /app\nENTRYPOINT [\"/app\"]\n";
    let convert_for = |p: &str| {
        let mut o = options_for(p);
        o.build_platform = Platform::new("linux", "amd64");
        build(df, &o).unwrap()
    };
    let amd = convert_for("linux/amd64");
    let arm = convert_for("linux/arm64");
    let digests = |c: &Converted| -> Vec<String> {
        c.graph
            .render(c.target.unwrap())
            .lines()
            .map(|l| l.split(' ').nth(1).unwrap().to_string())
            .collect()
    };
    let (a, b) = (digests(&amd), digests(&arm));
    // context, image, mkdir, copy, go mod download: the same vertices.
    assert_eq!(a.len(), 7);
    assert_eq!(a[..5], b[..5]);
    // The build with TARGETARCH and the final copy differ.
    assert_ne!(a[5], b[5]);
    assert_ne!(a[6], b[6]);
    assert_eq!(amd.config.architecture, "amd64");
    assert_eq!(arm.config.architecture, "arm64");

    // Without TARGETARCH the builder does not depend on the target at all, nor does the
    // final copy (a file op on a platform-independent input): the whole graph is shared,
    // only the image configs differ.
    let df2 = df.replace("ARG TARGETARCH\n", "");
    let build2 = |p: &str| {
        let mut o = options_for(p);
        o.build_platform = Platform::new("linux", "amd64");
        build(&df2, &o).unwrap()
    };
    let (amd, arm) = (build2("linux/amd64"), build2("linux/arm64"));
    assert_eq!(digests(&amd), digests(&arm));
    assert_ne!(amd.config, arm.config);
}

#[test]
fn snapshots() {
    let cases = [
        (
            "multi-stage",
            "FROM alpine AS base\nARG A=1\nENV B=2\nWORKDIR /src\nCOPY --chown=app:app . .\nRUN echo $A\nFROM scratch\nCOPY --from=base /src /out\nCMD [\"/out/app\"]\n",
            "linux/arm64",
        ),
        (
            "add-and-link",
            "FROM busybox\nADD https://example.com/a.tar.gz /x/\nADD --link archive.tar /y/\nCOPY --parents --exclude=*.md ./docs/./a/b.txt /d/\nRUN --network=none --mount=type=cache,target=/root/.cache,id=c,sharing=locked,uid=1000 make\n",
            "linux/amd64",
        ),
    ];
    for (name, dockerfile, platform) in cases {
        let c = build(dockerfile, &options_for(platform)).unwrap();
        check_snapshot(name, &snapshot(&c));
    }
}

/// Compares with `tests/snapshots/<name>.txt`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn check_snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert_eq!(actual, expected, "snapshot {name} differs");
}

#[test]
fn onbuild_copy_from_an_image_is_reported_as_pending() {
    let df = hoist_dockerfile::parser::parse("FROM example/base\nRUN true\n").unwrap();
    let o = options();
    let p = plan(&df, &o).unwrap();
    let mut resolved = resolve_all(&p.images);
    for image in resolved.values_mut() {
        image.config.config.on_build = vec!["COPY --from=example/tools /bin/tool /bin/".into()];
    }
    let pending = p.pending_images(&resolved, &o).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].reference.to_string(),
        "docker.io/example/tools:latest"
    );
    let err = hoist_frontend::convert(&p, &resolved, &o).unwrap_err();
    assert!(matches!(err, Error::ImageNotResolved { .. }), "{err}");
    resolved.extend(resolve_all(&pending));
    assert!(p.pending_images(&resolved, &o).unwrap().is_empty());
    let c = hoist_frontend::convert(&p, &resolved, &o).unwrap();
    assert_eq!(
        new_history(&c),
        [
            "COPY /bin/tool /bin/ # buildkit",
            "RUN /bin/sh -c true # buildkit"
        ]
    );
}

#[test]
fn errors_print_their_lines() {
    let source = "FROM busybox AS a\nCOPY --from=a x y\n";
    let err = build(source, &options()).unwrap_err();
    assert_eq!(
        err.excerpt("Dockerfile", source),
        "Dockerfile:2\n--------------------\n   1 |     FROM busybox AS a\n   2 | >>> COPY --from=a x y\n   3 |     \n--------------------\nERROR: circular dependency detected on stage: a\n"
    );
}

#[test]
fn named_contexts_replace_stages_images_and_from_names() {
    use hoist_frontend::NamedContext;
    let mut o = options();
    o.named_contexts
        .insert("base".into(), NamedContext::Image("alpine:3.20".into()));
    o.named_contexts
        .insert("busybox".into(), NamedContext::Local("bb".into()));
    o.named_contexts
        .insert("assets".into(), NamedContext::Local("assets-dir".into()));
    let df = "FROM ubuntu AS base\nRUN never\nFROM base\nCOPY --from=busybox /bin/sh /sh\nCOPY --from=assets . /assets\n";
    let p = plan(&hoist_dockerfile::parser::parse(df).unwrap(), &o).unwrap();
    let images: Vec<String> = p.images.iter().map(|r| r.reference.to_string()).collect();
    assert_eq!(images, ["docker.io/library/alpine:3.20"]);
    let c = build(df, &o).unwrap();
    let text = c.graph.render(c.target.unwrap());
    assert!(text.contains("local \"bb\""), "{text}");
    assert!(text.contains("local \"assets-dir\""), "{text}");
    assert!(!text.contains("never"), "{text}");
}

#[test]
fn no_cache_filter_marks_the_stage_vertices() {
    let mut o = options();
    o.no_cache_filter = Some(["b".to_string()].into_iter().collect());
    let c = build("FROM busybox AS a\nRUN one\nFROM a AS b\nRUN two\n", &o).unwrap();
    let rendered = c.graph.render(c.target.unwrap());
    let flagged: Vec<&str> = rendered
        .lines()
        .filter(|l| l.ends_with("no-cache"))
        .collect();
    assert_eq!(flagged.len(), 1);
    assert!(flagged[0].contains("two"));
}

#[test]
fn unused_stages_are_not_built() {
    let c = build(
        "FROM busybox AS unused\nRUN expensive\nFROM alpine AS used\nRUN cheap\n",
        &options(),
    )
    .unwrap();
    assert!(!c.stages[0].dispatched);
    assert!(c.stages[1].dispatched);
    assert!(!c.graph.render_all().contains("expensive"));
}

#[test]
fn source_date_epoch_dates_history_and_workdirs() {
    let mut o = options();
    o.build_args
        .insert("SOURCE_DATE_EPOCH".into(), "1700000000".into());
    let c = build("FROM busybox\nWORKDIR /app\nENV A=1\n", &o).unwrap();
    assert_eq!(c.source_date_epoch, Some(1_700_000_000));
    let created: Vec<Option<String>> = c.config.history.iter().map(|h| h.created.clone()).collect();
    assert_eq!(
        created,
        [
            None,
            Some("2023-11-14T22:13:20Z".to_string()),
            Some("2023-11-14T22:13:20Z".to_string())
        ]
    );
    let mkdir = c.graph.get(c.target.unwrap().vertex).unwrap();
    match &mkdir.op {
        Op::File(f) => assert!(
            matches!(&f.actions[0], FileAction::Mkdir(m) if m.created == Some(1_700_000_000))
        ),
        other => panic!("{other:?}"),
    }
}
