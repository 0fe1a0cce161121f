//! The progress events of a real solve: what a renderer (the CLI's BuildKit-style plain
//! text, its interactive view) gets to show.

use std::sync::Arc;

use crate::toy::{drain, summary, Env, Kind};
use hoist_solver::{EventKind, Forced, KeyShare, LogStream, MemoryCacheStore, Solver};
use tokio::sync::mpsc;

#[tokio::test]
async fn a_solve_with_a_hit_a_log_and_an_error_reports_each_vertex_once_in_order() {
    let env = Env::new();
    let store = Arc::new(MemoryCacheStore::new());
    let from = || env.vertex("[base 1/2] FROM busybox", Kind::Const(1), &[]);
    Solver::builder()
        .cache(store.clone())
        .build()
        .solve_one(&from())
        .await
        .unwrap();

    let from = from();
    let make = env.vertex(
        "[base 2/2] RUN make",
        Kind::Log(vec!["cc -o app main.c".into(), "ok".into()]),
        &[&from],
    );
    let test = env.vertex(
        "[test 1/1] RUN false",
        Kind::Fail("exit code: 1".into()),
        &[&make],
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder()
        .cache(store)
        .parallelism(1)
        .events(tx)
        .build();
    let err = solver.solve_one(&test).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"vertex "[test 1/1] RUN false" failed: exit code: 1"#
    );
    drop(solver);

    let events = drain(rx).await;
    let named = |name: &str, kind: &'static str| (name.to_owned(), kind);
    assert_eq!(
        summary(&events),
        [
            named("[base 1/2] FROM busybox", "cached"),
            named("[base 2/2] RUN make", "started"),
            named("[base 2/2] RUN make", "log"),
            named("[base 2/2] RUN make", "log"),
            named("[base 2/2] RUN make", "done"),
            named("[test 1/1] RUN false", "started"),
            named("[test 1/1] RUN false", "error"),
        ]
    );
    let lines: Vec<(LogStream, &str)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Log { stream, line, .. } => Some((*stream, line.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        lines,
        [
            (LogStream::Stdout, "cc -o app main.c"),
            (LogStream::Stdout, "ok")
        ]
    );
    let EventKind::Error { message, .. } = &events[6].kind else {
        panic!("not an error: {:?}", events[6]);
    };
    assert_eq!(message, "exit code: 1");
}

/// What an op is told about a miss: its key's parts, which inputs ran, why it was forced;
/// its explanation comes just before `Started`, and a hit is told its key instead.
#[tokio::test]
async fn misses_are_explained_with_the_key_facts_and_hits_noted() {
    let env = Env::new();
    env.explain.store(true, std::sync::atomic::Ordering::SeqCst);
    *env.world.lock().unwrap() = vec![1, 2];
    let store = Arc::new(MemoryCacheStore::new());
    let source = || env.vertex("source", Kind::Source, &[]);
    let graph = || {
        let source = source();
        let pick = env.vertex("pick", Kind::Pick(1), &[&source]);
        env.vertex("add", Kind::Add, &[&pick])
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder().cache(store.clone()).events(tx).build();
    solver.solve_one(&graph()).await.unwrap();
    drop(solver);
    let events = drain(rx).await;
    let summary = summary(&events);
    let pick = summary.iter().position(|s| *s == ("pick".into(), "miss"));
    assert_eq!(summary[pick.unwrap() + 1], ("pick".into(), "started"));
    let add_key;
    let reasons: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CacheMiss { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["source missed", "pick missed", "add missed"]);
    {
        let misses = env.misses.lock().unwrap();
        let (label, add) = &misses[2];
        add_key = add.key;
        assert_eq!(label, "add");
        assert_eq!(add.forced, None);
        assert_eq!(add.inputs.len(), 1);
        assert_eq!(&*add.inputs[0].name, "pick");
        assert!(add.inputs[0].ran, "pick ran before add");
        assert!(matches!(add.inputs[0].share, KeyShare::Key(_)));
        let (_, pick) = &misses[1];
        assert!(pick.inputs[0].ran, "the source ran before pick");
        assert!(matches!(pick.inputs[0].share, KeyShare::Content(_)));
    }

    // Each run's key is noted once its result is saved, so a record follows only keys that
    // have results.
    let used: Vec<String> = env
        .hits
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.0.clone())
        .collect();
    assert_eq!(used, ["source", "pick", "add"]);
    env.hits.lock().unwrap().clear();

    // Nothing changed: the target hits, and so does the source its key reads the content of.
    env.misses.lock().unwrap().clear();
    Solver::builder()
        .cache(store.clone())
        .build()
        .solve_one(&graph())
        .await
        .unwrap();
    let misses: Vec<String> = env
        .misses
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.0.clone())
        .collect();
    assert!(misses.is_empty(), "{misses:?}");
    let hits = env.hits.lock().unwrap().clone();
    let labels: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(labels, ["source", "add"]);
    assert_eq!(hits[1].1.key, add_key);

    // no_cache forces every vertex, and says so.
    env.misses.lock().unwrap().clear();
    Solver::builder()
        .cache(store)
        .no_cache(true)
        .build()
        .solve_one(&graph())
        .await
        .unwrap();
    let misses = env.misses.lock().unwrap().clone();
    assert_eq!(misses.len(), 3);
    assert!(misses
        .iter()
        .all(|(_, f)| f.forced == Some(Forced::NoCache)));
}
