//! Which platforms this machine can execute: its native ones plus the foreign architectures
//! the kernel's `binfmt_misc` hands to a QEMU user-mode emulator.
//!
//! - [`BinfmtMisc`]: a `binfmt_misc` mount (normally [`BINFMT_MISC_DIR`]): read its
//!   [`Handler`]s, [`BinfmtMisc::register`] a [`Registration`], [`BinfmtMisc::unregister`].
//! - [`Emulator`] / [`EMULATORS`]: QEMU's architectures, the platforms each runs and the ELF
//!   magic/mask that selects its binaries (the fallback when Debian's
//!   `/usr/lib/binfmt.d/qemu-*.conf` is absent).
//! - [`ExecSupport`]: native platforms + enabled handlers; [`ExecSupport::check`] says how
//!   a target platform's binaries would run ([`Execution`]).
//!
//! The kernel side is a handful of text files, so everything takes the directory as a
//! parameter and is tested against a temporary one.

use std::fmt;
use std::path::{Path, PathBuf};

use hoist_oci::Platform;

use crate::error::{Error, Result};

/// Where the kernel mounts `binfmt_misc`.
pub const BINFMT_MISC_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// Where Debian's `qemu-user-static` puts its registration lines.
pub const BINFMT_CONF_DIR: &str = "/usr/lib/binfmt.d";
/// The Debian package that provides the emulators.
pub const QEMU_PACKAGE: &str = "qemu-user-static";

/// One QEMU user-mode architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emulator {
    /// QEMU's name (`aarch64`): the handler is `qemu-<qemu>`.
    pub qemu: &'static str,
    /// The platforms it executes, first the preferred one (`linux/arm/v7`, `linux/arm/v6`).
    pub platforms: &'static [&'static str],
    /// The ELF header bytes that select its binaries, as hex.
    magic: &'static str,
    /// Which bits of [`Emulator::magic`] count, as hex.
    mask: &'static str,
}

// ELF magic and masks: the first 20 header bytes (ident, e_type, e_machine), with the
// OS/ABI byte and the low bit of e_type (executable or shared object) ignored.
const M64LE: &str = "ffffffffffffff00fffffffffffffffffeffffff";
const M64BE: &str = "ffffffffffffff00fffffffffffffffffffeffff";

/// The architectures `hoist binfmt` knows, by QEMU name.
pub const EMULATORS: &[Emulator] = &[
    Emulator {
        qemu: "x86_64",
        platforms: &["linux/amd64"],
        magic: "7f454c4602010100000000000000000002003e00",
        mask: "fffffffffffefe00fffffffffffffffffeffffff",
    },
    Emulator {
        qemu: "i386",
        platforms: &["linux/386"],
        magic: "7f454c4601010100000000000000000002000300",
        mask: "fffffffffffefe00fffffffffffffffffeffffff",
    },
    Emulator {
        qemu: "aarch64",
        platforms: &["linux/arm64"],
        magic: "7f454c460201010000000000000000000200b700",
        mask: M64LE,
    },
    Emulator {
        qemu: "arm",
        platforms: &["linux/arm/v7", "linux/arm/v6"],
        magic: "7f454c4601010100000000000000000002002800",
        mask: M64LE,
    },
    Emulator {
        qemu: "riscv64",
        platforms: &["linux/riscv64"],
        magic: "7f454c460201010000000000000000000200f300",
        mask: M64LE,
    },
    Emulator {
        qemu: "ppc64le",
        platforms: &["linux/ppc64le"],
        magic: "7f454c4602010100000000000000000002001500",
        mask: "ffffffffffffff00fffffffffffffffffeffff00",
    },
    Emulator {
        qemu: "ppc64",
        platforms: &["linux/ppc64"],
        magic: "7f454c4602020100000000000000000000020015",
        mask: M64BE,
    },
    Emulator {
        qemu: "s390x",
        platforms: &["linux/s390x"],
        magic: "7f454c4602020100000000000000000000020016",
        mask: M64BE,
    },
    Emulator {
        qemu: "mips64el",
        platforms: &["linux/mips64le"],
        magic: "7f454c4602010100000000000000000002000800",
        mask: M64LE,
    },
    Emulator {
        qemu: "mips64",
        platforms: &["linux/mips64"],
        magic: "7f454c4602020100000000000000000000020008",
        mask: M64BE,
    },
    Emulator {
        qemu: "loongarch64",
        platforms: &["linux/loong64"],
        magic: "7f454c4602010100000000000000000002000201",
        mask: M64LE,
    },
];

impl Emulator {
    /// The emulator a user named: `all` is not handled here; accepted are QEMU's name
    /// (`aarch64`), the platform's architecture (`arm64`) or a whole platform (`linux/arm64`).
    pub fn find(name: &str) -> Option<&'static Emulator> {
        let name = name.trim().to_ascii_lowercase();
        let arch = name.strip_prefix("linux/").unwrap_or(&name);
        let arch = arch.split('/').next().unwrap_or(arch);
        EMULATORS.iter().find(|e| {
            e.qemu == arch
                || e.platforms
                    .iter()
                    .any(|p| p.split('/').nth(1) == Some(arch))
        })
    }

    /// The emulator a handler runs, from its name (`qemu-aarch64`) or its interpreter
    /// (`/usr/libexec/qemu-binfmt/aarch64-binfmt-P`, `/usr/bin/qemu-aarch64-static`).
    pub fn of_handler(handler: &Handler) -> Option<&'static Emulator> {
        let by_name = handler.name.strip_prefix("qemu-").and_then(by_qemu);
        by_name.or_else(|| {
            let file = handler.interpreter.file_name()?.to_str()?;
            let stem = file
                .strip_suffix("-binfmt-P")
                .or_else(|| file.strip_suffix("-static"))
                .unwrap_or(file);
            by_qemu(stem.strip_prefix("qemu-").unwrap_or(stem))
        })
    }

    /// The handler name it registers as.
    pub fn handler_name(&self) -> String {
        format!("qemu-{}", self.qemu)
    }

    /// The platforms it executes, parsed.
    pub fn platform_list(&self) -> Vec<Platform> {
        self.platforms
            .iter()
            .filter_map(|p| Platform::parse(p).ok())
            .collect()
    }

    /// Whether binaries of `platform` are its (os and architecture; any variant).
    pub fn runs(&self, platform: &Platform) -> bool {
        let platform = platform.normalize();
        self.platform_list()
            .iter()
            .any(|p| p.os == platform.os && p.architecture == platform.architecture)
    }

    /// How to register it from the interpreters installed here: Debian's
    /// `<conf_dir>/qemu-<arch>.conf` when present (its interpreter must exist), otherwise
    /// this table's magic with `/usr/libexec/qemu-binfmt/<arch>-binfmt-P` or
    /// `/usr/bin/qemu-<arch>-static`. The `F` flag is always set, so the interpreter is
    /// opened once at registration and works inside any container's root file system.
    pub fn registration(&self, conf_dir: &Path) -> Result<Registration> {
        let conf = conf_dir.join(format!("{}.conf", self.handler_name()));
        let mut tried = Vec::new();
        match std::fs::read_to_string(&conf) {
            Ok(text) => {
                let line = text
                    .lines()
                    .map(str::trim)
                    .find(|l| l.starts_with(':'))
                    .ok_or_else(|| Error::Binfmt {
                        path: conf.clone(),
                        reason: "no registration line".into(),
                    })?;
                let registration = Registration::parse(line).map_err(|reason| Error::Binfmt {
                    path: conf.clone(),
                    reason,
                })?;
                if registration.interpreter.exists() {
                    return Ok(registration.with_flag('F'));
                }
                tried.push(registration.interpreter);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &conf, e)),
        }
        let candidates = [
            (
                PathBuf::from(format!("/usr/libexec/qemu-binfmt/{}-binfmt-P", self.qemu)),
                "POF",
            ),
            (
                PathBuf::from(format!("/usr/bin/qemu-{}-static", self.qemu)),
                "F",
            ),
        ];
        for (interpreter, flags) in candidates {
            if interpreter.exists() {
                return Ok(Registration {
                    name: self.handler_name(),
                    offset: 0,
                    magic: escape_hex(self.magic),
                    mask: escape_hex(self.mask),
                    interpreter,
                    flags: flags.to_owned(),
                });
            }
            tried.push(interpreter);
        }
        Err(Error::EmulatorMissing {
            arch: self.qemu.to_owned(),
            tried,
        })
    }
}

fn by_qemu(name: &str) -> Option<&'static Emulator> {
    EMULATORS.iter().find(|e| e.qemu == name)
}

/// `"7f45"` as the kernel's `\x7f\x45`.
fn escape_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| format!("\\x{}", String::from_utf8_lossy(pair)))
        .collect()
}

/// One `binfmt_misc` entry as the kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// The entry's file name (`qemu-aarch64`).
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    /// The flags letters (`POF`); `F` means the interpreter was opened at registration.
    pub flags: String,
    pub offset: u64,
    /// Hex, as the kernel prints it (`magic` lines), or the extension for `E` entries.
    pub magic: String,
    pub mask: Option<String>,
}

impl Handler {
    /// Parses the text of `<binfmt_misc>/<name>`.
    pub fn parse(name: &str, text: &str) -> std::result::Result<Handler, String> {
        let mut handler = Handler {
            name: name.to_owned(),
            enabled: false,
            interpreter: PathBuf::new(),
            flags: String::new(),
            offset: 0,
            magic: String::new(),
            mask: None,
        };
        let mut seen_interpreter = false;
        for line in text.lines() {
            let line = line.trim();
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => handler.enabled = true,
                "disabled" => handler.enabled = false,
                "interpreter" => {
                    handler.interpreter = PathBuf::from(value);
                    seen_interpreter = true;
                }
                "flags:" => handler.flags = value.trim().to_owned(),
                "offset" => {
                    handler.offset = value
                        .trim()
                        .parse()
                        .map_err(|_| format!("invalid offset {value:?}"))?;
                }
                "magic" | "extension" => handler.magic = value.trim().to_owned(),
                "mask" => handler.mask = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        if !seen_interpreter {
            return Err("no interpreter line".into());
        }
        Ok(handler)
    }

    /// The emulator it runs, when it is a QEMU one.
    pub fn emulator(&self) -> Option<&'static Emulator> {
        Emulator::of_handler(self)
    }
}

/// A line to write to `<binfmt_misc>/register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub offset: u64,
    /// As the kernel reads it: literal bytes or `\xNN` escapes.
    pub magic: String,
    pub mask: String,
    pub interpreter: PathBuf,
    pub flags: String,
}

impl Registration {
    /// Parses `:name:M:offset:magic:mask:interpreter:flags` (the `binfmt.d` format).
    pub fn parse(line: &str) -> std::result::Result<Registration, String> {
        let line = line.trim();
        let body = line
            .strip_prefix(':')
            .ok_or_else(|| format!("registration {line:?} does not start with ':'"))?;
        let fields: Vec<&str> = body.split(':').collect();
        let [name, kind, offset, magic, mask, interpreter, flags] = fields[..] else {
            return Err(format!(
                "registration {line:?} has {} fields, expected 7",
                fields.len()
            ));
        };
        if kind != "M" {
            return Err(format!(
                "registration {line:?} is of type {kind:?}, only M (magic) is supported"
            ));
        }
        Ok(Registration {
            name: name.to_owned(),
            offset: if offset.is_empty() {
                0
            } else {
                offset
                    .parse()
                    .map_err(|_| format!("invalid offset {offset:?} in {line:?}"))?
            },
            magic: magic.to_owned(),
            mask: mask.to_owned(),
            interpreter: PathBuf::from(interpreter),
            flags: flags.to_owned(),
        })
    }

    /// The same registration with `flag` among its flags.
    pub fn with_flag(mut self, flag: char) -> Registration {
        if !self.flags.contains(flag) {
            self.flags.push(flag);
        }
        self
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            ":{}:M:{}:{}:{}:{}:{}",
            self.name,
            self.offset,
            self.magic,
            self.mask,
            self.interpreter.display(),
            self.flags
        )
    }
}

/// A `binfmt_misc` file system.
#[derive(Debug, Clone)]
pub struct BinfmtMisc {
    dir: PathBuf,
}

impl BinfmtMisc {
    /// The one the kernel uses, at [`BINFMT_MISC_DIR`].
    pub fn system() -> BinfmtMisc {
        BinfmtMisc::new(BINFMT_MISC_DIR)
    }

    /// The one at `dir` (a temporary directory in tests).
    pub fn new(dir: impl Into<PathBuf>) -> BinfmtMisc {
        BinfmtMisc { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether it is mounted (its `register` file exists).
    pub fn is_mounted(&self) -> bool {
        self.dir.join("register").exists()
    }

    /// Mounts it when it is not (needs root).
    pub fn mount(&self) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        nix::mount::mount(
            Some("binfmt_misc"),
            &self.dir,
            Some("binfmt_misc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| Error::io("mount binfmt_misc on", &self.dir, e.into()))
    }

    /// Whether the kernel runs handlers at all (`status` says `enabled`); false when absent.
    pub fn enabled(&self) -> bool {
        std::fs::read_to_string(self.dir.join("status"))
            .map(|s| s.trim() == "enabled")
            .unwrap_or(false)
    }

    /// Every entry, sorted by name; none when it is not mounted.
    pub fn handlers(&self) -> Result<Vec<Handler>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &self.dir, e)),
        };
        let mut handlers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                continue;
            }
            let path = entry.path();
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                // Removed while listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            let handler =
                Handler::parse(&name, &text).map_err(|reason| Error::Binfmt { path, reason })?;
            handlers.push(handler);
        }
        handlers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(handlers)
    }

    /// Writes `registration` to `register`.
    pub fn register(&self, registration: &Registration) -> Result<()> {
        let path = self.dir.join("register");
        std::fs::write(&path, registration.to_string()).map_err(|e| Error::Binfmt {
            path,
            reason: format!("cannot register {}: {e}", registration.name),
        })
    }

    /// Removes the entry `name` (writes `-1` to it).
    pub fn unregister(&self, name: &str) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, "-1").map_err(|e| Error::io("unregister", &path, e))
    }
}

/// How a platform's binaries run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// Directly on this CPU.
    Native,
    /// Through an enabled `binfmt_misc` handler.
    Emulated {
        /// The handler's name (`qemu-aarch64`).
        handler: String,
        interpreter: PathBuf,
    },
    /// Not at all.
    Unavailable,
}

/// What this machine can execute.
#[derive(Debug, Clone, Default)]
pub struct ExecSupport {
    /// The platforms the CPU runs itself.
    pub native: Vec<Platform>,
    /// The enabled handlers (none when `binfmt_misc` is disabled as a whole).
    pub handlers: Vec<Handler>,
}

impl ExecSupport {
    /// This machine: [`native_platforms`] and the handlers of [`BinfmtMisc::system`].
    pub fn detect() -> Result<ExecSupport> {
        ExecSupport::read(&BinfmtMisc::system(), native_platforms())
    }

    /// The enabled handlers of `binfmt` next to `native`.
    pub fn read(binfmt: &BinfmtMisc, native: Vec<Platform>) -> Result<ExecSupport> {
        let handlers = if binfmt.enabled() {
            binfmt
                .handlers()?
                .into_iter()
                .filter(|h| h.enabled)
                .collect()
        } else {
            Vec::new()
        };
        Ok(ExecSupport { native, handlers })
    }

    /// How binaries of `platform` would run.
    pub fn check(&self, platform: &Platform) -> Execution {
        let wanted = platform.normalize();
        if self
            .native
            .iter()
            .any(|p| p.os == wanted.os && p.architecture == wanted.architecture)
        {
            return Execution::Native;
        }
        for handler in &self.handlers {
            if handler.emulator().is_some_and(|e| e.runs(&wanted)) {
                return Execution::Emulated {
                    handler: handler.name.clone(),
                    interpreter: handler.interpreter.clone(),
                };
            }
        }
        Execution::Unavailable
    }

    /// Every platform that runs here, native first, then emulated ones in handler order.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut out = self.native.clone();
        for handler in &self.handlers {
            for platform in handler
                .emulator()
                .map(Emulator::platform_list)
                .unwrap_or_default()
            {
                if !out.contains(&platform) {
                    out.push(platform);
                }
            }
        }
        out
    }
}

/// The platforms this CPU runs without emulation: the host's, and on x86-64 `linux/386`
/// when the kernel has 32-bit support (it then offers `/proc/sys/abi/vsyscall32`).
pub fn native_platforms() -> Vec<Platform> {
    let host = Platform::host();
    let mut out = vec![host.clone()];
    if host.os == "linux"
        && host.architecture == "amd64"
        && Path::new("/proc/sys/abi/vsyscall32").exists()
    {
        out.push(Platform::new("linux", "386"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn fake_binfmt(entries: &[(&str, &str)], status: &str) -> (tempfile::TempDir, BinfmtMisc) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), status).unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        for (name, text) in entries {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let binfmt = BinfmtMisc::new(dir.path());
        (dir, binfmt)
    }

    fn amd64() -> Vec<Platform> {
        vec![
            Platform::new("linux", "amd64"),
            Platform::new("linux", "386"),
        ]
    }

    #[test]
    fn handler_parses_kernel_text() {
        let h = Handler::parse("qemu-aarch64", AARCH64).unwrap();
        assert!(h.enabled);
        assert_eq!(h.flags, "POF");
        assert_eq!(h.offset, 0);
        assert_eq!(h.mask.as_deref(), Some(M64LE));
        assert_eq!(h.emulator().map(|e| e.qemu), Some("aarch64"));
        let disabled = Handler::parse("x", "disabled\ninterpreter /usr/bin/qemu-s390x-static\n");
        let disabled = disabled.unwrap();
        assert!(!disabled.enabled);
        assert_eq!(disabled.emulator().map(|e| e.qemu), Some("s390x"));
        assert!(Handler::parse("x", "enabled\n").is_err());
    }

    #[test]
    fn emulator_names_map_to_platforms() {
        for (name, qemu) in [
            ("arm64", "aarch64"),
            ("aarch64", "aarch64"),
            ("linux/arm/v7", "arm"),
            ("arm", "arm"),
            ("386", "i386"),
            ("amd64", "x86_64"),
            ("mips64le", "mips64el"),
            ("loong64", "loongarch64"),
            ("RISCV64", "riscv64"),
        ] {
            assert_eq!(Emulator::find(name).map(|e| e.qemu), Some(qemu), "{name}");
        }
        assert!(Emulator::find("z80").is_none());
        let arm = Emulator::find("arm").unwrap();
        assert!(arm.runs(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(arm.runs(&Platform::parse("linux/arm").unwrap()));
        assert!(!arm.runs(&Platform::parse("linux/arm64").unwrap()));
    }

    #[test]
    fn check_native_emulated_and_unavailable() {
        let (_dir, binfmt) = fake_binfmt(
            &[
                ("qemu-aarch64", AARCH64),
                (
                    "qemu-s390x",
                    "disabled\ninterpreter /usr/bin/qemu-s390x-static\n",
                ),
            ],
            "enabled\n",
        );
        let support = ExecSupport::read(&binfmt, amd64()).unwrap();
        let p = |s: &str| Platform::parse(s).unwrap();
        assert_eq!(support.check(&p("linux/amd64")), Execution::Native);
        assert_eq!(support.check(&p("linux/386")), Execution::Native);
        assert_eq!(
            support.check(&p("linux/arm64")),
            Execution::Emulated {
                handler: "qemu-aarch64".into(),
                interpreter: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into(),
            }
        );
        assert_eq!(support.check(&p("linux/s390x")), Execution::Unavailable);
        let listed: Vec<String> = support.platforms().iter().map(Platform::format).collect();
        assert_eq!(listed, ["linux/amd64", "linux/386", "linux/arm64"]);
    }

    #[test]
    fn disabled_binfmt_misc_emulates_nothing() {
        let (_dir, binfmt) = fake_binfmt(&[("qemu-aarch64", AARCH64)], "disabled\n");
        let support = ExecSupport::read(&binfmt, amd64()).unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!(support.check(&arm64), Execution::Unavailable);
    }

    #[test]
    fn registration_round_trips_and_writes_register() {
        let line = r":qemu-arm:M::\x7f\x45\x4c\x46:\xff\xff\xff\xff:/usr/libexec/qemu-binfmt/arm-binfmt-P:OP";
        let reg = Registration::parse(line).unwrap().with_flag('F');
        assert_eq!(reg.flags, "OPF");
        assert_eq!(
            reg.to_string(),
            r":qemu-arm:M:0:\x7f\x45\x4c\x46:\xff\xff\xff\xff:/usr/libexec/qemu-binfmt/arm-binfmt-P:OPF"
        );
        assert!(Registration::parse(":x:E::ext::/bin/x:").is_err());
        assert!(Registration::parse(":x:M:").is_err());
        let (dir, binfmt) = fake_binfmt(&[("qemu-arm", AARCH64)], "enabled\n");
        binfmt.register(&reg).unwrap();
        let written = std::fs::read_to_string(dir.path().join("register")).unwrap();
        assert_eq!(written, reg.to_string());
        binfmt.unregister("qemu-arm").unwrap();
        let removed = std::fs::read_to_string(dir.path().join("qemu-arm")).unwrap();
        assert_eq!(removed, "-1");
    }

    #[test]
    fn registration_from_conf_dir_or_table() {
        let conf = tempfile::tempdir().unwrap();
        let interp = conf.path().join("riscv64-binfmt-P");
        std::fs::write(&interp, "").unwrap();
        std::fs::write(
            conf.path().join("qemu-riscv64.conf"),
            format!(
                "# comment\n:qemu-riscv64:M::\\x7fELF:\\xff\\xff:{}:OP\n",
                interp.display()
            ),
        )
        .unwrap();
        let riscv = Emulator::find("riscv64").unwrap();
        let reg = riscv.registration(conf.path()).unwrap();
        assert_eq!(reg.interpreter, interp);
        assert_eq!(reg.flags, "OPF");
        assert_eq!(escape_hex("7f45"), r"\x7f\x45");
        // A conf whose interpreter is gone falls back to the standard paths, and names
        // them and the Debian package when none exists.
        let z = Emulator {
            qemu: "hoist-test-none",
            platforms: &["linux/none"],
            magic: "7f",
            mask: "ff",
        };
        let err = z.registration(conf.path()).unwrap_err().to_string();
        assert!(err.contains("qemu-user-static"), "{err}");
        assert!(
            err.contains("/usr/bin/qemu-hoist-test-none-static"),
            "{err}"
        );
    }
}
