//! COPY as BuildKit does it, through `hoist_engine::build` on `FROM scratch` Dockerfiles
//! (no registry, no RUN, no root): symlinks named as sources or met on the way, symlinks
//! pointing out of the context, `--parents` with and without the `/./` pivot, and symbolic
//! `--chmod`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_engine::StateDir;
use hoist_engine::{build, BuildRequest, Worker};
use hoist_export::Output;
use hoist_frontend::BuildOptions;
use hoist_oci::Platform;
use hoist_registry::{Credentials, RegistryClient, RegistryConfig};

/// A context in a temp dir; `build` exports the result to `out/`. The `fidelity` tests use
/// it too.
pub(crate) struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// Files (`name`, content); a name ending in `/` is a directory.
    pub(crate) fn new(dockerfile: &str, files: &[(&str, &str)]) -> Case {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
        Case::with_bytes(dockerfile, &files)
    }

    /// [`Case::new`] with files of any bytes.
    pub(crate) fn with_bytes(dockerfile: &str, files: &[(&str, &[u8])]) -> Case {
        let case = Case {
            dir: tempfile::tempdir().unwrap(),
        };
        case.file("Dockerfile", dockerfile.as_bytes());
        for (name, bytes) in files {
            case.file(name, bytes);
        }
        case
    }

    fn ctx(&self, rel: &str) -> PathBuf {
        self.dir.path().join("ctx").join(rel)
    }

    fn file(&self, name: &str, bytes: &[u8]) {
        let path = self.ctx(name);
        if name.ends_with('/') {
            std::fs::create_dir_all(&path).unwrap();
            return;
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub(crate) fn symlink(&self, target: &str, name: &str) {
        let path = self.ctx(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    fn chmod(&self, name: &str, mode: u32) {
        std::fs::set_permissions(self.ctx(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub(crate) fn out(&self, rel: &str) -> PathBuf {
        self.dir.path().join("out").join(rel)
    }

    /// Builds with a fresh worker on the case's state dir, exporting to `out/`.
    pub(crate) fn build(&self) -> Result<(), String> {
        let context = self.ctx("");
        let out = self.dir.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let request = BuildRequest {
            outputs: Output::parse_all(&[format!("type=local,dest={}", out.display())]).unwrap(),
            ..BuildRequest::new(
                Some(std::fs::read(context.join("Dockerfile")).unwrap()),
                context.join("Dockerfile").display().to_string(),
                context.into(),
                BuildOptions::new(Platform::host()),
            )
        };
        let client = RegistryClient::new(RegistryConfig::default(), Credentials::default());
        let state = StateDir::new(self.dir.path().join("state"));
        let worker = Arc::new(Worker::open(state, client).unwrap());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(build(worker, request, None))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn is_symlink(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
}

fn mode(path: &Path) -> u32 {
    path.symlink_metadata().unwrap().permissions().mode() & 0o7777
}

/// Every path under `root`, relative, sorted.
pub(crate) fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.symlink_metadata().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn symlink_sources_are_followed_and_keep_their_names() {
    let case = Case::new(
        "FROM scratch\nCOPY foo /\nCOPY sub/l* alllinks/\n",
        &[
            ("bar", "bar-contents"),
            ("sub/lfile", "lfile-contents"),
            ("sub/subfile", "subfile-contents"),
            ("sub/baz", "baz-contents"),
        ],
    );
    case.symlink("bar", "foo");
    case.symlink("subfile", "sub/l0");
    case.symlink("second", "sub/l1");
    case.symlink("baz", "sub/second");
    case.build().unwrap();
    assert_eq!(read(&case.out("foo")), "bar-contents");
    assert_eq!(read(&case.out("alllinks/l0")), "subfile-contents");
    assert_eq!(read(&case.out("alllinks/l1")), "baz-contents");
    assert_eq!(read(&case.out("alllinks/lfile")), "lfile-contents");
    assert!(!is_symlink(&case.out("foo")));
    assert!(!is_symlink(&case.out("alllinks/l1")));
    assert!(!case.out("bar").exists());

    // The link's target is what the step reads: changing it is a change.
    case.file("bar", b"changed");
    case.build().unwrap();
    assert_eq!(read(&case.out("foo")), "changed");
}

#[test]
fn paths_through_symlinked_directories_resolve_in_the_context() {
    let case = Case::new(
        "FROM scratch\nCOPY link/foo .\nCOPY abs/deep/x /x\n",
        &[("sub/foo", "contents"), ("real/deep/x", "x")],
    );
    case.symlink("sub", "link");
    case.symlink("/real", "abs");
    case.build().unwrap();
    assert_eq!(read(&case.out("foo")), "contents");
    assert_eq!(read(&case.out("x")), "x");
}

#[test]
fn symlinks_inside_copied_directories_stay_symlinks() {
    let case = Case::new("FROM scratch\nCOPY dir /d/\n", &[("dir/target", "t")]);
    case.symlink("target", "dir/rel");
    case.symlink("/etc/passwd", "dir/abs");
    case.build().unwrap();
    assert_eq!(
        std::fs::read_link(case.out("d/rel")).unwrap(),
        Path::new("target")
    );
    assert_eq!(
        std::fs::read_link(case.out("d/abs")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
fn symlinks_out_of_the_context_are_not_found() {
    for (target, dockerfile) in [
        ("/etc/hostname", "FROM scratch\nCOPY out /\n"),
        (
            "../../../../../../etc/hostname",
            "FROM scratch\nCOPY out /\n",
        ),
        ("/etc", "FROM scratch\nCOPY out/hostname /\n"),
        ("/etc/hostname", "FROM scratch\nCOPY ou* /x/\n"),
    ] {
        let case = Case::new(dockerfile, &[("other", "o")]);
        case.symlink(target, "out");
        let err = case.build().unwrap_err();
        assert!(err.contains("not found"), "{target}: {err}");
        assert!(!case.out("hostname").exists(), "{target}");
        assert!(!case.out("x/out").exists(), "{target}");
    }
}

#[test]
fn copy_parents_keeps_each_sources_directories() {
    let case = Case::new(
        "FROM scratch\n\
         COPY --parents foo1/foo2/bar /\n\
         WORKDIR /test\n\
         COPY --parents foo1/foo2/ba* .\n\
         COPY --parents ./foo1/./foo2/bar /pivot/\n\
         COPY --parents x/*/c /wild/\n",
        &[
            ("foo1/foo2/bar", "testing"),
            ("foo1/foo2/baz", "testing2"),
            ("foo1/other", "no"),
            ("x/b/c/f", "b"),
            ("x/b2/c/d/g", "b2"),
            ("x/b3/z", "no"),
        ],
    );
    case.build().unwrap();
    assert_eq!(
        listing(&case.out("")),
        [
            "foo1",
            "foo1/foo2",
            "foo1/foo2/bar",
            "pivot",
            "pivot/foo2",
            "pivot/foo2/bar",
            "test",
            "test/foo1",
            "test/foo1/foo2",
            "test/foo1/foo2/bar",
            "test/foo1/foo2/baz",
            "wild",
            "wild/x",
            "wild/x/b",
            "wild/x/b/c",
            "wild/x/b/c/f",
            "wild/x/b2",
            "wild/x/b2/c",
            "wild/x/b2/c/d",
            "wild/x/b2/c/d/g",
        ]
    );
    assert_eq!(read(&case.out("test/foo1/foo2/baz")), "testing2");
}

#[test]
fn copy_parents_from_a_stage_pivots_at_the_first_dot_component() {
    let case = Case::new(
        "FROM scratch AS base\n\
         COPY tree /test/\n\
         FROM scratch\n\
         COPY --from=base --parents /test/a/b/./c/d /middle/\n\
         COPY --from=base --parents /test/a/./b/./c /double/\n\
         COPY --from=base --parents /test/a/b*/./c/**/e /dw/\n\
         COPY --from=base --parents /test/a/b/c/d/. /end/\n",
        &[
            ("tree/a/b/c/d/foo", "foo"),
            ("tree/a/b/c/d/e/bay", "bay"),
            ("tree/a/b2/c/d/e/bar", "bar"),
            ("tree/a/b/c2/d/e/baz", "baz"),
        ],
    );
    case.build().unwrap();
    let all = listing(&case.out(""));
    let under =
        |prefix: &str| -> Vec<&str> { all.iter().filter_map(|p| p.strip_prefix(prefix)).collect() };
    assert_eq!(
        under("middle/"),
        ["c", "c/d", "c/d/e", "c/d/e/bay", "c/d/foo"]
    );
    assert_eq!(
        under("double/"),
        ["b", "b/c", "b/c/d", "b/c/d/e", "b/c/d/e/bay", "b/c/d/foo"]
    );
    assert_eq!(
        under("dw/"),
        ["c", "c/d", "c/d/e", "c/d/e/bar", "c/d/e/bay"]
    );
    assert!(case.out("end/test/a/b/c/d/e/bay").is_file());
    assert!(!case.out("end/test/a/b2").exists());
}

#[test]
fn copy_parents_without_wildcards_requires_the_path() {
    let case = Case::new(
        "FROM scratch\nCOPY --parents foo1/missing /\n",
        &[("foo1/there", "x")],
    );
    let err = case.build().unwrap_err();
    assert!(err.contains("\"/foo1/missing\": not found"), "{err}");

    // With a wildcard nothing is required.
    let case = Case::new(
        "FROM scratch\nCOPY --parents foo1/missing* /\nCOPY foo1/there /t\n",
        &[("foo1/there", "x")],
    );
    case.build().unwrap();
    assert_eq!(listing(&case.out("")), ["t"]);
}

#[test]
fn symbolic_chmod_applies_to_each_copied_entry() {
    let case = Case::new(
        "FROM scratch\n\
         COPY --chmod=u=rwX,go=rX dir /d/\n\
         COPY --chmod=u+x,g-w file /f\n\
         COPY --chmod=a=rX file /nox\n\
         COPY --chmod=go=u dir/sub/exe /g/\n",
        &[("dir/sub/exe", "e"), ("dir/plain", "p"), ("file", "f")],
    );
    case.chmod("dir/sub/exe", 0o700);
    case.chmod("dir/plain", 0o600);
    case.chmod("dir/sub", 0o700);
    case.chmod("file", 0o664);
    case.build().unwrap();
    assert_eq!(mode(&case.out("d/sub")), 0o755);
    assert_eq!(mode(&case.out("d/sub/exe")), 0o755);
    assert_eq!(mode(&case.out("d/plain")), 0o644);
    assert_eq!(mode(&case.out("f")), 0o744);
    assert_eq!(mode(&case.out("nox")), 0o444);
    assert_eq!(mode(&case.out("g/exe")), 0o777);
}

/// A directory of many files (copied by several threads) lands whole: each file with its
/// bytes and the copy's mode, files replacing those an earlier copy left, and a file where
/// the destination holds a directory failing the build as it does with a few files.
#[test]
fn a_directory_of_many_files_is_copied_whole() {
    let names: Vec<String> = (0..1200)
        .map(|i| format!("many/d{}/f{i:04}", i % 7))
        .collect();
    let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    let case = Case::new(
        "FROM scratch\n\
         COPY many/d3/f0003 /m/d3/f0010\n\
         COPY --chmod=640 many /m/\n",
        &files,
    );
    case.build().unwrap();
    for name in &names {
        let copy = case.out(&name.replacen("many/", "m/", 1));
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), *name);
        assert_eq!(mode(&copy), 0o640, "{name}");
    }
    assert_eq!(listing(&case.out("m")).len(), 7 + 1200);

    let clash = Case::new(
        "FROM scratch\n\
         COPY other /m/d5/f0012\n\
         COPY many /m/\n",
        &[files.as_slice(), &[("other/x", "a directory")]].concat(),
    );
    let error = clash.build().unwrap_err();
    assert!(error.contains("/m/d5/f0012"), "{error}");
}
