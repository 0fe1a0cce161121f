//! Layer diffs: determinism, header shape (checked with the system `tar`), whiteouts and
//! opaque directories, the overlay upper-dir form, compression digests, and the round trip
//! extract → diff giving back the same bytes.

use crate::support;

use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::support::tar_names;
use filetime::FileTime;
use hoist_oci::{Compression, MediaType};
use hoist_snapshot::{
    apply_layer, copy_tree, diff_to_tar, ApplyOptions, DiffSource, LayerOptions, LayerWriter,
    MediaTypes,
};

const MTIME: i64 = 1_700_000_000;

/// Sets every mtime under `dir` (and `dir`) to a fixed value, deepest first.
fn pin_mtimes(dir: &Path) {
    let mut paths: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    paths.reverse();
    for p in paths {
        let t = FileTime::from_unix_time(MTIME, 0);
        filetime::set_symlink_file_times(&p, t, t).unwrap();
    }
}

/// A tree with a bit of everything a layer can hold.
fn sample_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc/ssl")).unwrap();
    std::fs::write(dir.join("etc/hostname"), b"hoist\n").unwrap();
    std::fs::write(dir.join("etc/ssl/cert.pem"), vec![b'c'; 3000]).unwrap();
    std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
    std::fs::write(dir.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        dir.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::hard_link(dir.join("usr/bin/tool"), dir.join("usr/bin/tool-alias")).unwrap();
    symlink("tool", dir.join("usr/bin/link")).unwrap();
    symlink("/does/not/exist", dir.join("dangling")).unwrap();
    let long_dir = dir.join("d".repeat(120));
    std::fs::create_dir(&long_dir).unwrap();
    std::fs::write(long_dir.join("f".repeat(60)), b"long path").unwrap();
    std::fs::write(dir.join("n".repeat(200)), b"long name").unwrap();
    symlink("t".repeat(150), dir.join("longlink")).unwrap();
    std::fs::write(dir.join("xattrs"), b"x").unwrap();
    xattr::set(dir.join("xattrs"), "user.hoist", b"value").unwrap();
    std::fs::create_dir(dir.join("empty")).unwrap();
    std::fs::set_permissions(dir.join("empty"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    pin_mtimes(dir);
}

fn diff(source: DiffSource<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    diff_to_tar(source, &mut out).unwrap();
    out
}

fn full(dir: &Path) -> Vec<u8> {
    diff(DiffSource::Trees {
        lower: None,
        upper: dir,
    })
}

#[test]
fn same_tree_gives_byte_identical_tars() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    sample_tree(a.path());
    sample_tree(b.path());
    let tar_a = full(a.path());
    assert_eq!(tar_a, full(a.path()));
    assert_eq!(tar_a, full(b.path()), "two trees built alike differ");
}

#[test]
fn tar_lists_sorted_entries_with_expected_headers() {
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let tar = full(dir.path());
    let names = tar_names(&tar);
    let d = "d".repeat(120);
    let expected = vec![
        "dangling".to_owned(),
        format!("{d}/"),
        format!("{d}/{}", "f".repeat(60)),
        "empty/".to_owned(),
        "etc/".to_owned(),
        "etc/hostname".to_owned(),
        "etc/ssl/".to_owned(),
        "etc/ssl/cert.pem".to_owned(),
        "longlink".to_owned(),
        "n".repeat(200),
        "usr/".to_owned(),
        "usr/bin/".to_owned(),
        "usr/bin/link".to_owned(),
        "usr/bin/tool".to_owned(),
        "usr/bin/tool-alias".to_owned(),
        "xattrs".to_owned(),
    ];
    assert_eq!(names, expected);

    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let h = entry.header();
        assert_eq!(h.mtime().unwrap(), MTIME as u64, "{name}");
        assert_eq!(h.username_bytes(), Some(&b""[..]), "{name}");
        match name.as_str() {
            "usr/bin/tool" => assert_eq!(h.mode().unwrap(), 0o4755),
            "usr/bin/tool-alias" => {
                assert_eq!(h.entry_type(), tar::EntryType::Link);
                assert_eq!(&*entry.link_name_bytes().unwrap(), b"usr/bin/tool");
            }
            "empty/" => assert_eq!(h.mode().unwrap(), 0o1777),
            "longlink" => {
                assert_eq!(entry.link_name_bytes().unwrap().len(), 150);
            }
            "xattrs" => {
                let pax: Vec<(String, Vec<u8>)> = entry
                    .pax_extensions()
                    .unwrap()
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (e.key().unwrap().to_owned(), e.value_bytes().to_vec())
                    })
                    .collect();
                assert_eq!(
                    pax,
                    vec![("SCHILY.xattr.user.hoist".to_owned(), b"value".to_vec())]
                );
            }
            _ => {}
        }
    }

    // PAX headers are named like Go's archive/tar names them.
    let mut raw = tar::Archive::new(&tar[..]);
    let pax_names: Vec<String> = raw
        .entries()
        .unwrap()
        .raw(true)
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type() == tar::EntryType::XHeader)
        .map(|e| String::from_utf8(e.path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(
        pax_names,
        [
            // `d{120}/` cannot be split into prefix + name; its header name is cut to 100.
            format!("{d}/PaxHeaders.0")[..100].to_owned(),
            "PaxHeaders.0/longlink".to_owned(),
            format!("PaxHeaders.0/{}", "n".repeat(200))[..100].to_owned(),
            "PaxHeaders.0/xattrs".to_owned(),
        ]
    );

    // An independent reader agrees.
    let file = dir.path().join("../layer-check.tar");
    std::fs::write(&file, &tar).unwrap();
    let out = Command::new("tar").arg("-tvf").arg(&file).output();
    std::fs::remove_file(&file).unwrap();
    let Ok(out) = out else {
        eprintln!("skipping the `tar -tvf` check: no tar binary");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listing.lines().count(), expected.len(), "{listing}");
    assert!(listing.contains("-rwsr-xr-x"), "{listing}");
    assert!(
        listing.contains("usr/bin/tool-alias link to usr/bin/tool"),
        "{listing}"
    );
    assert!(listing.contains(&"n".repeat(200)), "{listing}");
    assert!(listing.contains("drwxrwxrwt"), "{listing}");
    assert!(listing.contains("2023-11-14"), "{listing}");
}

#[test]
fn extract_then_diff_round_trips_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let tar = full(dir.path());
    let out = tempfile::tempdir().unwrap();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut w = LayerWriter::new(
            Vec::new(),
            LayerOptions {
                compression,
                ..LayerOptions::default()
            },
        )
        .unwrap();
        w.write_all(&tar).unwrap();
        let (blob, _) = w.finish().unwrap();
        let target = out.path().join(format!("{compression:?}"));
        std::fs::create_dir(&target).unwrap();
        let report = apply_layer(&blob[..], &target, &ApplyOptions::default()).unwrap();
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        let again = full(&target);
        assert_eq!(tar_names(&again), tar_names(&tar), "{compression:?}");
        assert!(again == tar, "{compression:?}: re-diffed tar differs");
    }
}

#[test]
fn compared_trees_give_whiteouts_opaque_dirs_and_changes_only() {
    let lower = tempfile::tempdir().unwrap();
    sample_tree(lower.path());
    let upper_tmp = tempfile::tempdir().unwrap();
    let upper = upper_tmp.path().join("u");
    copy_tree(lower.path(), &upper).unwrap();
    assert_eq!(
        diff(DiffSource::Trees {
            lower: Some(lower.path()),
            upper: &upper
        })
        .len(),
        1024,
        "a faithful copy has no change"
    );

    std::fs::remove_file(upper.join("etc/hostname")).unwrap();
    std::fs::remove_file(upper.join("etc/ssl/cert.pem")).unwrap();
    std::fs::write(upper.join("etc/ssl/new.pem"), b"new").unwrap();
    // Same size and mtime, different bytes: only the content check can see it.
    std::fs::write(upper.join("xattrs"), b"y").unwrap();
    std::fs::remove_file(upper.join("dangling")).unwrap();
    std::fs::create_dir(upper.join("dangling")).unwrap();
    std::fs::remove_dir_all(upper.join("d".repeat(120))).unwrap();
    pin_mtimes(&upper);

    let tar = diff(DiffSource::Trees {
        lower: Some(lower.path()),
        upper: &upper,
    });
    assert_eq!(
        tar_names(&tar),
        vec![
            "dangling/".to_owned(),
            format!(".wh.{}", "d".repeat(120)),
            "etc/".to_owned(),
            "etc/.wh.hostname".to_owned(),
            "etc/ssl/".to_owned(),
            "etc/ssl/.wh..wh..opq".to_owned(),
            "etc/ssl/new.pem".to_owned(),
            "xattrs".to_owned(),
        ]
    );

    // Applying the diff onto the lower tree gives the upper tree.
    let applied_tmp = tempfile::tempdir().unwrap();
    let applied = applied_tmp.path().join("a");
    copy_tree(lower.path(), &applied).unwrap();
    apply_layer(&tar[..], &applied, &ApplyOptions::default()).unwrap();
    let rest = diff(DiffSource::Trees {
        lower: Some(&applied),
        upper: &upper,
    });
    assert_eq!(tar_names(&rest), Vec::<String>::new());
}

#[test]
fn overlay_upper_dir_whiteouts_and_opaque_xattr() {
    if !support::is_root() {
        eprintln!("skipping overlay_upper_dir_whiteouts_and_opaque_xattr: 0/0 char devices and trusted.* xattrs need root");
        return;
    }
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    std::fs::create_dir(u.join("etc")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        u.join("etc/gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0),
        0,
    )
    .unwrap();
    std::fs::create_dir(u.join("var")).unwrap();
    xattr::set(u.join("var"), "trusted.overlay.opaque", b"y").unwrap();
    std::fs::write(u.join("var/new"), b"n").unwrap();
    pin_mtimes(u);
    let tar = diff(DiffSource::OverlayUpper {
        upper: u,
        lowers: &[],
    });
    assert_eq!(
        tar_names(&tar),
        [
            "etc/",
            "etc/.wh.gone",
            "var/",
            "var/.wh..wh..opq",
            "var/new"
        ]
    );
    // The overlay's own xattr does not leak into the layer.
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert!(entry.pax_extensions().unwrap().is_none());
    }
}

#[test]
fn overlay_dirs_only_copied_up_are_left_out() {
    // What a RUN leaves when it made and removed the `/etc/hosts` mount stub: `etc/`
    // copied up with the lower's metadata and nothing in it.
    let lower = tempfile::tempdir().unwrap();
    let below = tempfile::tempdir().unwrap();
    let upper = tempfile::tempdir().unwrap();
    let (l, b, u) = (lower.path(), below.path(), upper.path());
    for dir in ["etc", "usr/share", "opt"] {
        std::fs::create_dir_all(b.join(dir)).unwrap();
    }
    std::fs::write(b.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    std::fs::create_dir_all(l.join("usr")).unwrap();
    for dir in ["etc", "usr/share", "opt", "var"] {
        std::fs::create_dir_all(u.join(dir)).unwrap();
    }
    std::fs::write(u.join("usr/share/new"), "n").unwrap();
    pin_mtimes(l);
    pin_mtimes(b);
    pin_mtimes(u);
    // `opt/` was touched by the step: its time is no longer the lower's.
    let later = FileTime::from_unix_time(MTIME + 60, 0);
    filetime::set_file_mtime(u.join("opt"), later).unwrap();
    let lowers = [l.to_path_buf(), b.to_path_buf()];
    let tar = diff(DiffSource::OverlayUpper {
        upper: u,
        lowers: &lowers,
    });
    // etc/ is gone; usr/ stays as the parent of a change; var/ is new.
    assert_eq!(
        tar_names(&tar),
        ["opt/", "usr/", "usr/share/", "usr/share/new", "var/"]
    );
    // With no lowers every entry is a change, as before.
    let tar = diff(DiffSource::OverlayUpper {
        upper: u,
        lowers: &[],
    });
    assert!(tar_names(&tar).contains(&"etc/".to_owned()));
}

#[test]
fn layer_digests_are_deterministic_per_compression() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    sample_tree(a.path());
    sample_tree(b.path());
    for (compression, media_types, media_type) in [
        (Compression::Gzip, MediaTypes::Oci, MediaType::OciLayerGzip),
        (Compression::Zstd, MediaTypes::Oci, MediaType::OciLayerZstd),
        (
            Compression::None,
            MediaTypes::Docker,
            MediaType::DockerLayer,
        ),
        (
            Compression::Gzip,
            MediaTypes::Docker,
            MediaType::DockerLayerGzip,
        ),
    ] {
        let options = LayerOptions {
            compression,
            level: None,
            media_types,
        };
        let layer = |dir: &Path| {
            let mut w = LayerWriter::new(Vec::new(), options).unwrap();
            diff_to_tar(
                DiffSource::Trees {
                    lower: None,
                    upper: dir,
                },
                &mut w,
            )
            .unwrap();
            w.finish().unwrap()
        };
        let (blob_a, layer_a) = layer(a.path());
        let (blob_b, layer_b) = layer(b.path());
        assert_eq!(layer_a, layer_b, "{compression:?}");
        assert_eq!(blob_a, blob_b);
        assert_eq!(layer_a.descriptor.media_type, media_type);
        assert_eq!(
            layer_a.diff_id,
            hoist_oci::Digest::sha256_of(&full(a.path()))
        );
        if compression == Compression::None {
            assert_eq!(layer_a.diff_id, layer_a.descriptor.digest);
        }
    }
}

#[test]
fn sockets_left_by_a_step_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let _listener =
        std::os::unix::net::UnixListener::bind(dir.path().join("run/agent.sock")).unwrap();
    std::fs::write(dir.path().join("run/pid"), b"1").unwrap();
    assert_eq!(tar_names(&full(dir.path())), ["run/", "run/pid"]);
}

#[test]
fn a_large_file_is_read_ahead_into_the_layer_byte_for_byte() {
    // 9 MiB and a bit: past the size from which a file is read on a thread of its own, and
    // not a whole number of reads, between two small files.
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(9 << 20) + 777).map(|i: u32| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("a"), b"before").unwrap();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    std::fs::write(dir.path().join("c"), b"after").unwrap();
    pin_mtimes(dir.path());
    let tar = full(dir.path());
    let mut archive = tar::Archive::new(&tar[..]);
    let mut contents = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        contents.push((entry.path().unwrap().display().to_string(), bytes));
    }
    assert_eq!(contents.len(), 3);
    assert_eq!(contents[0], ("a".to_owned(), b"before".to_vec()));
    assert_eq!(contents[1].0, "big");
    assert!(contents[1].1 == big, "the large file's bytes differ");
    assert_eq!(contents[2], ("c".to_owned(), b"after".to_vec()));
}
