//! Hostile layers: nothing may be written outside the extraction root, whatever the tar
//! says. Each test extracts into `<tmp>/root` next to a sentinel directory `<tmp>/outside`
//! and checks that `<tmp>` holds nothing but the two afterwards.

use crate::support;

use std::path::{Path, PathBuf};

use crate::support::{listing, RawTar};
use hoist_snapshot::{apply_layer, ApplyOptions, Error};

struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("root")).unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        Self { tmp }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }
    fn apply(&self, tar: &[u8]) -> hoist_snapshot::Result<hoist_snapshot::ApplyReport> {
        apply_layer(tar, &self.root(), &ApplyOptions::default())
    }
    /// Asserts that outside the root only the sentinel exists, untouched.
    fn assert_outside_untouched(&self) {
        let top: Vec<PathBuf> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(top.len(), 2, "unexpected entries next to root: {top:?}");
        assert_eq!(listing(&self.outside()), vec![PathBuf::from("secret")]);
        assert_eq!(
            std::fs::read(self.outside().join("secret")).unwrap(),
            b"secret"
        );
        let meta = std::fs::metadata(self.outside().join("secret")).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(&meta),
            1,
            "secret was hardlinked"
        );
    }
}

fn rel(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_owned()
}

#[test]
fn dot_dot_names_land_inside_root() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .file("../../etc/passwd", b"root:x:0:0")
        .file("../outside/pwned", b"x")
        .file("a/../../../b", b"y")
        .finish();
    sb.apply(&tar).unwrap();
    assert_eq!(
        std::fs::read(sb.root().join("etc/passwd")).unwrap(),
        b"root:x:0:0"
    );
    assert!(sb.root().join("outside/pwned").is_file());
    assert!(sb.root().join("b").is_file());
    sb.assert_outside_untouched();
}

#[test]
fn absolute_names_land_inside_root() {
    let sb = Sandbox::new();
    let abs = sb.outside().join("pwned");
    let tar = RawTar::new()
        .file(abs.to_str().unwrap(), b"x")
        .file("/etc/shadow", b"z")
        .finish();
    sb.apply(&tar).unwrap();
    assert!(sb.root().join(rel(&abs)).is_file());
    assert!(sb.root().join("etc/shadow").is_file());
    sb.assert_outside_untouched();
}

#[test]
fn symlink_to_slash_then_file_under_it_stays_inside_root() {
    let sb = Sandbox::new();
    let outside = sb.outside();
    let tar = RawTar::new()
        .symlink("rootfs", "/")
        .file(&format!("rootfs/{}/pwned", rel(&outside)), b"x")
        .symlink("escape", outside.to_str().unwrap())
        .file("escape/pwned2", b"x")
        .symlink("up", "../../../../../../..")
        .file(&format!("up/{}/pwned3", rel(&outside)), b"x")
        .finish();
    sb.apply(&tar).unwrap();
    // The symlinks are created as they are written...
    assert_eq!(
        std::fs::read_link(sb.root().join("rootfs")).unwrap(),
        Path::new("/")
    );
    assert_eq!(
        std::fs::read_link(sb.root().join("escape")).unwrap(),
        outside
    );
    // ...but entries under them resolve relative to the root.
    let inside = sb.root().join(rel(&outside));
    for name in ["pwned", "pwned2", "pwned3"] {
        assert!(inside.join(name).is_file(), "{name} not inside root");
    }
    sb.assert_outside_untouched();
}

#[test]
fn symlinked_directory_is_replaced_not_written_through() {
    let sb = Sandbox::new();
    let outside = sb.outside();
    let tar = RawTar::new()
        .symlink("d", outside.to_str().unwrap())
        .dir("d/")
        .file("d/secret", b"overwritten")
        .symlink("f", outside.join("secret").to_str().unwrap())
        .file("f", b"overwritten")
        .finish();
    sb.apply(&tar).unwrap();
    // `d/` as a directory entry replaces the symlink `d` itself.
    assert!(sb.root().join("d").is_dir());
    assert!(!sb.root().join("d").is_symlink());
    assert_eq!(
        std::fs::read(sb.root().join("d/secret")).unwrap(),
        b"overwritten"
    );
    assert!(!sb.root().join("f").is_symlink());
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_to_outside_fails_naming_the_entry() {
    let sb = Sandbox::new();
    let secret = sb.outside().join("secret");
    for target in [
        secret.to_str().unwrap().to_owned(),
        "../outside/secret".to_owned(),
        format!("../../../../../../../../{}", rel(&secret)),
    ] {
        let tar = RawTar::new().hardlink("stolen", &target).finish();
        let err = sb.apply(&tar).unwrap_err();
        assert!(
            matches!(&err, Error::Entry { entry, .. } if entry == "stolen"),
            "{target}: {err}"
        );
        assert!(err.to_string().contains("stolen"), "{err}");
        assert!(!sb.root().join("stolen").exists());
    }
    // Through a symlinked parent, the link target is looked up inside the root too.
    let tar = RawTar::new()
        .symlink("s", "/")
        .hardlink("stolen", &format!("s/{}", rel(&secret)))
        .finish();
    let err = sb.apply(&tar).unwrap_err();
    assert!(err.to_string().contains("not in the layer root"), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_within_root_shares_the_inode() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .file("a", b"data")
        .symlink("s", "/")
        .hardlink("b", "/a")
        .hardlink("c", "s/a")
        .finish();
    sb.apply(&tar).unwrap();
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(sb.root().join(p)).unwrap().ino();
    assert_eq!(ino("a"), ino("b"));
    assert_eq!(ino("a"), ino("c"));
    sb.assert_outside_untouched();
}

#[test]
fn whiteouts_cannot_delete_outside_root() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .file("../.wh.outside", b"")
        .symlink("s", sb.tmp.path().to_str().unwrap())
        .file("s/.wh.outside", b"")
        .file("s/outside/.wh.secret", b"")
        .file("s/outside/.wh..wh..opq", b"")
        .finish();
    sb.apply(&tar).unwrap();
    sb.assert_outside_untouched();
    let err = sb
        .apply(&RawTar::new().file(".wh...", b"").finish())
        .unwrap_err();
    assert!(err.to_string().contains(".wh..."), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn symlink_loop_in_a_parent_is_an_error_naming_the_entry() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"")
        .finish();
    let err = sb.apply(&tar).unwrap_err();
    assert!(err.to_string().contains("layer entry a/x"), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn device_nodes_are_skipped_with_a_note_when_not_allowed() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .char_device("dev/null", 1, 3)
        .file("ok", b"")
        .finish();
    let options = ApplyOptions {
        preserve_ownership: false,
        create_devices: false,
    };
    let report = apply_layer(&tar[..], &sb.root(), &options).unwrap();
    assert!(!sb.root().join("dev/null").exists());
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].entry, "dev/null");
    assert!(report.skipped[0].reason.contains("needs root"));
    assert!(sb.root().join("ok").exists());
}

#[test]
fn device_nodes_are_created_as_root() {
    if !support::is_root() {
        eprintln!("skipping device_nodes_are_created_as_root: needs root to mknod");
        return;
    }
    let sb = Sandbox::new();
    let tar = RawTar::new().char_device("dev/null", 1, 3).finish();
    sb.apply(&tar).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(sb.root().join("dev/null")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), rustix::fs::makedev(1, 3));
}
