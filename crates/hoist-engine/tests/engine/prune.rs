//! `hoist_engine::prune` and `disk_usage` on a state dir a build filled: records are
//! listed, removed with what only they kept, and the next build runs again.

use hoist_engine::{disk_usage, prune, PruneOptions};
use hoist_sandbox::ExitStatus;

use crate::case::Case;

fn case() -> Case {
    Case::new(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN touch /made\n",
        &[("a.txt", "a\n")],
    )
    .script(|spec, _| {
        std::fs::write(spec.rootfs.join("made"), "yes\n")?;
        Ok(ExitStatus::Code(0))
    })
}

/// Every blob file in the case's content store.
fn blobs(case: &Case) -> usize {
    let dir = case.state().root().join("content/blobs/sha256");
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn prune_all_removes_every_record_and_the_next_build_runs_again() {
    let case = case();
    let first = case.build();
    let usage = disk_usage(&case.state()).unwrap();
    assert!(usage.len() >= 2, "{usage:?}");
    assert!(usage.iter().all(|u| !u.in_use), "no build runs: {usage:?}");
    assert!(usage.iter().any(|u| u.size > 0), "{usage:?}");
    let blobs_before = blobs(&case);
    assert!(blobs_before >= 2);

    let report = prune(
        &case.state(),
        &PruneOptions {
            all: true,
            ..PruneOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.removed.len(), usage.len(), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(!report.build_running);
    assert!(report.removed_snapshots >= 2, "{report:?}");
    assert!(report.removed_blobs >= 2, "{report:?}");
    assert!(disk_usage(&case.state()).unwrap().is_empty());
    assert_eq!(blobs(&case), blobs_before - report.removed_blobs);

    let again = case.build();
    assert!(
        again.outcomes().values().all(|o| *o == "done"),
        "{:?}",
        again.outcomes()
    );
    assert_eq!(case.runs(), 2);
    // The COPY's layer is the same bytes again; the RUN's file has a new mtime.
    assert_eq!(
        again.result.images[0].layers[0],
        first.result.images[0].layers[0]
    );
    assert_eq!(again.read("made"), "yes\n");
}

#[test]
fn prune_by_id_removes_only_that_record() {
    let case = case();
    case.build();
    let usage = disk_usage(&case.state()).unwrap();
    let record = usage.first().expect("records").clone();
    let report = prune(
        &case.state(),
        &PruneOptions {
            all: true,
            ids: vec![record.id.clone()],
            ..PruneOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(report.removed[0].id, record.id);
    let left = disk_usage(&case.state()).unwrap();
    assert_eq!(left.len(), usage.len() - 1);
    assert!(left.iter().all(|u| u.id != record.id));
}
