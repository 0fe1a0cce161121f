//! Caching across solves: hits skip runs, `no_cache` and `ignore_cache` force runs, and
//! content-keyed inputs miss only when the selected content changes.

use std::sync::Arc;

use crate::toy::{drain, kinds_of, summary, Env, Kind, Toy};
use hoist_solver::{CacheStore, MemoryCacheStore, Solver, Vertex, VertexOptions};
use tokio::sync::mpsc;

type Store = Arc<MemoryCacheStore<Vec<i64>>>;

/// base -> mid -> top, with `mid`'s options given.
fn chain(env: &Arc<Env>, mid: VertexOptions) -> Arc<Vertex<Toy>> {
    let base = env.vertex("base", Kind::Const(2), &[]);
    let mid = env.vertex_with("mid", Kind::Add, &[&base, &base], mid);
    env.vertex("top", Kind::Mul, &[&mid, &base])
}

fn solver(store: &Store) -> Solver<Toy> {
    Solver::builder().cache(store.clone()).build()
}

#[tokio::test]
async fn second_solve_with_a_shared_store_hits_the_cache() {
    let env = Env::new();
    let store: Store = Arc::new(MemoryCacheStore::new());
    let first = solver(&store)
        .solve_one(&chain(&env, VertexOptions::default()))
        .await;
    assert_eq!(*first.unwrap(), vec![8]);
    assert_eq!(env.total_runs(), 3);
    assert_eq!(store.len(), 3);

    // A new solver (a new build) over an equal graph, built anew.
    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder().cache(store.clone()).events(tx).build();
    let top = chain(&env, VertexOptions::default());
    assert!(store.contains(&solver.cache_key(&top).await.unwrap()));
    let second = solver.solve_one(&top).await.unwrap();
    drop(solver);
    let events = drain(rx).await;

    assert_eq!(*second, vec![8]);
    assert_eq!(env.total_runs(), 3, "nothing ran again");
    // The hit at the top means nothing below it is even looked at.
    assert_eq!(summary(&events), [("top".to_owned(), "cached")]);
}

#[tokio::test]
async fn no_cache_runs_everything_again_but_still_once_per_key() {
    let env = Env::new();
    let store: Store = Arc::new(MemoryCacheStore::new());
    solver(&store)
        .solve_one(&chain(&env, VertexOptions::default()))
        .await
        .unwrap();

    let solver = Solver::builder()
        .cache(store.clone())
        .no_cache(true)
        .build();
    // Two graphs sharing everything below their tops.
    let one = chain(&env, VertexOptions::default());
    let two = env.vertex("other-top", Kind::Add, &[&one.inputs()[0]]);
    solver.solve(&[one, two]).await.unwrap();

    assert_eq!(env.runs("base"), 2);
    assert_eq!(env.runs("mid"), 2);
    assert_eq!(env.runs("top"), 2);
    assert_eq!(env.runs("other-top"), 1);
}

#[tokio::test]
async fn ignore_cache_forces_the_vertex_and_its_key_dependents_only() {
    let env = Env::new();
    let store: Store = Arc::new(MemoryCacheStore::new());
    solver(&store)
        .solve_one(&chain(&env, VertexOptions::default()))
        .await
        .unwrap();

    let (tx, rx) = mpsc::unbounded_channel();
    let solver = Solver::builder().cache(store.clone()).events(tx).build();
    let top = chain(&env, VertexOptions::ignore_cache());
    assert_eq!(*solver.solve_one(&top).await.unwrap(), vec![8]);
    drop(solver);
    let events = drain(rx).await;

    assert_eq!(
        env.runs("base"),
        1,
        "the input of the forced vertex is loaded"
    );
    assert_eq!(env.runs("mid"), 2, "the forced vertex runs");
    assert_eq!(env.runs("top"), 2, "a dependent keyed on it runs too");
    assert_eq!(kinds_of(&events, "base"), ["cached"]);
    assert_eq!(kinds_of(&events, "mid"), ["started", "done"]);
}

/// source (always re-read, like a build context) -> pick element 0 -> add.
fn context_graph(env: &Arc<Env>) -> Arc<Vertex<Toy>> {
    let source = env.vertex_with("context", Kind::Source, &[], VertexOptions::ignore_cache());
    let pick = env.vertex("copy", Kind::Pick(0), &[&source]);
    env.vertex("after-copy", Kind::Add, &[&pick])
}

#[tokio::test]
async fn content_keyed_input_misses_only_when_selected_content_changes() {
    let env = Env::new();
    let store: Store = Arc::new(MemoryCacheStore::new());
    *env.world.lock().unwrap() = vec![1, 2, 3];
    let solver1 = solver(&store);
    let graph = context_graph(&env);
    assert_eq!(*solver1.solve_one(&graph).await.unwrap(), vec![1]);
    // Keys are memoised: asking after the solve evaluates nothing again.
    let copy_key = solver1.cache_key(&graph.inputs()[0]).await.unwrap();
    assert_eq!(env.runs("context"), 1);

    // A change outside the selected part: the context is re-read, the copy's key is unchanged.
    env.world.lock().unwrap()[1] = 20;
    let (tx, rx) = mpsc::unbounded_channel();
    let solver2 = Solver::builder().cache(store.clone()).events(tx).build();
    let graph = context_graph(&env);
    assert_eq!(*solver2.solve_one(&graph).await.unwrap(), vec![1]);
    assert_eq!(
        solver2.cache_key(&graph.inputs()[0]).await.unwrap(),
        copy_key
    );
    drop(solver2);
    let events = drain(rx).await;
    assert_eq!(env.runs("context"), 2);
    assert_eq!(env.runs("copy"), 1);
    assert_eq!(env.runs("after-copy"), 1);
    // The context ran to be checksummed; the key of what follows the copy was then known,
    // and hit, so the copy itself was not even loaded.
    assert_eq!(kinds_of(&events, "context"), ["started", "done"]);
    assert!(kinds_of(&events, "copy").is_empty());
    assert_eq!(kinds_of(&events, "after-copy"), ["cached"]);

    // A change in the selected part: the copy and what follows run again.
    env.world.lock().unwrap()[0] = 10;
    let solver3 = solver(&store);
    let graph = context_graph(&env);
    assert_eq!(*solver3.solve_one(&graph).await.unwrap(), vec![10]);
    assert_ne!(
        solver3.cache_key(&graph.inputs()[0]).await.unwrap(),
        copy_key
    );
    assert_eq!(env.runs("context"), 3);
    assert_eq!(env.runs("copy"), 2);
    assert_eq!(env.runs("after-copy"), 2);
}

#[tokio::test]
async fn memory_store_saves_and_loads_by_key() {
    let store = MemoryCacheStore::<i64>::new();
    let key = hoist_solver::CacheKey::from_digest(hoist_solver::Digest::of(b"k"));
    assert!(store.is_empty());
    assert!(store.load(key).await.unwrap().is_none());
    store.save(key, Arc::new(5)).await.unwrap();
    assert_eq!(store.load(key).await.unwrap().as_deref(), Some(&5));
    store.save(key, Arc::new(6)).await.unwrap();
    assert_eq!(store.load(key).await.unwrap().as_deref(), Some(&6));
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn no_cache_does_not_force_a_content_addressed_vertex() {
    // A source keyed by its whole content (a local context): --no-cache reuses it, and
    // still runs everything on top of it.
    let graph = |env: &Arc<Env>| {
        let mut options = VertexOptions::default();
        options.content_addressed = true;
        let base = env.vertex_with("base", Kind::Const(2), &[], options);
        let mid = env.vertex("mid", Kind::Add, &[&base, &base]);
        env.vertex("top", Kind::Mul, &[&mid, &base])
    };
    let env = Env::new();
    let store: Store = Arc::new(MemoryCacheStore::new());
    solver(&store).solve_one(&graph(&env)).await.unwrap();

    let solver = Solver::builder()
        .cache(store.clone())
        .no_cache(true)
        .build();
    assert_eq!(*solver.solve_one(&graph(&env)).await.unwrap(), vec![8]);

    assert_eq!(env.runs("base"), 1, "its cached result is its result");
    assert_eq!(env.runs("mid"), 2);
    assert_eq!(env.runs("top"), 2);
}
