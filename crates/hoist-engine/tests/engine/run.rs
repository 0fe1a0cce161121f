//! RUN through the engine with the scripted executor: what the step is given (rootfs with
//! its inputs, args, env, working directory), where its writes go (the step's layer and
//! the image), and how a failing step is reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hoist_sandbox::{ExitStatus, OutputStream, RunSpec};

use crate::case::Case;

/// The path → size of every entry of the uncompressed layer `digest` in the case's store.
fn layer_entries(case: &Case, digest: &hoist_oci::Digest) -> BTreeMap<String, u64> {
    let store = case.state().open_content_store().unwrap();
    let blob = store.read_blob(digest).unwrap();
    let mut archive = tar::Archive::new(&blob[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.size())
        })
        .collect()
}

/// `sh -c "upper SRC DST"`: DST (in the rootfs) becomes SRC upper-cased.
fn upper(spec: &RunSpec, sink: &mut dyn hoist_sandbox::OutputSink) -> std::io::Result<ExitStatus> {
    let script = spec.args.last().cloned().unwrap_or_default();
    let words: Vec<&str> = script.split_whitespace().collect();
    let ["upper", src, dst] = words[..] else {
        return Ok(ExitStatus::Code(127));
    };
    let text = std::fs::read_to_string(spec.rootfs.join(src.trim_start_matches('/')))?;
    std::fs::write(
        spec.rootfs.join(dst.trim_start_matches('/')),
        text.to_uppercase(),
    )?;
    sink.line(OutputStream::Stdout, format!("wrote {dst}\n").as_bytes());
    Ok(ExitStatus::Code(0))
}

#[test]
fn a_runs_writes_are_its_layer_and_reach_the_image() {
    let case = Case::new(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN upper /a.txt /b.txt\n",
        &[("a.txt", "hello\n")],
    )
    .script(upper);
    let built = case.build();
    assert_eq!(case.runs(), 1);
    assert_eq!(built.read("a.txt"), "hello\n");
    assert_eq!(built.read("b.txt"), "HELLO\n");
    let image = &built.result.images[0];
    assert_eq!(image.layers.len(), 2, "{:?}", image.layers);
    // The RUN's layer holds what it wrote and nothing it was given.
    let run_layer = layer_entries(&case, &image.layers[1].descriptor.digest);
    assert_eq!(run_layer, BTreeMap::from([("b.txt".to_owned(), 6)]));
    let copy_layer = layer_entries(&case, &image.layers[0].descriptor.digest);
    assert_eq!(copy_layer, BTreeMap::from([("a.txt".to_owned(), 6)]));
    let history = &image.config.history;
    assert!(
        history.iter().any(|h| h
            .created_by
            .as_deref()
            .is_some_and(|c| c.contains("upper /a.txt /b.txt"))),
        "{history:?}"
    );
}

#[test]
fn a_run_gets_the_shell_form_env_workdir_and_user_of_its_stage() {
    // Each run's spec, and whether its working directory was there when it ran.
    let seen: Arc<Mutex<Vec<(RunSpec, bool)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let case = Case::new(
        "FROM scratch\nENV GREETING=hi\nWORKDIR /work/dir\nUSER 1000:1000\nRUN echo $GREETING\n",
        &[],
    )
    .script(move |spec, _| {
        let workdir = spec.rootfs.join("work/dir").is_dir();
        record.lock().unwrap().push((spec.clone(), workdir));
        Ok(ExitStatus::Code(0))
    });
    case.build();
    let seen = seen.lock().unwrap();
    let [(spec, workdir_made)] = &seen[..] else {
        panic!("one run expected: {seen:?}")
    };
    assert_eq!(spec.args, ["/bin/sh", "-c", "echo $GREETING"]);
    assert!(
        spec.env.contains(&("GREETING".to_owned(), "hi".to_owned())),
        "{:?}",
        spec.env
    );
    assert_eq!(spec.cwd, std::path::Path::new("/work/dir"));
    assert_eq!((spec.user.uid, spec.user.gid), (1000, 1000));
    assert!(workdir_made, "the working directory is made before the run");
}

#[test]
fn a_failing_run_names_its_command_and_last_output_and_is_not_cached() {
    let case = Case::new("FROM scratch\nRUN make things\n", &[]).script(|_, sink| {
        sink.line(OutputStream::Stderr, b"make: no rule for things\n");
        Ok(ExitStatus::Code(2))
    });
    let err = case.build_with(|_| {}).err().expect("the build fails");
    let hoist_engine::Error::Step { step, output, .. } = &err else {
        panic!("not a step's failure: {err:?}")
    };
    assert!(step.contains("RUN make things"), "{step}");
    assert_eq!(output, &["make: no rule for things"]);
    let text = err.to_string();
    assert!(
        text.contains(
            "process \"/bin/sh -c make things\" did not complete successfully: exit code: 2"
        ),
        "{text}"
    );
    // Failures are not remembered: the step runs again.
    assert!(case.build_with(|_| {}).is_err());
    assert_eq!(case.runs(), 2);
}
