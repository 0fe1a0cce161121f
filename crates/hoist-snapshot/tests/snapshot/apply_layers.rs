//! Applying ordinary layers: whiteouts and opaque markers across layers, metadata kept,
//! compression found by magic bytes, and tars written by GNU tar rather than by us.

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{listing, RawTar};
use hoist_snapshot::{apply_layer, diff_to_tar, ApplyOptions, DiffSource};

fn apply(tar: &[u8], root: &Path) -> hoist_snapshot::ApplyReport {
    apply_layer(tar, root, &ApplyOptions::default()).unwrap()
}

#[test]
fn whiteouts_delete_and_opaque_hides_only_lower_layers() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    apply(
        &RawTar::new()
            .dir("etc/")
            .file("etc/a", b"a")
            .file("etc/b", b"b")
            .dir("var/")
            .dir("var/cache/")
            .file("var/cache/old", b"")
            .file("var/log", b"")
            .finish(),
        r,
    );
    apply(
        &RawTar::new()
            .file("etc/.wh.a", b"")
            .file("etc/.wh.missing", b"")
            .dir("var/")
            // Entries of this layer placed before the marker survive it.
            .file("var/new", b"n")
            .file("var/.wh..wh..opq", b"")
            .dir("var/cache/")
            .file("var/cache/fresh", b"")
            .finish(),
        r,
    );
    let got: Vec<String> = listing(r)
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        got,
        [
            "etc",
            "etc/b",
            "var",
            "var/cache",
            "var/cache/fresh",
            "var/new"
        ]
    );
}

#[test]
fn entries_replace_whatever_is_there() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    apply(
        &RawTar::new()
            .dir("x/")
            .file("x/inner", b"")
            .file("y", b"file")
            .symlink("z", "y")
            .finish(),
        r,
    );
    apply(
        &RawTar::new()
            .file("x", b"now a file")
            .dir("y/")
            .file("z", b"was a symlink")
            .finish(),
        r,
    );
    assert_eq!(std::fs::read(r.join("x")).unwrap(), b"now a file");
    assert!(r.join("y").is_dir());
    assert!(!r.join("z").is_symlink());
    assert_eq!(std::fs::read(r.join("y")).ok(), None);
}

#[test]
fn metadata_is_kept() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    std::fs::create_dir(s.join("dir")).unwrap();
    std::fs::write(s.join("dir/file"), b"data").unwrap();
    std::fs::set_permissions(s.join("dir/file"), std::fs::Permissions::from_mode(0o2640)).unwrap();
    std::fs::set_permissions(s.join("dir"), std::fs::Permissions::from_mode(0o750)).unwrap();
    xattr::set(s.join("dir/file"), "user.note", b"kept").unwrap();
    if support::is_root() {
        std::os::unix::fs::lchown(s.join("dir/file"), Some(1234), Some(5678)).unwrap();
    }
    let t = filetime::FileTime::from_unix_time(1_234_567_890, 0);
    filetime::set_file_mtime(s.join("dir/file"), t).unwrap();
    filetime::set_file_mtime(s.join("dir"), t).unwrap();
    let mut tar = Vec::new();
    diff_to_tar(
        DiffSource::Trees {
            lower: None,
            upper: s,
        },
        &mut tar,
    )
    .unwrap();

    let out = tempfile::tempdir().unwrap();
    apply(&tar, out.path());
    let file = std::fs::metadata(out.path().join("dir/file")).unwrap();
    let dir = std::fs::metadata(out.path().join("dir")).unwrap();
    assert_eq!(file.mode() & 0o7777, 0o2640);
    assert_eq!(dir.mode() & 0o7777, 0o750);
    assert_eq!(file.mtime(), 1_234_567_890);
    assert_eq!(
        dir.mtime(),
        1_234_567_890,
        "children must not disturb a dir's mtime"
    );
    assert_eq!(
        xattr::get(out.path().join("dir/file"), "user.note").unwrap(),
        Some(b"kept".to_vec())
    );
    if support::is_root() {
        assert_eq!((file.uid(), file.gid()), (1234, 5678));
    } else {
        eprintln!("not root: checking files belong to the caller instead of the tar's owner");
        assert_eq!(file.uid(), rustix::process::geteuid().as_raw());
    }
}

/// Runs `cmd` with `input` on stdin and returns stdout, or None when the tool is missing.
fn pipe(cmd: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

#[test]
fn gzip_and_zstd_from_other_tools_are_detected() {
    let tar = RawTar::new().file("hello", b"world").finish();
    for (tool, args) in [("gzip", &["-c"][..]), ("zstd", &["-q", "-c"][..])] {
        let Some(blob) = pipe(tool, args, &tar) else {
            eprintln!("skipping the {tool} case: no {tool} binary");
            continue;
        };
        let out = tempfile::tempdir().unwrap();
        apply(&blob, out.path());
        assert_eq!(
            std::fs::read(out.path().join("hello")).unwrap(),
            b"world",
            "{tool}"
        );
    }
}

#[test]
fn gnu_tar_layers_apply_like_ours() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    std::fs::create_dir_all(s.join("a/b")).unwrap();
    std::fs::write(s.join("a/b/file"), b"x").unwrap();
    std::fs::hard_link(s.join("a/b/file"), s.join("a/hard")).unwrap();
    std::os::unix::fs::symlink("b/file", s.join("a/sym")).unwrap();
    std::fs::write(s.join("p".repeat(180)), b"long").unwrap();
    xattr::set(s.join("a/b/file"), "user.k", b"v").unwrap();
    let out = Command::new("tar")
        .args([
            "--format=posix",
            "--xattrs",
            "--xattrs-include=user.*",
            "-C",
        ])
        .arg(s)
        .args(["-cf", "-", "."])
        .output();
    let Ok(out) = out else {
        eprintln!("skipping gnu_tar_layers_apply_like_ours: no tar binary");
        return;
    };
    assert!(out.status.success());
    let dst = tempfile::tempdir().unwrap();
    let report = apply(&out.stdout, dst.path());
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let full = |dir: &Path| {
        let mut tar = Vec::new();
        diff_to_tar(
            DiffSource::Trees {
                lower: None,
                upper: dir,
            },
            &mut tar,
        )
        .unwrap();
        tar
    };
    let (ours, theirs) = (full(s), full(dst.path()));
    assert_eq!(support::tar_names(&ours), support::tar_names(&theirs));
    assert!(ours == theirs, "GNU tar round trip differs");
    let ino = |p: &str| std::fs::metadata(dst.path().join(p)).unwrap().ino();
    assert_eq!(ino("a/b/file"), ino("a/hard"));
}

#[test]
fn skipped_device_keeps_the_file_below_it() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    apply(&RawTar::new().file("dev/null", b"placeholder").finish(), r);
    let options = ApplyOptions {
        preserve_ownership: false,
        create_devices: false,
    };
    let tar = RawTar::new()
        .char_device("dev/null", 1, 3)
        .hardlink("self", "self")
        .finish();
    let report = apply_layer(&tar[..], r, &options).unwrap_err();
    // A hardlink to itself names nothing that exists: an error naming the entry.
    assert!(report.to_string().contains("layer entry self"), "{report}");
    assert_eq!(std::fs::read(r.join("dev/null")).unwrap(), b"placeholder");
}
