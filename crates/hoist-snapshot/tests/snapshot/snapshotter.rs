//! Snapshotters: the copy backend end to end, the overlay backend's logic with a recording
//! fake [`Mounter`], and real overlay mounts when running as root.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::support::tar_names;
use hoist_snapshot::{
    apply_layer, diff_to_tar, ActiveSnapshot, AnySnapshotter, ApplyOptions, CopySnapshotter,
    DiffSource, Error, Mount, Mounter, OverlayMount, OverlaySnapshotter, SnapshotId, Snapshotter,
};

fn layer_of(s: &dyn Snapshotter, id: &SnapshotId) -> Vec<u8> {
    let mut out = Vec::new();
    s.diff(id, &mut out).unwrap();
    out
}

/// Base snapshot: a/1, a/2, keep, d/x. Child: removes a/1, rewrites keep, replaces d.
fn exercise(s: &dyn Snapshotter) -> (SnapshotId, SnapshotId, PathBuf) {
    let base = s.prepare("base", &[]).unwrap();
    let p = base.path();
    std::fs::create_dir_all(p.join("a")).unwrap();
    std::fs::write(p.join("a/1"), b"1").unwrap();
    std::fs::write(p.join("a/2"), b"2").unwrap();
    std::fs::write(p.join("keep"), b"old").unwrap();
    std::fs::create_dir(p.join("d")).unwrap();
    std::fs::write(p.join("d/x"), b"x").unwrap();
    let id1 = s.commit("base").unwrap();
    assert!(matches!(s.commit("base"), Err(Error::NotFound { .. })));

    let child = s.prepare("child", std::slice::from_ref(&id1)).unwrap();
    let p = child.path();
    assert_eq!(std::fs::read(p.join("a/2")).unwrap(), b"2");
    std::fs::remove_file(p.join("a/1")).unwrap();
    std::fs::write(p.join("keep"), b"new").unwrap();
    std::fs::remove_dir_all(p.join("d")).unwrap();
    std::fs::create_dir(p.join("d")).unwrap();
    std::fs::write(p.join("d/y"), b"y").unwrap();
    let id2 = s.commit("child").unwrap();
    assert_eq!(s.parents(&id2).unwrap(), vec![id1.clone()]);

    let view = s.mount_view("look", std::slice::from_ref(&id2)).unwrap();
    let v = view.path().to_path_buf();
    (id1, id2, v)
}

fn check_tree(v: &Path) {
    assert!(!v.join("a/1").exists());
    assert_eq!(std::fs::read(v.join("a/2")).unwrap(), b"2");
    assert_eq!(std::fs::read(v.join("keep")).unwrap(), b"new");
    assert!(!v.join("d/x").exists());
    assert_eq!(std::fs::read(v.join("d/y")).unwrap(), b"y");
}

/// Applying the layers of `ids` in order onto an empty dir gives the same tree as `view`:
/// both trees written as full layers are byte-identical (layers keep whole-second mtimes,
/// as moby and BuildKit do, so the trees themselves differ below the second).
fn check_layers_rebuild(s: &dyn Snapshotter, ids: &[SnapshotId], view: &Path) {
    let out = tempfile::tempdir().unwrap();
    for id in ids {
        apply_layer(&layer_of(s, id)[..], out.path(), &ApplyOptions::default()).unwrap();
    }
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
    let (rebuilt, expected) = (full(out.path()), full(view));
    assert_eq!(tar_names(&rebuilt), tar_names(&expected));
    assert!(rebuilt == expected, "rebuilt tree differs from the view");
}

#[test]
fn copy_snapshotter_prepare_commit_view_diff_remove() {
    let root = tempfile::tempdir().unwrap();
    let s = CopySnapshotter::open(root.path()).unwrap();
    let (id1, id2, view) = exercise(&s);
    check_tree(&view);
    let names = tar_names(&layer_of(&s, &id2));
    assert_eq!(
        names,
        ["a/", "a/.wh.1", "d/", "d/.wh..wh..opq", "d/y", "keep"]
    );
    check_layers_rebuild(&s, &[id1.clone(), id2.clone()], &view);

    assert!(matches!(
        s.prepare("look", &[]),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.prepare("../x", &[]),
        Err(Error::InvalidKey { .. })
    ));
    let missing = SnapshotId::parse("999").unwrap();
    assert!(matches!(
        s.prepare("k", &[missing]),
        Err(Error::NotFound { .. })
    ));
    let err = s.remove_committed(&id1).unwrap_err();
    assert!(err.to_string().contains("parent of snapshot"), "{err}");
    s.remove("look").unwrap();
    s.remove_committed(&id2).unwrap();
    s.remove_committed(&id1).unwrap();
    assert!(support::listing(&root.path().join("committed")).is_empty());
    assert!(support::listing(&root.path().join("active")).is_empty());
}

#[test]
fn copy_snapshotter_stacks_several_parents_bottom_first() {
    let root = tempfile::tempdir().unwrap();
    let s = CopySnapshotter::open(root.path()).unwrap();
    let a = s.prepare("a", &[]).unwrap();
    std::fs::write(a.path().join("f"), b"from a").unwrap();
    std::fs::write(a.path().join("only-a"), b"").unwrap();
    let a = s.commit("a").unwrap();
    let b = s.prepare("b", &[]).unwrap();
    std::fs::write(b.path().join("f"), b"from b").unwrap();
    let b = s.commit("b").unwrap();
    let m = s.prepare("m", &[a.clone(), b.clone()]).unwrap();
    assert_eq!(std::fs::read(m.path().join("f")).unwrap(), b"from b");
    assert!(m.path().join("only-a").exists());
    std::fs::write(m.path().join("g"), b"").unwrap();
    let m = s.commit("m").unwrap();
    assert_eq!(tar_names(&layer_of(&s, &m)), ["g"]);
}

#[test]
fn views_are_removed_when_dropped_even_when_a_later_view_fails() {
    let root = tempfile::tempdir().unwrap();
    let s = AnySnapshotter::Copy(CopySnapshotter::open(root.path()).unwrap());
    s.prepare("base", &[]).unwrap();
    let base = s.commit("base").unwrap();
    let missing = SnapshotId::parse("999").unwrap();
    // Views made in a loop whose last one fails: the `?` drops the earlier ones.
    let views = |parents: &[SnapshotId]| -> hoist_snapshot::Result<Vec<_>> {
        let mut views = Vec::new();
        for (i, parent) in parents.iter().enumerate() {
            views.push(s.view(&format!("v{i}"), std::slice::from_ref(parent))?);
        }
        Ok(views)
    };
    let err = views(&[base.clone(), base.clone(), missing]).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(s.active().unwrap(), Vec::<String>::new());

    let view = s.view("kept", std::slice::from_ref(&base)).unwrap();
    assert_eq!(view.key(), "kept");
    assert!(view.path().is_dir());
    assert_eq!(s.active().unwrap(), ["kept"]);
    drop(view);
    assert_eq!(s.active().unwrap(), Vec::<String>::new());

    // `release` reports what drop would swallow.
    let view = s.view("gone", std::slice::from_ref(&base)).unwrap();
    s.remove("gone").unwrap();
    assert!(matches!(view.release(), Err(Error::NotFound { .. })));
    s.remove_committed(&base).unwrap();
}

/// Records mount calls instead of making them.
#[derive(Debug, Default, Clone)]
struct FakeMounter {
    calls: Arc<Mutex<Vec<String>>>,
}

impl Mounter for FakeMounter {
    fn mount_overlay(&self, overlay: &OverlayMount, target: &Path) -> hoist_snapshot::Result<()> {
        let data = overlay.options()?;
        self.calls
            .lock()
            .unwrap()
            .push(format!("mount {} {data}", target.display()));
        Ok(())
    }
    fn unmount(&self, target: &Path) -> hoist_snapshot::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("unmount {}", target.display()));
        Ok(())
    }
}

#[test]
fn overlay_logic_builds_lowerdir_chains_and_unmounts_on_commit() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let fake = FakeMounter::default();
    let s = OverlaySnapshotter::open(root.path(), Box::new(fake.clone())).unwrap();

    // No parents: a plain directory, no mount.
    let base = s.prepare("base", &[]).unwrap();
    assert_eq!(base, Mount::Dir(root.path().join("active/base/upper")));
    std::fs::write(base.path().join("f"), b"").unwrap();
    let id1 = s.commit("base").unwrap();
    assert!(root.path().join(format!("committed/{id1}/fs/f")).exists());
    assert!(fake.calls.lock().unwrap().is_empty());

    let child = s.prepare("child", std::slice::from_ref(&id1)).unwrap();
    assert_eq!(child.path(), root.path().join("active/child/merged"));
    let id2 = s.commit("child").unwrap();
    let other = s.prepare("other", &[]).unwrap();
    drop(other);
    let id3 = s.commit("other").unwrap();

    // Chains are expanded top-most first; several parents stack bottom-first.
    s.prepare("top", &[id3.clone(), id2.clone()]).unwrap();
    s.mount_view("v", std::slice::from_ref(&id2)).unwrap();
    s.remove("v").unwrap();
    s.remove("top").unwrap();
    let single = s.mount_view("single", std::slice::from_ref(&id1)).unwrap();
    assert_eq!(
        single,
        Mount::Dir(root.path().join(format!("committed/{id1}/fs")))
    );

    let calls = fake.calls.lock().unwrap().clone();
    let fs = |id: &SnapshotId| format!("{r}/committed/{id}/fs");
    assert_eq!(
        calls,
        vec![
            format!(
                "mount {r}/active/child/merged lowerdir={},upperdir={r}/active/child/upper,workdir={r}/active/child/work,index=off,redirect_dir=off,metacopy=off",
                fs(&id1)
            ),
            format!("unmount {r}/active/child/merged"),
            format!(
                "mount {r}/active/top/merged lowerdir={}:{}:{},upperdir={r}/active/top/upper,workdir={r}/active/top/work,index=off,redirect_dir=off,metacopy=off",
                fs(&id2),
                fs(&id1),
                fs(&id3)
            ),
            format!("mount {r}/active/v/merged lowerdir={}:{}", fs(&id2), fs(&id1)),
            format!("unmount {r}/active/v/merged"),
            format!("unmount {r}/active/top/merged"),
        ]
    );
    assert!(matches!(s.commit("single"), Err(Error::Unsupported(_))));
}

#[test]
fn real_overlay_mounts_as_root() {
    if !support::is_root() {
        eprintln!("skipping real_overlay_mounts_as_root: mounting overlayfs needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let any = AnySnapshotter::probe(root.path()).unwrap();
    if any.name() != "overlay" {
        eprintln!("skipping real_overlay_mounts_as_root: overlayfs does not mount here (probe chose copy)");
        return;
    }
    let (id1, id2, view) = exercise(&any);
    check_tree(&view);
    let names = tar_names(&layer_of(&any, &id2));
    // overlayfs copies up the parents of what changed and marks a recreated dir opaque.
    assert_eq!(
        names,
        ["a/", "a/.wh.1", "d/", "d/.wh..wh..opq", "d/y", "keep"]
    );
    check_layers_rebuild(&any, &[id1.clone(), id2.clone()], &view);
    any.remove("look").unwrap();
    any.remove_committed(&id2).unwrap();
    any.remove_committed(&id1).unwrap();
    // Nothing is left mounted under the root.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.path().display().to_string()),
        "{mounts}"
    );
}

#[test]
fn probe_falls_back_to_copy_when_overlay_cannot_mount() {
    #[derive(Debug)]
    struct Refuses;
    impl Mounter for Refuses {
        fn mount_overlay(&self, _: &OverlayMount, target: &Path) -> hoist_snapshot::Result<()> {
            Err(Error::Mount {
                action: "mount overlay on",
                target: target.to_path_buf(),
                source: std::io::Error::from_raw_os_error(19),
            })
        }
        fn unmount(&self, _: &Path) -> hoist_snapshot::Result<()> {
            Ok(())
        }
    }
    let root = tempfile::tempdir().unwrap();
    assert!(!OverlaySnapshotter::supported(root.path(), &Refuses));
    assert!(
        support::listing(root.path()).is_empty(),
        "probe left files behind"
    );
}

#[test]
fn layers_unpack_into_committed_snapshots() {
    use hoist_snapshot::{apply_layer_to_snapshot, write_layer, LayerOptions};
    // Two layers made from trees: base, then a change with a whiteout.
    let trees = tempfile::tempdir().unwrap();
    let (t1, t2) = (trees.path().join("1"), trees.path().join("2"));
    std::fs::create_dir_all(t1.join("etc")).unwrap();
    std::fs::write(t1.join("etc/a"), b"a").unwrap();
    std::fs::write(t1.join("etc/b"), b"b").unwrap();
    hoist_snapshot::copy_tree(&t1, &t2).unwrap();
    std::fs::remove_file(t2.join("etc/a")).unwrap();
    std::fs::write(t2.join("etc/c"), b"c").unwrap();
    let (l1, layer1, _) = write_layer(
        DiffSource::Trees {
            lower: None,
            upper: &t1,
        },
        Vec::new(),
        LayerOptions::default(),
    )
    .unwrap();
    let (l2, _, stats) = write_layer(
        DiffSource::Trees {
            lower: Some(&t1),
            upper: &t2,
        },
        Vec::new(),
        LayerOptions::default(),
    )
    .unwrap();
    assert_eq!((stats.added, stats.deleted), (2, 1));
    assert_eq!(layer1.descriptor.size, l1.len() as u64);

    let root = tempfile::tempdir().unwrap();
    let copy = CopySnapshotter::open(&root.path().join("copy")).unwrap();
    let mut backends: Vec<Box<dyn Snapshotter>> = vec![Box::new(copy)];
    if support::is_root() {
        let any = AnySnapshotter::probe(&root.path().join("any")).unwrap();
        eprintln!("also checking the {} snapshotter", any.name());
        backends.push(Box::new(any));
    }
    for s in &backends {
        let opts = ApplyOptions::default();
        let (id1, _) = apply_layer_to_snapshot(s.as_ref(), "l1", &[], &l1[..], &opts).unwrap();
        let (id2, _) =
            apply_layer_to_snapshot(s.as_ref(), "l2", std::slice::from_ref(&id1), &l2[..], &opts)
                .unwrap();
        let view = ActiveSnapshot::view(s.as_ref(), "v", std::slice::from_ref(&id2)).unwrap();
        let got = support::listing(view.path());
        assert_eq!(
            got,
            [Path::new("etc"), Path::new("etc/b"), Path::new("etc/c")]
        );
        view.release().unwrap();
        // A broken layer leaves no snapshot behind.
        let err =
            apply_layer_to_snapshot(s.as_ref(), "bad", &[id2], &b"\x1f\x8bnot gzip"[..], &opts)
                .unwrap_err();
        assert!(matches!(err, Error::ReadLayer { .. }), "{err}");
        assert!(matches!(s.remove("bad"), Err(Error::NotFound { .. })));
    }
}

#[test]
fn failed_overlay_mount_leaves_no_snapshot_and_stale_mounts_remove() {
    /// Fails the first mount, then says "not mounted" to every unmount.
    #[derive(Debug, Default)]
    struct Flaky {
        mounts: Mutex<u32>,
    }
    impl Mounter for Flaky {
        fn mount_overlay(&self, _: &OverlayMount, target: &Path) -> hoist_snapshot::Result<()> {
            let mut n = self.mounts.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return Err(Error::Mount {
                    action: "mount overlay on",
                    target: target.to_path_buf(),
                    source: std::io::Error::from_raw_os_error(1),
                });
            }
            Ok(())
        }
        fn unmount(&self, target: &Path) -> hoist_snapshot::Result<()> {
            Err(Error::Mount {
                action: "unmount",
                target: target.to_path_buf(),
                source: std::io::Error::from_raw_os_error(22),
            })
        }
    }
    let root = tempfile::tempdir().unwrap();
    let s = OverlaySnapshotter::open(root.path(), Box::new(Flaky::default())).unwrap();
    s.prepare("base", &[]).unwrap();
    let base = s.commit("base").unwrap();
    let err = s.prepare("k", std::slice::from_ref(&base)).unwrap_err();
    assert!(
        err.to_string().contains("failed to mount overlay on"),
        "{err}"
    );
    assert!(!root.path().join("active/k").exists());
    // The key is free again; a snapshot whose overlay vanished still removes.
    s.prepare("k", std::slice::from_ref(&base)).unwrap();
    s.remove("k").unwrap();
    assert!(!root.path().join("active/k").exists());
}

#[test]
fn orphaned_active_snapshots_are_removed_and_live_ones_kept() {
    let root = tempfile::tempdir().unwrap();
    // Overlay (mounted on the host) when running as root, copy otherwise.
    let live = AnySnapshotter::probe(root.path()).unwrap();
    let base = {
        let mount = live.prepare("base", &[]).unwrap();
        std::fs::write(mount.path().join("f"), "base").unwrap();
        live.commit("base").unwrap()
    };
    let held = live.prepare("held", std::slice::from_ref(&base)).unwrap();
    // A process that dies with a prepared snapshot: its leases go with it, its mount stays.
    let dead = AnySnapshotter::probe(root.path()).unwrap();
    let orphan = dead.prepare("orphan", std::slice::from_ref(&base)).unwrap();
    let orphan_path = orphan.path().to_path_buf();
    drop(dead);
    let mounted = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sweeper = AnySnapshotter::probe(root.path()).unwrap();
    let report = sweeper.remove_orphans().unwrap();
    assert_eq!(report.removed, ["orphan"], "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(!mounted().contains(&orphan_path.display().to_string()));
    assert_eq!(
        std::fs::read_to_string(held.path().join("f")).unwrap(),
        "base"
    );
    assert_eq!(sweeper.active().unwrap(), ["held"]);
    live.remove("held").unwrap();
    assert!(sweeper.remove_orphans().unwrap().removed.is_empty());
}
