//! The build cache seen from `build`: a second identical build runs nothing, a changed
//! context file reruns the steps that read it and those after, `--no-cache` reruns every
//! step, and a record whose snapshot went missing is rebuilt.

use hoist_sandbox::ExitStatus;

use crate::case::Case;

const DOCKERFILE: &str = "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nRUN stamp\n";

/// A case whose RUN writes `/stamp` holding how many runs came before it.
fn stamping_case() -> Case {
    let case = Case::new(DOCKERFILE, &[("a.txt", "a\n"), ("b.txt", "b\n")]);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    case.script(move |spec, _| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::fs::write(spec.rootfs.join("stamp"), n.to_string())?;
        Ok(ExitStatus::Code(0))
    })
}

#[test]
fn a_second_identical_build_hits_the_cache_for_every_step() {
    let case = stamping_case();
    let first = case.build();
    assert!(
        first.outcomes().values().all(|o| *o == "done"),
        "{:?}",
        first.outcomes()
    );
    assert_eq!(first.read("stamp"), "0");

    let second = case.build();
    assert_eq!(second.outcomes().len(), 3, "{:?}", second.outcomes());
    assert!(
        second.outcomes().values().all(|o| *o == "cached"),
        "{:?}",
        second.outcomes()
    );
    assert_eq!(case.runs(), 1);
    assert_eq!(second.read("stamp"), "0", "the cached RUN's result");
    assert_eq!(
        first.result.images[0].layers,
        second.result.images[0].layers
    );
    // The same config, but for the build time each image is dated with.
    let undated = |built: &crate::case::Built| {
        let mut config = built.result.images[0].config.clone();
        assert!(config.created.is_some(), "an image without a date");
        config.created = None;
        for entry in &mut config.history {
            entry.created = None;
        }
        config
    };
    assert_eq!(undated(&first), undated(&second));
}

#[test]
fn a_changed_context_file_reruns_its_copy_and_what_follows() {
    let case = stamping_case();
    case.build();
    case.write("b.txt", "b changed\n");
    let built = case.build();
    assert_eq!(built.outcome("COPY a.txt"), "cached");
    assert_eq!(built.outcome("COPY b.txt"), "done");
    assert_eq!(built.outcome("RUN stamp"), "done");
    assert_eq!(case.runs(), 2);
    assert_eq!(built.read("b.txt"), "b changed\n");
    assert_eq!(built.read("stamp"), "1");

    // Back to the first content: both versions are in the cache now.
    case.write("b.txt", "b\n");
    let built = case.build();
    assert!(
        built.outcomes().values().all(|o| *o == "cached"),
        "{:?}",
        built.outcomes()
    );
    assert_eq!(built.read("stamp"), "0");
}

#[test]
fn no_cache_reruns_every_step_and_its_results_replace_the_records() {
    let case = stamping_case();
    case.build();
    let built = case
        .build_with(|request| request.options.no_cache = true)
        .unwrap();
    assert!(
        built.outcomes().values().all(|o| *o == "done"),
        "{:?}",
        built.outcomes()
    );
    assert_eq!(case.runs(), 2);
    assert_eq!(built.read("stamp"), "1");
    // The next build uses what the --no-cache build recorded.
    let after = case.build();
    assert!(
        after.outcomes().values().all(|o| *o == "cached"),
        "{:?}",
        after.outcomes()
    );
    assert_eq!(after.read("stamp"), "1");
    assert_eq!(case.runs(), 2);
}
