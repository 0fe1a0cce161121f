//! Drivers against real sockets: nothing listening is `inactive` with the reason, and so is
//! a listener that does not answer BuildKit's `Info` (buildx's rule: `running` needs an
//! answer; hoist-cli's tests/cli/build_nodes.rs and build_remote.rs show running hoistd
//! nodes with their version); neither stops the rest of a builder being reported.

use std::os::unix::net::UnixListener;

use hoist_builder::{create, BuilderStore, CreateRequest, GroupReport, Status};

#[test]
fn remote_status_needs_an_answer_and_names_the_node_that_gave_none() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.sock");
    let _listener = UnixListener::bind(&live).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let store = BuilderStore::new(dir.path().join("store"));
    let txn = store.txn().unwrap();
    let node = |endpoint: String, append: bool| CreateRequest {
        name: Some("r".into()),
        driver: Some("remote".into()),
        endpoint: Some(endpoint),
        append,
        ..CreateRequest::default()
    };
    create(&txn, &node(format!("unix://{}", live.display()), false)).unwrap();
    create(
        &txn,
        &node(
            format!("unix://{}", dir.path().join("dead.sock").display()),
            true,
        ),
    )
    .unwrap();
    create(
        &txn,
        &node(format!("tcp://{}", tcp.local_addr().unwrap()), true),
    )
    .unwrap();

    let report = GroupReport::gather(&txn.find("r").unwrap());
    let statuses: Vec<Status> = report
        .nodes
        .iter()
        .map(|n| n.info.as_ref().unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        [Status::Inactive, Status::Inactive, Status::Inactive]
    );
    let why = |i: usize| {
        report.nodes[i]
            .info
            .as_ref()
            .unwrap()
            .unreachable
            .clone()
            .unwrap()
    };
    for silent in [0, 2] {
        assert!(
            why(silent).contains("did not answer within 5 s (is it a BuildKit daemon?)"),
            "{}",
            why(silent)
        );
        assert_eq!(report.nodes[silent].version, "");
    }
    let why = report.nodes[1]
        .info
        .as_ref()
        .unwrap()
        .unreachable
        .clone()
        .unwrap();
    assert!(
        why.starts_with("cannot connect to unix://") && why.contains("dead.sock"),
        "{why}"
    );

    let default = GroupReport::gather(&txn.find("default").unwrap());
    let info = default.nodes[0].info.as_ref().unwrap();
    assert_eq!(info.status, Status::Running);
    assert_eq!(info.platforms[0], hoist_oci::Platform::host());
    assert!(default.nodes[0].version.starts_with("hoist v"));
}
