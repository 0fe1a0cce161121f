//! Scheduling: once per digest and per key, parallelism, failures, panics, big graphs.

use std::sync::Arc;
use std::time::Duration;

use crate::toy::{drain, kinds_of, Env, Kind, Toy};
use hoist_solver::{Error, Solver, Vertex};
use tokio::sync::mpsc;

/// Fails the test instead of hanging it when the solver deadlocks.
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the solve did not finish within 30s (deadlock?)")
}

#[tokio::test]
async fn diamond_runs_shared_vertex_once() {
    let env = Env::new();
    let a = env.vertex("a", Kind::Const(3), &[]);
    let left = env.vertex("left", Kind::Add, &[&a, &a]);
    let right = env.vertex("right", Kind::Mul, &[&a, &a]);
    let top = env.vertex("top", Kind::Add, &[&left, &right]);

    let solver = Solver::builder().parallelism(4).build();
    let out = within(solver.solve_one(&top)).await.unwrap();

    assert_eq!(*out, vec![6 + 9]);
    for label in ["a", "left", "right", "top"] {
        assert_eq!(env.runs(label), 1, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_sharing_a_subgraph_run_it_once() {
    let env = Env::new();
    // Each "platform" graph is built separately, as a frontend would: the shared build stage
    // is a different Arc in each graph but has the same digest.
    let graph = |platform: i64| {
        let base = env.vertex("build-stage", Kind::Sleep(Duration::from_millis(20)), &[]);
        let tool = env.vertex("tool", Kind::Const(7), &[&base]);
        let target = env.vertex(&format!("target-{platform}"), Kind::Const(platform), &[]);
        env.vertex(&format!("final-{platform}"), Kind::Add, &[&tool, &target])
    };
    let (amd64, arm64) = (graph(1), graph(2));
    assert_ne!(amd64.digest(), arm64.digest());
    assert_eq!(amd64.inputs()[0].digest(), arm64.inputs()[0].digest());

    let solver = Solver::builder().parallelism(4).build();
    let out = within(solver.solve(&[amd64.clone(), arm64.clone()]))
        .await
        .unwrap();
    assert_eq!((out[0][0], out[1][0]), (7 + 1, 7 + 2));
    assert_eq!(env.runs("build-stage"), 1);
    assert_eq!(env.runs("tool"), 1);

    // Concurrent solve calls on one solver share work too.
    let env = Env::new();
    let base = |env: &Arc<Env>| env.vertex("base", Kind::Sleep(Duration::from_millis(20)), &[]);
    let one = env.vertex("one", Kind::Add, &[&base(&env)]);
    let two = env.vertex("two", Kind::Add, &[&base(&env)]);
    let solver = Solver::builder().parallelism(4).build();
    let (r1, r2) =
        within(async { tokio::join!(solver.solve_one(&one), solver.solve_one(&two)) }).await;
    r1.unwrap();
    r2.unwrap();
    assert_eq!(env.runs("base"), 1);
}

#[tokio::test]
async fn equal_cache_keys_run_once_and_the_other_vertex_reports_cached() {
    let env = Env::new();
    // Different labels, so different digests, but the same cache key.
    let x = env.vertex("x", Kind::Keyed("shared".into()), &[]);
    let y = env.vertex("y", Kind::Keyed("shared".into()), &[]);
    assert_ne!(x.digest(), y.digest());

    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder().parallelism(2).events(tx).build();
    assert_eq!(
        solver.cache_key(&x).await.unwrap(),
        solver.cache_key(&y).await.unwrap()
    );
    within(solver.solve(&[x, y])).await.unwrap();
    drop(solver);
    let events = drain(rx).await;

    assert_eq!(env.runs("x") + env.runs("y"), 1);
    let (ran, other) = if env.runs("x") == 1 {
        ("x", "y")
    } else {
        ("y", "x")
    };
    assert_eq!(kinds_of(&events, ran), ["started", "done"]);
    assert_eq!(kinds_of(&events, other), ["cached"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_vertices_run_in_parallel() {
    let env = Env::new();
    // Each op waits until both have arrived: the solve only finishes if they overlap.
    env.set_barrier(2);
    let a = env.vertex("a", Kind::Barrier, &[]);
    let b = env.vertex("b", Kind::Barrier, &[]);
    let top = env.vertex("top", Kind::Add, &[&a, &b]);

    let solver = Solver::builder().parallelism(2).build();
    within(solver.solve_one(&top)).await.unwrap();
    assert_eq!(env.max_running(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_bounds_running_ops() {
    let env = Env::new();
    // Pairs meet at the barrier, so two ops are running at some point; the bound keeps a
    // third from starting.
    env.set_barrier(2);
    let leaves: Vec<_> = (0..6)
        .map(|i| env.vertex(&format!("leaf-{i}"), Kind::Barrier, &[]))
        .collect();
    let refs: Vec<_> = leaves.iter().collect();
    let top = env.vertex("top", Kind::Add, &refs);

    let solver = Solver::builder().parallelism(2).build();
    within(solver.solve_one(&top)).await.unwrap();
    assert_eq!(env.max_running(), 2);
    assert_eq!(env.total_runs(), 7);
}

#[tokio::test]
async fn failure_fails_dependents_without_running_them() {
    let env = Env::new();
    let a = env.vertex("a", Kind::Const(1), &[]);
    let bad = env.vertex("bad", Kind::Fail("exit code: 1".into()), &[&a]);
    let after = env.vertex("after", Kind::Add, &[&bad]);
    let sibling = env.vertex("sibling", Kind::Const(2), &[]);
    let top = env.vertex("top", Kind::Add, &[&after, &sibling]);

    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder().parallelism(1).events(tx).build();
    let err = within(solver.solve_one(&top)).await.unwrap_err();
    drop(solver);
    let events = drain(rx).await;

    assert!(matches!(err, Error::Op { .. }), "{err:?}");
    let failed = err.vertex().unwrap();
    assert_eq!(&*failed.name, "bad");
    assert_eq!(failed.digest, bad.digest());
    assert_eq!(err.to_string(), r#"vertex "bad" failed: exit code: 1"#);
    assert_eq!(env.runs("a"), 1);
    assert_eq!(env.runs("after"), 0);
    assert_eq!(env.runs("top"), 0);
    assert_eq!(kinds_of(&events, "bad"), ["started", "error"]);
    assert!(kinds_of(&events, "after").is_empty());
    assert!(kinds_of(&events, "top").is_empty());

    // Two targets depending on the failure report the same failing vertex.
    let other = env.vertex("other", Kind::Add, &[&bad]);
    let solver = Solver::<Toy>::builder().build();
    let err = within(solver.solve(&[after, other])).await.unwrap_err();
    assert_eq!(&*err.vertex().unwrap().name, "bad");
}

#[tokio::test]
async fn panicking_op_fails_its_vertex() {
    let env = Env::new();
    let boom = env.vertex("boom", Kind::Panic, &[]);
    let top = env.vertex("top", Kind::Add, &[&boom]);
    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder().events(tx).build();
    let err = within(solver.solve_one(&top)).await.unwrap_err();
    drop(solver);
    let events = drain(rx).await;
    assert!(matches!(err, Error::Panicked { .. }), "{err:?}");
    assert_eq!(&*err.vertex().unwrap().name, "boom");
    assert_eq!(
        err.to_string(),
        r#"vertex "boom" panicked: toy op boom panics"#
    );
    assert_eq!(kinds_of(&events, "boom"), ["started", "error"]);
    assert!(kinds_of(&events, "top").is_empty());
}

#[tokio::test]
async fn failing_content_checksum_reports_an_error_on_its_vertex() {
    let env = Env::new();
    *env.world.lock().unwrap() = vec![1, 2, 3];
    let source = env.vertex("context", Kind::Source, &[]);
    let pick = env.vertex("copy", Kind::Pick(7), &[&source]);
    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder().events(tx).build();
    let err = within(solver.solve_one(&pick)).await.unwrap_err();
    drop(solver);
    let events = drain(rx).await;
    assert_eq!(
        err.to_string(),
        r#"failed to checksum input 0 of vertex "copy": no element 7"#
    );
    assert_eq!(kinds_of(&events, "context"), ["started", "done"]);
    assert_eq!(kinds_of(&events, "copy"), ["error"]);
    assert_eq!(env.runs("copy"), 0);
}

#[tokio::test]
async fn cache_map_naming_a_missing_input_is_an_error() {
    let env = Env::new();
    let a = env.vertex("a", Kind::Const(1), &[]);
    let bad = env.vertex("bad", Kind::BadCacheMap, &[&a]);
    let solver = Solver::builder().build();
    let err = within(solver.solve_one(&bad)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"the cache map of vertex "bad" selects content of input 5, but the vertex has 1 inputs"#
    );
    assert_eq!(env.total_runs(), 0);
}

/// A small deterministic generator, so the random graph is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_dag_of_1000_vertices_runs_each_once_without_deadlock() {
    for parallelism in [1, 3] {
        let env = Env::new();
        let mut rng = Lcg(42);
        let mut vertices: Vec<Arc<Vertex<Toy>>> = Vec::new();
        let mut expected: Vec<i64> = Vec::new();
        for i in 0..1000 {
            let label = format!("v{i}");
            if i < 10 || rng.below(10) == 0 {
                vertices.push(env.vertex(&label, Kind::Const(i as i64), &[]));
                expected.push(i as i64);
                continue;
            }
            let picks: Vec<usize> = (0..1 + rng.below(3)).map(|_| rng.below(i)).collect();
            let inputs: Vec<&Arc<Vertex<Toy>>> = picks.iter().map(|&p| &vertices[p]).collect();
            let (kind, value) = if rng.below(2) == 0 {
                let v = picks.iter().fold(0i64, |a, &p| a.wrapping_add(expected[p]));
                (Kind::Add, v)
            } else {
                let v = picks.iter().fold(1i64, |a, &p| a.wrapping_mul(expected[p]));
                (Kind::Mul, v)
            };
            vertices.push(env.vertex(&label, kind, &inputs));
            expected.push(value);
        }

        let solver = Solver::builder().parallelism(parallelism).build();
        // Every vertex is a target, so every one runs and is checked.
        let out = within(solver.solve(&vertices)).await.unwrap();
        let got: Vec<i64> = out.iter().map(|v| v[0]).collect();
        assert_eq!(got, expected, "parallelism {parallelism}");
        assert_eq!(env.total_runs(), 1000, "parallelism {parallelism}");
        assert!(env.max_running() <= parallelism);
    }
}

#[tokio::test]
async fn long_chain_does_not_overflow_the_stack() {
    let env = Env::new();
    let mut top = env.vertex("v0", Kind::Const(1), &[]);
    for i in 1..5000 {
        top = env.vertex(&format!("v{i}"), Kind::Add, &[&top, &top]);
    }
    let solver = Solver::builder().parallelism(2).build();
    let out = within(solver.solve_one(&top)).await.unwrap();
    // 2^4999 wraps to 0 in i64 arithmetic.
    assert_eq!(*out, vec![0]);
    assert_eq!(env.total_runs(), 5000);
}
