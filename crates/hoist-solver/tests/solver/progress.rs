//! Progress events from a real solve, rendered as BuildKit's plain progress.

use std::sync::Arc;

use crate::toy::{drain, Env, Kind};
use hoist_solver::{MemoryCacheStore, PlainRenderer, Solver};
use tokio::sync::mpsc;

/// Replaces the times (`#2 0.001 line`, `DONE 0.0s`) that vary between runs with `[T]`.
fn redact_times(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut words: Vec<&str> = line.split(' ').collect();
        if words.len() > 1 && words[1].contains('.') && words[1].parse::<f64>().is_ok() {
            words[1] = "[T]";
        }
        if words.len() == 3 && words[1] == "DONE" {
            words[2] = "[T]";
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn plain_progress_of_a_solve_with_a_hit_a_log_and_an_error() {
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

    let mut renderer = PlainRenderer::new();
    let text: String = drain(rx).await.iter().map(|e| renderer.render(e)).collect();
    assert_eq!(
        redact_times(&text),
        "#1 [base 1/2] FROM busybox\n\
         #1 CACHED\n\
         \n\
         #2 [base 2/2] RUN make\n\
         #2 [T] cc -o app main.c\n\
         #2 [T] ok\n\
         #2 DONE [T]\n\
         \n\
         #3 [test 1/1] RUN false\n\
         #3 ERROR: exit code: 1\n"
    );
}
