//! Regressions of issue 15 where hoist's conversion differed from BuildKit's: the working
//! directory as written, exec-form JSON followed by text, ARG names from variables, escaped
//! wildcards in COPY sources.

use crate::support::*;
use hoist_frontend::Converted;
use hoist_graph::{FileAction, Op};

fn target_exec(c: &Converted) -> hoist_graph::Exec {
    let v = c.graph.get(c.target.unwrap().vertex).unwrap();
    match &v.op {
        Op::Exec(e) => e.clone(),
        other => panic!("target is {other:?}"),
    }
}

#[test]
fn workdir_keeps_its_trailing_slash_in_the_config() {
    let c = build("FROM busybox\nWORKDIR /a/b/\nRUN pwd\n", &options()).unwrap();
    assert_eq!(c.config.config.working_dir, "/a/b/");
    assert_eq!(target_exec(&c).cwd, "/a/b/");
    let texts: Vec<_> = c
        .config
        .history
        .iter()
        .filter_map(|h| h.created_by.clone())
        .collect();
    assert!(texts.contains(&"WORKDIR /a/b/".to_string()), "{texts:?}");
}

#[test]
fn workdir_keeps_an_absolute_path_as_written_and_cleans_a_relative_one() {
    // As dockerd 20.10's BuildKit and current BuildKit (`NormalizePath`) do.
    let c = build("FROM busybox\nWORKDIR /x/../y/./z\n", &options()).unwrap();
    assert_eq!(c.config.config.working_dir, "/x/../y/./z");
    let c = build(
        "FROM busybox\nWORKDIR /x/../y/./z\nWORKDIR rel/\n",
        &options(),
    )
    .unwrap();
    assert_eq!(c.config.config.working_dir, "/y/z/rel");
}

#[test]
fn workdir_mkdir_is_the_path_as_written() {
    let c = build("FROM busybox\nWORKDIR /a/b/\n", &options()).unwrap();
    let v = c.graph.get(c.target.unwrap().vertex).unwrap();
    let Op::File(file) = &v.op else {
        panic!("target is {:?}", v.op)
    };
    let [FileAction::Mkdir(mkdir)] = file.actions.as_slice() else {
        panic!("actions {:?}", file.actions)
    };
    assert_eq!(mkdir.path, "/a/b/");
    assert!(mkdir.make_parents);
}

#[test]
fn exec_form_followed_by_text_is_shell_form_as_in_current_buildkit() {
    // Finding 7 of issue 15 came from dockerd 20.10, whose BuildKit decoded the first JSON
    // value and ignored the rest (`["myentrypoint"]`). BuildKit 0.15 (commit 80518e257,
    // "fix invalid usage of json.NewDecoder") decodes the whole text, so trailing text makes
    // it invalid JSON and the instruction falls back to shell form; hoist follows that.
    let c = build(
        "FROM busybox\nENTRYPOINT [\"myentrypoint\"] # a comment\nCMD [\"a\"] [\"b\"]\n",
        &options(),
    )
    .unwrap();
    assert_eq!(
        c.config.config.entrypoint,
        ["/bin/sh", "-c", "[\"myentrypoint\"] # a comment"]
    );
    assert_eq!(c.config.config.cmd, ["/bin/sh", "-c", "[\"a\"] [\"b\"]"]);
}

#[test]
fn arg_name_is_not_expanded_as_in_current_buildkit() {
    // Finding 8 of issue 15 came from dockerd 20.10, whose BuildKit expanded an ARG's name
    // (`ARG ${src}=default` declared `file3`). Since BuildKit 0.14 (commit 47a52a17b, "avoid
    // evaluating ARG default if unused") ARG is left out of the word expansion of other
    // instructions and only its default is expanded, so the name is kept as written and
    // `--build-arg file3=…` sets nothing; hoist follows that.
    let mut opts = options();
    opts.build_args.insert("file3".into(), "given".into());
    let c = build(
        "FROM busybox\nENV src file3\nARG ${src}=default\nRUN echo \"[$file3]\"\n",
        &opts,
    )
    .unwrap();
    let exec = target_exec(&c);
    assert!(
        exec.env.iter().any(|e| e == "${src}=default"),
        "{:?}",
        exec.env
    );
    assert!(
        !exec.env.iter().any(|e| e.starts_with("file3=")),
        "{:?}",
        exec.env
    );
    let texts: Vec<_> = c
        .config
        .history
        .iter()
        .filter_map(|h| h.created_by.clone())
        .collect();
    assert!(
        texts.contains(&"ARG ${src}=default".to_string()),
        "{texts:?}"
    );
}
