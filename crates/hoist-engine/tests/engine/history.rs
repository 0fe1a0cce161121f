//! Build history: each build's record (request, status, step counts, images, error) and
//! its logged events in `<state>/engine/history/<ref>/`, and the bound on how many are kept.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hoist_engine::progress::{Event, EventKind};
use hoist_engine::{BuildRequest, BuildStatus, HistoryLimits, HistoryStore, StepCounts};
use hoist_export::Output;
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_sandbox::{ExitStatus, OutputStream};

use crate::case::Case;

/// The step counts BuildKit would report for `events`.
fn counts(events: &[Event]) -> StepCounts {
    let mut finished: HashMap<_, Option<bool>> = HashMap::new();
    for event in events {
        let state = finished.entry(event.vertex.digest).or_insert(None);
        match event.kind {
            EventKind::Cached => *state = Some(true),
            EventKind::Done { .. } => *state = Some(false),
            _ => {}
        }
    }
    StepCounts {
        total: finished.len(),
        completed: finished.values().filter(|s| s.is_some()).count(),
        cached: finished.values().filter(|s| **s == Some(true)).count(),
    }
}

fn logging_case() -> Case {
    Case::new(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN stamp\n",
        &[("a.txt", "hello\n")],
    )
    .script(|spec, sink| {
        std::fs::write(spec.rootfs.join("stamp"), "stamped\n")?;
        sink.line(OutputStream::Stdout, b"stamping the image\n");
        Ok(ExitStatus::Code(0))
    })
}

#[test]
fn a_build_is_recorded_with_its_counts_images_and_events() {
    let case = logging_case();
    let first = case.build();
    let second = case
        .build_with(|request| {
            request.outputs =
                Output::parse_all(&["type=image,name=example.test/app:1".to_owned()]).unwrap();
            request.options.build_args.insert("V".into(), "2".into());
        })
        .unwrap();
    let store = HistoryStore::new(&case.state());
    let records = store.list().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    // Newest first.
    let (newest, oldest) = (&records[0], &records[1]);
    assert_eq!(oldest.status, BuildStatus::Completed);
    assert_eq!(oldest.steps, counts(&first.events));
    assert_eq!(oldest.steps.cached, 0, "{:?}", oldest.steps);
    assert_eq!(oldest.steps.completed, oldest.steps.total);
    assert!(oldest.steps.total >= 4, "{:?}", oldest.steps);
    assert_eq!(oldest.request.outputs, ["local"]);
    assert!(oldest.images.is_empty());
    assert_eq!(oldest.name, "ctx");
    assert_eq!(oldest.request.platforms, [Platform::host().to_string()]);
    assert!(oldest.completed_unix_ms.is_some());

    assert_eq!(newest.steps, counts(&second.events));
    // The COPY and the RUN came from the cache the second time.
    assert!(newest.steps.cached >= 2, "{:?}", newest.steps);
    assert_eq!(
        newest.request.build_args.get("V").map(String::as_str),
        Some("2")
    );
    assert_eq!(newest.images.len(), 1, "{:?}", newest.images);
    let image = second.result.export.image().unwrap();
    assert_eq!(newest.images[0].names, ["example.test/app:1"]);
    assert_eq!(newest.images[0].digest, image.descriptor.digest.to_string());
    assert_eq!(newest.images[0].output, "image");

    // The logged events are the ones the renderer got, in order.
    assert_eq!(store.events(&oldest.reference).unwrap(), first.events);
    assert_eq!(store.events("^0").unwrap(), second.events);
    assert!(first.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::Log { line, .. } if line == "stamping the image"
    )));
    assert_eq!(store.get("^1").unwrap(), *oldest);
    assert_eq!(store.get(&newest.reference).unwrap(), *newest);
    // BuildKit's ids: 25 characters of [0-9a-z].
    assert_eq!(newest.reference.len(), 25);
    assert!(newest
        .reference
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
}

#[test]
fn a_failing_build_records_its_error_and_the_failing_step() {
    let case = Case::new(
        "FROM scratch\nCOPY a.txt /a.txt\nRUN make things\n",
        &[("a.txt", "a")],
    )
    .script(|_, sink| {
        sink.line(OutputStream::Stderr, b"make: no rule for things\n");
        Ok(ExitStatus::Code(2))
    });
    let error = case.build_with(|_| {}).err().expect("the RUN fails");
    let store = HistoryStore::new(&case.state());
    let record = store.get("^0").unwrap();
    assert_eq!(record.status, BuildStatus::Error);
    let recorded = record.error.expect("an error");
    assert_eq!(
        error.to_string(),
        format!("failed to solve: {}", recorded.message)
    );
    assert!(
        recorded.message.contains("did not complete successfully"),
        "{recorded:?}"
    );
    assert_eq!(recorded.step.as_deref(), Some("[2/2] RUN make things"));
    assert_eq!(recorded.lines, Some((3, 3)));
    assert_eq!(recorded.logs, ["make: no rule for things"]);
    assert_eq!(
        recorded.dockerfile.as_deref(),
        Some("FROM scratch\nCOPY a.txt /a.txt\nRUN make things\n")
    );
    assert!(
        record.steps.completed < record.steps.total,
        "{:?}",
        record.steps
    );
    let events = store.events(&record.reference).unwrap();
    assert!(events
        .iter()
        .any(|e| e.vertex.name.contains("RUN make things")
            && matches!(e.kind, EventKind::Error { .. })));
}

#[test]
fn an_unknown_ref_is_an_error_naming_it() {
    let case = logging_case();
    let store = HistoryStore::new(&case.state());
    let err = store.get("nosuchbuild").unwrap_err();
    assert_eq!(err.to_string(), "no record found for ref \"nosuchbuild\"");
    assert!(store.get("^0").is_err());
    assert!(store.get("../x").is_err());
    assert!(store.remove("nosuchbuild").is_err());
}

fn request(case: &Case) -> BuildRequest {
    BuildRequest::new(
        Some(b"FROM scratch\n".to_vec()),
        "Dockerfile",
        case.context_dir().into(),
        BuildOptions::new(Platform::host()),
    )
}

#[test]
fn starting_a_build_drops_the_records_beyond_the_limits() {
    let case = logging_case();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = HistoryStore::new(&case.state()).with_limits(HistoryLimits {
        max_entries: 3,
        max_age: Duration::from_secs(3600),
    });
    let mut started = Vec::new();
    for _ in 0..5 {
        let recording = store.start(&request(&case)).unwrap();
        started.push(recording.reference().to_owned());
        let failed = Err(hoist_engine::Error::Unsupported("nothing".into()));
        runtime.block_on(recording.finish(&failed)).unwrap();
        // Records are ordered by their start, in milliseconds.
        std::thread::sleep(Duration::from_millis(3));
    }
    let kept: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.reference)
        .collect();
    let newest: Vec<_> = started.iter().rev().take(3).cloned().collect();
    assert_eq!(kept, newest);

    // A running build's record is never dropped; one whose process is gone is incomplete.
    let running = store.start(&request(&case)).unwrap();
    let reference = running.reference().to_owned();
    let by_age = HistoryStore::new(&case.state()).with_limits(HistoryLimits {
        max_entries: 50,
        max_age: Duration::ZERO,
    });
    let _next = by_age.start(&request(&case)).unwrap();
    let statuses: HashSet<_> = by_age
        .list()
        .unwrap()
        .into_iter()
        .map(|r| (r.reference, r.status))
        .collect();
    assert!(
        statuses.contains(&(reference.clone(), BuildStatus::Running)),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 2, "the finished records went: {statuses:?}");
    assert!(
        by_age.remove(&reference).is_err(),
        "a running build's record stays"
    );
    drop(running);
    assert_eq!(
        by_age.get(&reference).unwrap().status,
        BuildStatus::Incomplete
    );
    by_age.remove(&reference).unwrap();
    assert!(by_age.get(&reference).is_err());
}
