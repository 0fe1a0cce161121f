//! The progress events of a real solve: what a renderer (the CLI's BuildKit-style plain
//! text, its interactive view) gets to show.

use std::sync::Arc;

use crate::toy::{drain, summary, Env, Kind};
use hoist_solver::{EventKind, LogStream, MemoryCacheStore, Solver};
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
