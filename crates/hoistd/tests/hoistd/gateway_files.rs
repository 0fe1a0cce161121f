//! `LLBBridge.ReadFile`, `ReadDir` and `StatFile` on a ref the bridge's Solve answered, as
//! BuildKit's frontends and buildx call them: the ref is solved on the first call (lazy, as
//! BuildKit's), ReadFile honours its range, ReadDir its include pattern, StatFile gives
//! fsutil's Stat; `../..` and symlinks — absolute, or climbing out — resolve inside the
//! ref's filesystem, never on the host; an unknown ref is NotFound naming it.

use hoist_proto::control::SolveRequest;
use hoist_proto::gateway::llb_bridge_client::LlbBridgeClient;
use hoist_proto::gateway::{
    self as gw, FileRange, ReadDirRequest, ReadFileRequest, ReturnRequest, StatFileRequest,
};
use hoist_proto::tonic::{Code, Request};
use hoist_testkit::http::{FileServer, Served};

use crate::Daemon;

const BUILD_ID: &str = "buildkit-controlapi-buildid";
/// Go's `os.ModeDir` and `os.ModeSymlink`.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

fn for_build<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(BUILD_ID, "gw-files".parse().unwrap());
    request
}

/// The context: files, a directory, and symlinks pointing out of the root.
fn context_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, content: &str, mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
    };
    add("Dockerfile", "FROM scratch\nCOPY . /\n", 0o644);
    add("a.txt", "0123456789", 0o640);
    add("etc/passwd", "inside\n", 0o644);
    add("sub/b.txt", "b\n", 0o644);
    add("sub/c.md", "c\n", 0o644);
    add("sub/d.md", "dd\n", 0o600);
    // More than one ReadFile answer may carry (16 MiB).
    let big = vec![b'x'; (16 << 20) + 1];
    let mut header = tar::Header::new_gnu();
    header.set_size(big.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_600_000_000);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, "big.bin", big.as_slice())
        .unwrap();
    for (path, target) in [
        ("abs", "/etc"),
        // (The context refuses a relative link climbing out of it; hoist-engine's
        // result_files tests cover those.)
        ("sub/up", "../abs/passwd"),
        ("shadow", "/etc/shadow"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        builder.append_link(&mut header, path, target).unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn files_of_a_solved_ref_are_read_inside_it() {
    let files = FileServer::start().unwrap();
    files.serve("/ctx.tar", Served::new(context_tar()));
    let daemon = Daemon::start();
    let mut control = daemon.control().await;
    let solve = tokio::spawn(async move {
        control
            .solve(SolveRequest {
                r#ref: "gw-files".into(),
                ..SolveRequest::default()
            })
            .await
    });
    let mut bridge = LlbBridgeClient::new(daemon.unix_channel().await);
    let result = bridge
        .solve(for_build(gw::SolveRequest {
            frontend: "dockerfile.v0".into(),
            frontend_opt: [("context".to_owned(), files.url("/ctx.tar"))].into(),
            allow_result_return: true,
            allow_result_array_ref: true,
            ..gw::SolveRequest::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let Some(gw::result::Result::Ref(solved)) = &result.result else {
        panic!("not one ref: {result:?}");
    };
    let id = solved.id.clone();
    let read = |path: &str, range: Option<(i64, i64)>| ReadFileRequest {
        r#ref: id.clone(),
        file_path: path.to_owned(),
        range: range.map(|(offset, length)| FileRange { offset, length }),
    };

    // Not evaluated yet: the first read solves the ref.
    let whole = bridge.read_file(for_build(read("/a.txt", None))).await;
    assert_eq!(whole.unwrap().into_inner().data, b"0123456789");
    let part = bridge
        .read_file(for_build(read("a.txt", Some((2, 3)))))
        .await
        .unwrap();
    assert_eq!(part.into_inner().data, b"234");
    let tail = bridge
        .read_file(for_build(read("a.txt", Some((8, 100)))))
        .await
        .unwrap();
    assert_eq!(tail.into_inner().data, b"89");
    let too_big = bridge
        .read_file(for_build(read("big.bin", None)))
        .await
        .unwrap_err();
    assert_eq!(
        too_big.code(),
        tonic::Code::ResourceExhausted,
        "{too_big:?}"
    );
    assert!(too_big.message().contains("big.bin"), "{too_big:?}");
    let last = bridge
        .read_file(for_build(read("big.bin", Some((16 << 20, 10)))))
        .await
        .unwrap();
    assert_eq!(last.into_inner().data, b"x");

    // Out of the root: `..` stops at `/`, symlinks resolve inside the ref.
    for path in [
        "../../etc/passwd",
        "/abs/passwd",
        "sub/up",
        "sub/../../abs/passwd",
    ] {
        let data = bridge
            .read_file(for_build(read(path, None)))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:?}"))
            .into_inner()
            .data;
        assert_eq!(data, b"inside\n", "{path}");
    }
    // The host has /etc/shadow; the ref has not.
    let err = bridge
        .read_file(for_build(read("shadow", None)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("shadow"), "{err:?}");

    // ReadDir: the directory's own entries, sorted, filtered by the pattern.
    let dir = |path: &str, pattern: &str| ReadDirRequest {
        r#ref: id.clone(),
        dir_path: path.to_owned(),
        include_pattern: pattern.to_owned(),
    };
    let md = bridge
        .read_dir(for_build(dir("sub", "*.md")))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let listed: Vec<(&str, u32, i64)> = md
        .iter()
        .map(|s| (s.path.as_str(), s.mode, s.size))
        .collect();
    assert_eq!(listed, [("c.md", 0o644, 2), ("d.md", 0o600, 3)]);
    // A pattern naming deeper paths lists the directory holding them, as fsutil's walk.
    let deeper = bridge
        .read_dir(for_build(dir("/", "sub/*.md")))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let names: Vec<&str> = deeper.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(names, ["sub"]);
    let top = bridge
        .read_dir(for_build(dir("/", "")))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let names: Vec<&str> = top.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "Dockerfile",
            "a.txt",
            "abs",
            "big.bin",
            "etc",
            "shadow",
            "sub"
        ]
    );
    let abs = &top[2];
    assert_eq!(abs.mode & MODE_SYMLINK, MODE_SYMLINK, "{abs:?}");
    assert_eq!(abs.linkname, "/etc");
    assert_eq!(top[4].mode & MODE_DIR, MODE_DIR, "{:?}", top[4]);
    // Through an absolute symlink: the ref's /etc.
    let through = bridge
        .read_dir(for_build(dir("abs", "")))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let names: Vec<&str> = through.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(names, ["passwd"]);

    // StatFile: fsutil's Stat of the file, symlinks followed inside the ref.
    let stat = |path: &str| StatFileRequest {
        r#ref: id.clone(),
        path: path.to_owned(),
    };
    let a = bridge
        .stat_file(for_build(stat("a.txt")))
        .await
        .unwrap()
        .into_inner()
        .stat
        .unwrap();
    assert_eq!((a.path.as_str(), a.mode, a.size), ("a.txt", 0o640, 10));
    assert_eq!((a.uid, a.gid), (0, 0));
    assert_eq!(a.mod_time, 1_600_000_000 * 1_000_000_000);
    let followed = bridge
        .stat_file(for_build(stat("/abs")))
        .await
        .unwrap()
        .into_inner()
        .stat
        .unwrap();
    assert_eq!(followed.path, "etc");
    assert_eq!(followed.mode & MODE_DIR, MODE_DIR, "{followed:?}");
    let err = bridge
        .stat_file(for_build(stat("../../../proc/self/status")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // An unknown ref.
    let err = bridge
        .stat_file(for_build(StatFileRequest {
            r#ref: "no-such-ref".into(),
            path: "a.txt".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("no-such-ref"), "{err:?}");

    bridge
        .r#return(for_build(ReturnRequest {
            result: Some(result.clone()),
            error: None,
        }))
        .await
        .unwrap();
    solve.await.unwrap().unwrap();
}
