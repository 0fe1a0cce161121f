//! Claims on cache keys ([`CacheStore::claim`]): two solvers sharing a store (two processes
//! on one state dir) run a step once, the second waiting for the first's result; steps with
//! other keys are not held up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use hoist_solver::{BoxError, CacheKey, CacheStore, Claim, MemoryCacheStore, Solver, Vertex};
use tokio::sync::mpsc;

use crate::toy::{drain, kinds_of, Env, Kind, Toy};

/// A shared store whose claims are one async mutex per key, as a file lock per key is.
#[derive(Default)]
struct ClaimingStore {
    results: MemoryCacheStore<Vec<i64>>,
    claims: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl CacheStore<Vec<i64>> for ClaimingStore {
    fn load(&self, key: CacheKey) -> BoxFuture<'_, Result<Option<Arc<Vec<i64>>>, BoxError>> {
        self.results.load(key)
    }

    fn save(&self, key: CacheKey, value: Arc<Vec<i64>>) -> BoxFuture<'_, Result<(), BoxError>> {
        self.results.save(key, value)
    }

    fn claim(&self, key: CacheKey) -> BoxFuture<'_, Result<Claim, BoxError>> {
        let lock = Arc::clone(self.claims.lock().unwrap().entry(key).or_default());
        Box::pin(async move { Ok(Box::new(lock.lock_owned().await) as Claim) })
    }
}

fn slow_step(env: &Arc<Env>, label: &str, n: i64) -> Arc<Vertex<Toy>> {
    let base = env.vertex(&format!("{label}-base"), Kind::Const(n), &[]);
    env.vertex(label, Kind::Sleep(Duration::from_millis(300)), &[&base])
}

#[tokio::test]
async fn a_step_under_way_in_another_solver_is_waited_for_not_run_again() {
    let env = Env::new();
    let store = Arc::new(ClaimingStore::default());
    let (tx_a, rx_a) = mpsc::unbounded_channel();
    let (tx_b, rx_b) = mpsc::unbounded_channel();
    let a = Solver::builder().cache(store.clone()).events(tx_a).build();
    let b = Solver::builder().cache(store.clone()).events(tx_b).build();
    // Each "process" builds its own, equal graph.
    let (top_a, top_b) = (slow_step(&env, "step", 7), slow_step(&env, "step", 7));

    let (from_a, from_b) = tokio::join!(a.solve_one(&top_a), b.solve_one(&top_b));
    drop((a, b));
    assert_eq!(*from_a.unwrap(), vec![7]);
    assert_eq!(*from_b.unwrap(), vec![7]);
    assert_eq!(env.runs("step"), 1, "the step ran once");
    let mut kinds = [drain(rx_a).await, drain(rx_b).await].map(|events| kinds_of(&events, "step"));
    kinds.sort();
    assert_eq!(kinds, [vec!["cached"], vec!["started", "done"]]);
}

#[tokio::test]
async fn claims_on_other_keys_do_not_wait() {
    let env = Env::new();
    let store = Arc::new(ClaimingStore::default());
    let a = Solver::builder().cache(store.clone()).build();
    let b = Solver::builder().cache(store.clone()).build();
    let (top_a, top_b) = (slow_step(&env, "one", 1), slow_step(&env, "two", 2));

    let (from_a, from_b) = tokio::join!(a.solve_one(&top_a), b.solve_one(&top_b));
    assert_eq!(*from_a.unwrap(), vec![1]);
    assert_eq!(*from_b.unwrap(), vec![2]);
    assert_eq!(env.max_running(), 2, "both steps ran at once");
}
