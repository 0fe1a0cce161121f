//! Cancellation: running ops are dropped, pending ones never start.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::toy::{drain, kinds_of, Env, Kind};
use hoist_solver::{CancellationToken, Error, Solver};
use tokio::sync::mpsc;

async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("cancellation did not end the solve within 30s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_drops_running_ops_and_starts_no_more() {
    let env = Env::new();
    let one = env.vertex("hang-1", Kind::Hang, &[]);
    let two = env.vertex("hang-2", Kind::Hang, &[]);
    let top = env.vertex("top", Kind::Add, &[&one, &two]);

    let (tx, rx) = mpsc::unbounded_channel();
    // One permit: one op hangs, the other waits for the permit.
    let solver = Solver::builder().parallelism(1).events(tx).build();
    let cancel = async {
        env.hanging.notified().await;
        solver.cancel();
    };
    let (result, ()) = within(async { tokio::join!(solver.solve_one(&top), cancel) }).await;
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");

    // A cancelled solver stays cancelled.
    let late = env.vertex("late", Kind::Const(1), &[]);
    let err = solver.solve_one(&late).await.unwrap_err();
    assert!(err.is_cancelled());
    drop(solver);
    let events = drain(rx).await;

    assert_eq!(
        env.runs("hang-1") + env.runs("hang-2"),
        1,
        "the pending op never started"
    );
    assert_eq!(
        env.dropped.load(Ordering::SeqCst),
        1,
        "the running op was dropped"
    );
    assert_eq!(env.runs("top") + env.runs("late"), 0);
    let ran = if env.runs("hang-1") == 1 {
        "hang-1"
    } else {
        "hang-2"
    };
    let other = if ran == "hang-1" { "hang-2" } else { "hang-1" };
    assert_eq!(kinds_of(&events, ran), ["started", "cancelled"]);
    assert!(kinds_of(&events, other).is_empty());
    assert!(kinds_of(&events, "top").is_empty());
}

#[tokio::test]
async fn an_external_token_cancels_the_solve() {
    let env = Env::new();
    let hang = env.vertex("hang", Kind::Hang, &[]);
    let token = CancellationToken::new();
    let solver = Solver::builder().cancellation_token(token.clone()).build();
    let cancel = async {
        env.hanging.notified().await;
        token.cancel();
    };
    let (result, ()) = within(async { tokio::join!(solver.solve_one(&hang), cancel) }).await;
    assert!(result.unwrap_err().is_cancelled());
    assert!(solver.cancellation_token().is_cancelled());
    assert_eq!(env.dropped.load(Ordering::SeqCst), 1);
}
