//! Regressions of issue 15 where hoist's file ops differed from BuildKit's, through
//! `hoist_engine::build` on `FROM scratch` Dockerfiles (no registry, no RUN): owners of the
//! directories WORKDIR creates, escaped wildcards, copies onto symlinks, archives ADD
//! unpacks. Tests about owners need root (without it the chowns are skipped) and say so.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::copy_semantics::{read, Case};

/// The passwd and group files of the busybox images the end-to-end tests use.
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

fn is_root() -> bool {
    let root = hoist_testkit::is_root();
    if !root {
        hoist_testkit::skip("checks owners of files the build chowns: needs root");
    }
    root
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = path
        .symlink_metadata()
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

fn mode(path: &Path) -> u32 {
    path.symlink_metadata().unwrap().mode() & 0o7777
}

#[test]
fn workdir_as_root_needs_no_passwd_file() {
    let case = Case::with_bytes(
        "FROM scratch\nUSER root\nWORKDIR /x\nUSER 0:root\nWORKDIR /y\n",
        &[],
    );
    case.build().unwrap();
    assert!(case.out("x").is_dir());
    assert!(case.out("y").is_dir());
}

#[test]
fn workdir_of_an_unknown_user_builds_and_leaves_existing_dirs_alone() {
    if !is_root() {
        return;
    }
    // BuildKit's file ops take a name missing from passwd as root, and never touch a
    // directory that already exists.
    let case = Case::with_bytes(
        "FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\n\
         COPY --chown=7:8 --chmod=700 keep.txt /test/keep.txt\n\
         USER docker:root\nWORKDIR /test\nWORKDIR /fresh/sub\n",
        &[
            ("passwd", PASSWD.as_bytes()),
            ("group", GROUP.as_bytes()),
            ("keep.txt", b"k"),
        ],
    );
    case.build().unwrap();
    assert_eq!(owner(&case.out("test")), (7, 8));
    assert_eq!(owner(&case.out("fresh")), (0, 0));
    assert_eq!(owner(&case.out("fresh/sub")), (0, 0));
}

#[test]
fn workdir_creates_missing_parents_owned_by_the_user() {
    if !is_root() {
        return;
    }
    let case = Case::with_bytes(
        "FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\n\
         COPY --chmod=700 keep.txt /existing/keep.txt\n\
         USER nobody\nWORKDIR /created/directory\nWORKDIR /existing\n\
         USER 1234\nWORKDIR /num/dir\nUSER nobody:root\nWORKDIR /mixed\n",
        &[
            ("passwd", PASSWD.as_bytes()),
            ("group", GROUP.as_bytes()),
            ("keep.txt", b"k"),
        ],
    );
    case.build().unwrap();
    assert_eq!(owner(&case.out("created")), (65534, 65534));
    assert_eq!(owner(&case.out("created/directory")), (65534, 65534));
    assert_eq!(mode(&case.out("created")), 0o755);
    // An existing directory keeps its owner and mode (0700: BuildKit gives the parents a
    // copy creates the copy's mode).
    assert_eq!(owner(&case.out("existing")), (0, 0));
    assert_eq!(mode(&case.out("existing")), 0o700);
    // A uid alone is also the gid.
    assert_eq!(owner(&case.out("num")), (1234, 1234));
    assert_eq!(owner(&case.out("num/dir")), (1234, 1234));
    assert_eq!(owner(&case.out("mixed")), (65534, 0));
}

#[test]
fn escaped_wildcard_source_to_a_file_name_writes_the_file() {
    // The lexer turns `n\?pe` into the wildcard `n?pe` (as BuildKit's does), which matches
    // `n?pe` and `nope`; a destination without a trailing `/` is a file name for each match
    // in turn (the last one wins), not a directory, as in BuildKit (and dockerd 20.10).
    let case = Case::with_bytes(
        "FROM scratch\nCOPY ./app/n\\?pe/file.txt /app4/file.txt\n\
         COPY ./app/n?pe/file.txt /app5/file.txt\n\
         COPY ./app/only\\?/file.txt /app6/file.txt\n",
        &[
            ("app/n?pe/file.txt", b"q"),
            ("app/nope/file.txt", b"n"),
            ("app/only?/file.txt", b"o"),
        ],
    );
    case.build().unwrap();
    assert_eq!(read(&case.out("app4/file.txt")), "n");
    assert_eq!(read(&case.out("app5/file.txt")), "n");
    assert_eq!(read(&case.out("app6/file.txt")), "o");
}

/// Copy sources match with Go's `filepath.Match`, as fsutil resolves them: `[*]` is a
/// literal `*`. (Matched as a `.dockerignore` pattern, the star inside the class became a
/// wildcard and the pattern matched neither file.) The whole context is sent here
/// (`COPY .`), so the context's own filtering plays no part.
#[test]
fn copy_source_class_with_a_star_matches_a_literal_star() {
    let case = Case::with_bytes(
        "FROM scratch\nCOPY . /all\nCOPY app/star[*].txt /star/\nCOPY app/st?r[x-z].txt /range/\n",
        &[("app/star*.txt", b"s"), ("app/starx.txt", b"x")],
    );
    case.build().unwrap();
    assert_eq!(read(&case.out("star/star*.txt")), "s");
    assert!(!case.out("star/starx.txt").exists());
    assert_eq!(read(&case.out("range/starx.txt")), "x");
    assert!(!case.out("range/star*.txt").exists());
}

#[test]
fn copy_dir_onto_symlink_to_dir_is_refused() {
    // `base/` puts the symlink `/sub -> target` in the image (links inside a copied
    // directory stay links); copying a directory `sub` onto it fails in BuildKit (and
    // dockerd 20.10) rather than replacing the link or following it.
    let case = Case::with_bytes(
        "FROM scratch\nCOPY base/ /\nCOPY dir/ /\n",
        &[("base/target/keep.txt", b"k"), ("dir/sub/file.txt", b"x")],
    );
    case.symlink("target", "base/sub");
    let err = case.build().unwrap_err();
    assert!(err.contains("cannot copy to non-directory: /sub"), "{err}");
}

#[test]
fn copy_file_onto_directory_is_refused() {
    let case = Case::with_bytes(
        "FROM scratch\nCOPY base/ /\nCOPY dir/ /\n",
        &[("base/d/inner/keep.txt", b"k"), ("dir/d", b"z")],
    );
    let err = case.build().unwrap_err();
    assert!(
        err.contains("cannot replace to directory /d with file"),
        "{err}"
    );
}

#[test]
fn copy_into_a_symlinked_destination_follows_it() {
    // The destination named by the instruction is resolved following symlinks.
    let case = Case::with_bytes(
        "FROM scratch\nCOPY base/ /\nCOPY dir/ /sub/\n",
        &[("base/target/keep.txt", b"k"), ("dir/file.txt", b"x")],
    );
    case.symlink("target", "base/sub");
    case.build().unwrap();
    assert_eq!(read(&case.out("target/file.txt")), "x");
    assert!(case
        .out("sub")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A tar of `./` (owned by 1234:1234, mode 0700) and `./sub/f.txt`, compressed by `tool`
/// (`None`: plain); `None` when the tool is not installed.
fn archive(tool: Option<&str>) -> Option<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut root = tar::Header::new_gnu();
    root.set_entry_type(tar::EntryType::Directory);
    root.set_path("./").unwrap();
    root.set_mode(0o700);
    root.set_uid(1234);
    root.set_gid(1234);
    root.set_mtime(0);
    root.set_size(0);
    root.set_cksum();
    builder.append(&root, std::io::empty()).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_path("./sub/f.txt").unwrap();
    file.set_mode(0o644);
    file.set_uid(0);
    file.set_gid(0);
    file.set_mtime(0);
    file.set_size(3);
    file.set_cksum();
    builder.append(&file, &b"hi\n"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let Some(tool) = tool else { return Some(tar) };
    use std::io::Write as _;
    let child = std::process::Command::new(tool)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        hoist_testkit::skip(&format!("{tool} is not installed"));
        return None;
    };
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    Some(out.stdout)
}

#[test]
fn add_unpacks_bzip2_xz_and_zstd_tarballs() {
    let mut files = Vec::new();
    for (name, tool) in [
        ("a.tar.gz", "gzip"),
        ("a.tar.bz2", "bzip2"),
        ("a.tar.xz", "xz"),
        ("a.tar.zst", "zstd"),
    ] {
        let Some(bytes) = archive(Some(tool)) else {
            return;
        };
        files.push((name, bytes));
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let case = Case::with_bytes(
        "FROM scratch\nADD a.tar.gz /gz/\nADD a.tar.bz2 /bz/\nADD a.tar.xz /xz/\nADD a.tar.zst /zst/\n",
        &refs,
    );
    case.build().unwrap();
    for dir in ["gz", "bz", "xz", "zst"] {
        assert_eq!(
            read(&case.out(&format!("{dir}/sub/f.txt"))),
            "hi\n",
            "{dir}"
        );
    }
}

#[test]
fn add_archive_leaves_the_destination_directory_owner_alone() {
    if !is_root() {
        return;
    }
    // The archive's `./` (1234:1234, 0700) changes neither an existing destination nor one
    // the ADD creates, as with moby's Untar (seen in dockerd 20.10).
    let tar = archive(None).unwrap();
    let case = Case::with_bytes(
        "FROM scratch\nCOPY keep.txt /dest/keep.txt\nADD a.tar /dest/\nADD a.tar /new/\n",
        &[("keep.txt", b"k"), ("a.tar", &tar)],
    );
    case.build().unwrap();
    for dir in ["dest", "new"] {
        assert_eq!(owner(&case.out(dir)), (0, 0), "{dir}");
        assert_eq!(mode(&case.out(dir)), 0o755, "{dir}");
    }
    assert_eq!(read(&case.out("dest/sub/f.txt")), "hi\n");
}

#[test]
fn add_archive_with_chown_creates_the_destination_owned_by_it() {
    if !is_root() {
        return;
    }
    // BuildKit makes an unpacked archive's missing destination (and parents) as a copy
    // makes its parents, owned by `--chown` (seen in dockerd 20.10); an existing one keeps
    // its owner. The entries keep the archive's owners in both.
    let tar = archive(None).unwrap();
    let case = Case::with_bytes(
        "FROM scratch\nCOPY keep.txt /dest/keep.txt\nADD --chown=7:8 a.tar /dest/\n\
         ADD --chown=7:8 a.tar /owned/deep/\n",
        &[("keep.txt", b"k"), ("a.tar", &tar)],
    );
    case.build().unwrap();
    assert_eq!(owner(&case.out("dest")), (0, 0));
    assert_eq!(owner(&case.out("owned")), (7, 8));
    assert_eq!(owner(&case.out("owned/deep")), (7, 8));
    assert_eq!(mode(&case.out("owned/deep")), 0o755);
    assert_eq!(read(&case.out("owned/deep/sub/f.txt")), "hi\n");
}
