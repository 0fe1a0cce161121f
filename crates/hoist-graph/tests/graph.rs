//! Digests, deduplication and rendering of build graphs.

use hoist_graph::{
    Copy, Exec, FileAction, FileBase, FileOp, Graph, Mkdir, Mount, MountKind, MountSource, Network,
    Op, Output, Platform, ProxyEnv, Security, Source,
};

fn context() -> Op {
    Op::Source(Source::Local {
        name: "context".into(),
        include_patterns: vec![],
        exclude_patterns: vec!["*.md".into()],
        follow_paths: vec!["src".into()],
    })
}

fn image(platform: &Platform) -> Op {
    Op::Source(Source::Image {
        reference: "docker.io/library/alpine:latest".into(),
        platform: platform.clone(),
    })
}

fn run(args: &[&str], proxy: Option<ProxyEnv>) -> Op {
    Op::Exec(Exec {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: String::new(),
        network: Network::Sandbox,
        security: Security::Sandbox,
        mounts: vec![Mount {
            source: MountSource::Input(0),
            target: "/".into(),
            readonly: false,
            selector: None,
            kind: MountKind::Bind,
        }],
        output_mount: 0,
        proxy,
    })
}

/// Builds image → run → copy from context for `platform`; returns the graph and outputs.
fn build(platform: &Platform) -> (Graph, Output, Output, Output) {
    let mut g = Graph::new();
    let ctx = g.add(context(), vec![], None, "context").unwrap();
    let base = g
        .add(image(platform), vec![], Some(platform.clone()), "FROM")
        .unwrap();
    let ran = g
        .add(
            run(&["make"], None),
            vec![base],
            Some(platform.clone()),
            "RUN",
        )
        .unwrap();
    let copy = g
        .add(
            Op::File(FileOp {
                base: FileBase::Input(0),
                actions: vec![
                    FileAction::Mkdir(Mkdir {
                        path: "/app".into(),
                        mode: 0o755,
                        make_parents: true,
                        owner: None,
                        created: None,
                    }),
                    FileAction::Copy(Copy::new(1, "/src", "/app/")),
                ],
            }),
            vec![ran, ctx],
            Some(platform.clone()),
            "COPY",
        )
        .unwrap();
    (g, ctx, ran, copy)
}

#[test]
fn identical_vertices_are_added_once() {
    let mut g = Graph::new();
    let a = g.add(context(), vec![], None, "one").unwrap();
    let b = g.add(context(), vec![], None, "two").unwrap();
    assert_eq!(a, b);
    assert_eq!(g.len(), 1);
    assert_eq!(g.get(a.vertex).unwrap().name, "one");
}

#[test]
fn platform_independent_vertices_share_digests_across_graphs() {
    let amd = Platform::new("linux", "amd64");
    let arm = Platform::new("linux", "arm64");
    let (ga, ctx_a, run_a, copy_a) = build(&amd);
    let (gb, ctx_b, run_b, copy_b) = build(&arm);
    let digest = |g: &Graph, o: Output| g.get(o.vertex).unwrap().digest.clone();
    assert_eq!(digest(&ga, ctx_a), digest(&gb, ctx_b));
    assert_ne!(digest(&ga, run_a), digest(&gb, run_b));
    assert_ne!(digest(&ga, copy_a), digest(&gb, copy_b));
}

#[test]
fn proxy_variables_are_not_part_of_the_digest() {
    let p = Platform::new("linux", "amd64");
    let mut g = Graph::new();
    let base = g.add(image(&p), vec![], Some(p.clone()), "").unwrap();
    let plain = g.add(run(&["true"], None), vec![base], None, "").unwrap();
    let proxied = g
        .add(
            run(
                &["true"],
                Some(ProxyEnv {
                    http_proxy: Some("http://proxy:3128".into()),
                    ..ProxyEnv::default()
                }),
            ),
            vec![base],
            None,
            "",
        )
        .unwrap();
    assert_eq!(plain, proxied);
}

#[test]
fn digests_are_stable() {
    // The encoding is part of the cache: a change here invalidates every cache.
    let mut g = Graph::new();
    let ctx = g.add(context(), vec![], None, "").unwrap();
    let v = g.get(ctx.vertex).unwrap();
    assert_eq!(
        String::from_utf8(v.definition_bytes.clone()).unwrap(),
        r#"{"op":{"source":{"local":{"name":"context","exclude_patterns":["*.md"],"follow_paths":["src"]}}},"inputs":[]}"#
    );
    assert_eq!(
        v.digest.to_string(),
        hoist_graph::Digest::sha256_of(&v.definition_bytes).to_string()
    );
}

#[test]
fn bad_input_indexes_are_rejected() {
    let mut g = Graph::new();
    let err = g
        .add(
            Op::File(FileOp {
                base: FileBase::Scratch,
                actions: vec![FileAction::Copy(Copy::new(2, "/a", "/b"))],
            }),
            vec![],
            None,
            "",
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "file op refers to input 2 but the vertex has 0 inputs"
    );
}

#[test]
fn render_snapshot() {
    let (g, _, _, copy) = build(&Platform::new("linux", "arm64").with_variant("v8"));
    let text = g.render(copy);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    let strip = |l: &str| {
        let mut parts = l.splitn(3, ' ');
        let n = parts.next().unwrap().to_string();
        let _digest = parts.next().unwrap();
        format!("{n} {}", parts.next().unwrap())
    };
    let stripped: Vec<String> = lines.iter().map(|l| strip(l)).collect();
    assert_eq!(
        stripped.join("\n"),
        r#"v0 local "context" exclude=["*.md"] follow=["src"]
v1 image "docker.io/library/alpine:latest" [linux/arm64/v8]
v2 exec args=["make"] env=["PATH=/bin"] cwd="/" mounts=[/ <- v1] [linux/arm64/v8]
v3 file base=v2 mkdir("/app" 755 parents) copy(v0:"/src" -> "/app/") [linux/arm64/v8]"#
    );
}
