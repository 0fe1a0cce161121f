//! `hoist_engine::gc` after builds: a policy with a tiny `keepBytes` trims what older
//! builds left and keeps what the last build used (with the last-seen step records of the
//! removed keys), gc next to a running build leaves that build's work alone, and a gc with
//! nothing to do only reads.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hoist_engine::{disk_usage, gc, GcConfig, UsageKind};
use hoist_sandbox::ExitStatus;

use crate::case::Case;

fn config(text: &str) -> GcConfig {
    GcConfig::parse(text, Path::new("buildkitd.toml")).unwrap()
}

const TINY: &str = "[worker.oci]\n[[worker.oci.gcpolicy]]\nall = true\nkeepBytes = 1\n";

fn case() -> Case {
    Case::new(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN touch /made\n",
        &[("a.txt", "a\n"), ("b.txt", "b\n")],
    )
    .script(|spec, _| {
        std::fs::write(spec.rootfs.join("made"), "yes\n")?;
        Ok(ExitStatus::Code(0))
    })
}

fn step_records(case: &Case) -> usize {
    std::fs::read_dir(case.state().engine_dir().join("steps")).map_or(0, |d| d.count())
}

#[test]
fn tiny_keep_bytes_trims_older_builds_and_keeps_the_last() {
    let case = case();
    case.build();
    let first = disk_usage(&case.state()).unwrap();
    let first_steps = step_records(&case);
    std::thread::sleep(std::time::Duration::from_millis(20));
    case.write(
        "Dockerfile",
        "FROM scratch\nCOPY b.txt /b.txt\nRUN touch /made\n",
    );
    let started = SystemTime::now();
    case.build();
    assert_eq!(case.runs(), 2);
    let both = disk_usage(&case.state()).unwrap();
    assert!(both.len() > first.len(), "{both:?}");
    assert!(step_records(&case) > first_steps);

    let report = gc(&case.state(), &config(TINY), Some(started)).unwrap();
    let removed: Vec<&str> = report.prune.removed.iter().map(|r| r.id.as_str()).collect();
    assert!(!removed.is_empty(), "{report:?}");
    // Only what the first build alone used went.
    assert!(removed.iter().all(|id| first.iter().any(|r| r.id == *id)));
    let left = disk_usage(&case.state()).unwrap();
    assert_eq!(left.len(), both.len() - removed.len(), "{left:?}");
    assert!(left
        .iter()
        .filter(|r| r.kind == UsageKind::Regular)
        .all(|r| r.last_used.unwrap() >= started));
    // The steps whose keys lost their records lost their last-seen records too.
    assert!(report.prune.removed_steps > 0, "{report:?}");
    assert!(step_records(&case) < first_steps + 2);
    // A local source's files list stays exactly as long as its record.
    let steps = case.state().engine_dir().join("steps");
    let lists: Vec<_> = std::fs::read_dir(&steps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "files"))
        .collect();
    assert!(!lists.is_empty());
    assert!(
        lists.iter().all(|l| l.with_extension("").exists()),
        "{lists:?}"
    );

    // The last build is whole: all cached, nothing runs.
    let again = case.build();
    assert!(
        again.outcomes().values().all(|o| *o == "cached"),
        "{:?}",
        again.outcomes()
    );
    assert_eq!(case.runs(), 2);

    // Nothing to do: no records read twice, nothing removed. What it costs, for the log.
    let noop = gc(&case.state(), &GcConfig::default(), Some(SystemTime::now())).unwrap();
    assert!(noop.prune.removed.is_empty() && noop.prune.reclaimed == 0);
    eprintln!("no-op gc with the default policy: {:?}", noop.elapsed);
}

#[test]
fn gc_false_removes_nothing() {
    let case = case();
    case.build();
    let before = disk_usage(&case.state()).unwrap();
    let off = config("[worker.oci]\ngc = false\ngckeepstorage = 1\n");
    let report = gc(&case.state(), &off, None).unwrap();
    assert!(report.prune.removed.is_empty());
    assert_eq!(disk_usage(&case.state()).unwrap().len(), before.len());
}

#[test]
fn gc_next_to_a_running_build_leaves_its_work_alone() {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered = Mutex::new(Some(entered_tx));
    let release = Arc::new(Mutex::new(release_rx));
    let case = Case::new(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN touch /made\n",
        &[("a.txt", "a\n")],
    )
    .script(move |spec, _| {
        // The second build's RUN waits until the gc is done.
        let waiting = spec.rootfs.join("b.txt").exists();
        let tx = if waiting {
            entered.lock().unwrap().take()
        } else {
            None
        };
        if let Some(tx) = tx {
            tx.send(()).unwrap();
            release.lock().unwrap().recv().unwrap();
        }
        std::fs::write(spec.rootfs.join("made"), "yes\n")?;
        Ok(ExitStatus::Code(0))
    });
    case.build();
    case.write("b.txt", "b\n");
    case.write(
        "Dockerfile",
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nRUN touch /made\n",
    );
    std::thread::scope(|scope| {
        let running = scope.spawn(|| case.build());
        entered_rx.recv().unwrap();
        // The running build holds the COPY records it loaded or saved.
        let in_use: Vec<String> = disk_usage(&case.state())
            .unwrap()
            .into_iter()
            .filter(|r| r.in_use)
            .map(|r| r.id)
            .collect();
        assert!(!in_use.is_empty());
        let report = gc(&case.state(), &config(TINY), None).unwrap();
        assert!(report.prune.build_running, "{report:?}");
        assert!(
            report.prune.removed.iter().all(|r| !in_use.contains(&r.id)),
            "{report:?}"
        );
        release_tx.send(()).unwrap();
        let built = running.join().unwrap();
        assert_eq!(built.outcome("COPY b.txt"), "done");
        assert_eq!(built.read("b.txt"), "b\n");
    });
    // What the running build made is there: the same build is all cached.
    let runs = case.runs();
    let again = case.build();
    assert!(
        again.outcomes().values().all(|o| *o == "cached"),
        "{:?}",
        again.outcomes()
    );
    assert_eq!(case.runs(), runs);
}
