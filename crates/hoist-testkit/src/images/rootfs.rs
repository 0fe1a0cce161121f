//! A busybox root filesystem from Debian's `busybox-static` package: the static binary, a
//! symlink per applet, and the users and groups Docker's `busybox` image has (plus `app`).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use hoist_oci::Platform;

use crate::error::{Result, TestkitError};

/// The environment variable naming the directory of downloaded `busybox-static` .debs.
pub const DEBS_ENV: &str = "HOIST_TEST_DEBS";

/// Where `scripts/install-deps.sh` downloads the .debs unless [`DEBS_ENV`] says otherwise.
pub const DEFAULT_DEBS_DIR: &str = "/var/cache/hoist-test/debs";

/// The uid and gid of the `app` user of the rootfs (home `/home/app`).
pub const APP_UID: u32 = 1000;

/// `/etc/passwd`: Docker's busybox image's users, then `app`.
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
bin:x:2:2:bin:/bin:/bin/false\n\
sys:x:3:3:sys:/dev:/bin/false\n\
sync:x:4:100:sync:/bin:/bin/sync\n\
mail:x:8:8:mail:/var/spool/mail:/bin/false\n\
www-data:x:33:33:www-data:/var/www:/bin/false\n\
operator:x:37:37:Operator:/var:/bin/false\n\
nobody:x:65534:65534:nobody:/home:/bin/false\n\
app:x:1000:1000:app:/home/app:/bin/sh\n";

/// `/etc/group`: Docker's busybox image's groups (root is in `wheel`, gid 65534 is `nobody`
/// first), then `nogroup` (also 65534, for Debian habits) and `app`; `app` is in `staff`.
pub const GROUP: &str = "root:x:0:\n\
daemon:x:1:\n\
bin:x:2:\n\
sys:x:3:\n\
adm:x:4:\n\
tty:x:5:\n\
disk:x:6:\n\
lp:x:7:\n\
mail:x:8:\n\
kmem:x:9:\n\
wheel:x:10:root\n\
cdrom:x:11:\n\
dialout:x:18:\n\
floppy:x:19:\n\
video:x:28:\n\
audio:x:29:\n\
tape:x:32:\n\
www-data:x:33:\n\
operator:x:37:\n\
utmp:x:43:\n\
plugdev:x:46:\n\
staff:x:50:app\n\
lock:x:54:\n\
netdev:x:82:\n\
users:x:100:\n\
nobody:x:65534:\n\
nogroup:x:65534:\n\
app:x:1000:\n";

/// `/bin/adduser` when busybox has no such applet (busybox's flags, in shell).
pub const ADDUSER: &str = include_str!("adduser.sh");

/// `/bin/addgroup` when busybox has no such applet.
pub const ADDGROUP: &str = include_str!("addgroup.sh");

/// An architecture the base images are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// `linux/amd64` (Debian `amd64`).
    Amd64,
    /// `linux/arm64` (Debian `arm64`).
    Arm64,
    /// `linux/arm/v7` (Debian `armhf`).
    Arm,
}

impl Arch {
    /// Every architecture, in the order the index lists them.
    pub const ALL: [Arch; 3] = [Arch::Amd64, Arch::Arm64, Arch::Arm];

    /// Reads `amd64`, `arm64` or `arm` (also Debian's `armhf` and `arm/v7`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "amd64" => Ok(Arch::Amd64),
            "arm64" => Ok(Arch::Arm64),
            "arm" | "armhf" | "arm/v7" => Ok(Arch::Arm),
            other => Err(TestkitError::UnknownArch(other.to_owned())),
        }
    }

    /// The OCI architecture, which is also the per-architecture tag (`busybox:arm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::Arm => "arm",
        }
    }

    /// Debian's name for it.
    pub fn deb_arch(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::Arm => "armhf",
        }
    }

    /// The OCI variant (`v7` for arm).
    pub fn variant(self) -> Option<&'static str> {
        match self {
            Arch::Arm => Some("v7"),
            Arch::Amd64 | Arch::Arm64 => None,
        }
    }

    /// `linux/<arch>[/<variant>]`.
    pub fn platform(self) -> Platform {
        let platform = Platform::new("linux", self.as_str());
        match self.variant() {
            Some(variant) => platform.with_variant(variant),
            None => platform,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The directory holding the downloaded .debs ([`DEBS_ENV`], else [`DEFAULT_DEBS_DIR`]).
pub fn debs_dir() -> PathBuf {
    std::env::var_os(DEBS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DEBS_DIR))
}

/// The `busybox-static_*_<debarch>.deb` for `arch` in [`debs_dir`] (the highest version when
/// there are several), or [`TestkitError::MissingDeb`] saying how to get it.
pub fn busybox_deb(arch: Arch) -> Result<PathBuf> {
    let dir = debs_dir();
    let suffix = format!("_{}.deb", arch.deb_arch());
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| {
                            name.starts_with("busybox-static_") && name.ends_with(&suffix)
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().ok_or_else(|| TestkitError::MissingDeb {
        deb_arch: arch.deb_arch(),
        dir: dir.clone(),
        install: format!(
            "run scripts/install-deps.sh as root, or: {add}mkdir -p {d}; cd {d}; \
             apt-get download busybox-static:{a}",
            add = match arch {
                Arch::Amd64 => String::new(),
                Arch::Arm64 | Arch::Arm => format!(
                    "dpkg --add-architecture {}; apt-get update; ",
                    arch.deb_arch()
                ),
            },
            a = arch.deb_arch(),
            d = dir.display()
        ),
    })
}

/// Makes a busybox root filesystem for `arch` (`amd64`, `arm64` or `arm`) in `dest` (created
/// when absent): `/bin/busybox` from the architecture's `busybox-static` .deb, a symlink in
/// `/bin` for every applet, `/etc/passwd`, `/etc/group` and `/etc/shadow` ([`PASSWD`],
/// [`GROUP`]), `/root` (0700), `/tmp` (1777), `/home/app` (owned by 1000:1000 when run as
/// root) and the empty `/dev`, `/proc`, `/sys`, `/usr`, `/var` Docker's busybox image has.
pub fn busybox_rootfs(arch: &str, dest: &Path) -> Result<()> {
    let arch = Arch::parse(arch)?;
    let deb = busybox_deb(arch)?;
    let scratch = tempfile::Builder::new()
        .prefix("hoist-busybox-deb-")
        .tempdir()
        .map_err(TestkitError::io(
            "create a temporary directory in",
            std::env::temp_dir(),
        ))?;
    let busybox = extract_busybox(&deb, scratch.path())?;
    let applets = applet_names()?;

    for (dir, mode) in [
        ("", 0o755),
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("home/app", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
        ("var/spool", 0o755),
        ("var/spool/mail", 0o755),
        ("var/www", 0o755),
    ] {
        let path = dest.join(dir);
        fs::create_dir_all(&path).map_err(TestkitError::io("create directory", &path))?;
        set_mode(&path, mode)?;
    }
    let target = dest.join("bin/busybox");
    fs::copy(&busybox, &target).map_err(TestkitError::io("copy busybox to", &target))?;
    set_mode(&target, 0o755)?;
    for applet in applets {
        let link = dest.join("bin").join(applet);
        match fs::symlink_metadata(&link) {
            Ok(_) => fs::remove_file(&link).map_err(TestkitError::io("remove", &link))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(TestkitError::io("inspect", &link)(err)),
        }
        symlink("busybox", &link).map_err(TestkitError::io("create symlink", &link))?;
    }
    // Debian builds busybox without adduser/addgroup; Dockerfiles written against Docker's
    // busybox image use them, so shell stand-ins take their place.
    for (name, script) in [("adduser", ADDUSER), ("addgroup", ADDGROUP)] {
        if applets.iter().any(|applet| applet == name) {
            continue;
        }
        let path = dest.join("bin").join(name);
        fs::write(&path, script).map_err(TestkitError::io("write", &path))?;
        set_mode(&path, 0o755)?;
    }
    let shadow: String = PASSWD
        .lines()
        .filter_map(|line| line.split(':').next())
        .map(|user| format!("{user}:*:19000:0:99999:7:::\n"))
        .collect();
    for (file, text, mode) in [
        ("etc/passwd", PASSWD, 0o644),
        ("etc/group", GROUP, 0o644),
        ("etc/shadow", shadow.as_str(), 0o600),
    ] {
        let path = dest.join(file);
        fs::write(&path, text).map_err(TestkitError::io("write", &path))?;
        set_mode(&path, mode)?;
    }
    let home = dest.join("home/app");
    match std::os::unix::fs::chown(&home, Some(APP_UID), Some(APP_UID)) {
        // Not root: the image layer records 1000:1000 for /home/app whatever the disk says.
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {}
        other => other.map_err(TestkitError::io("chown", &home))?,
    }
    Ok(())
}

/// Who owns `relative` (a path inside the rootfs) in the image layer: `home/app` is
/// 1000:1000, everything else root's.
pub(crate) fn owner_in_image(relative: &Path) -> (u64, u64) {
    if relative == Path::new("home/app") {
        (APP_UID.into(), APP_UID.into())
    } else {
        (0, 0)
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(TestkitError::io("set the mode of", path))
}

/// Unpacks `deb` into `scratch` with `dpkg-deb -x` and returns its `bin/busybox`.
fn extract_busybox(deb: &Path, scratch: &Path) -> Result<PathBuf> {
    // dpkg-deb reads the ar archive and its data.tar.xz; doing it by hand would need an xz
    // decoder for one file, and every Debian machine that has the .deb has dpkg-deb.
    let dpkg_deb = crate::find_in_path("dpkg-deb").ok_or(TestkitError::MissingTool {
        tool: "dpkg-deb",
        install: "apt-get install -y dpkg",
    })?;
    run(Command::new(dpkg_deb).arg("-x").arg(deb).arg(scratch))?;
    let busybox = scratch.join("bin/busybox");
    if busybox.is_file() {
        Ok(busybox)
    } else {
        Err(TestkitError::io("find bin/busybox of", deb)(
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the package has no bin/busybox",
            ),
        ))
    }
}

/// Runs `command`; its stdout when it succeeds.
pub(crate) fn run(command: &mut Command) -> Result<Vec<u8>> {
    let line = format!("{command:?}");
    let out = command.output().map_err(|err| TestkitError::Command {
        command: line.clone(),
        status: "not started".to_owned(),
        stderr: err.to_string(),
    })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(TestkitError::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The applet names of busybox (`busybox --list`), asked once per process: of the host's
/// `busybox` when there is one, else of the amd64 package's binary on an x86-64 host. Every
/// architecture's package is built from the same configuration, so one list serves all.
pub fn applet_names() -> Result<&'static [String]> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(names) = NAMES.get() {
        return Ok(names);
    }
    let output = match crate::find_in_path("busybox") {
        Some(host) => run(Command::new(host).arg("--list"))?,
        None if cfg!(target_arch = "x86_64") => {
            let deb = busybox_deb(Arch::Amd64)?;
            let scratch = tempfile::Builder::new()
                .prefix("hoist-busybox-deb-")
                .tempdir()
                .map_err(TestkitError::io(
                    "create a temporary directory in",
                    std::env::temp_dir(),
                ))?;
            let busybox = extract_busybox(&deb, scratch.path())?;
            run(Command::new(busybox).arg("--list"))?
        }
        None => {
            return Err(TestkitError::MissingTool {
                tool: "busybox",
                install: "apt-get install -y busybox-static",
            })
        }
    };
    let names: Vec<String> = String::from_utf8_lossy(&output)
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "busybox" && !name.contains('/'))
        .map(str::to_owned)
        .collect();
    Ok(NAMES.get_or_init(|| names))
}
