//! `hoist binfmt`: the listing and `--install`/`--uninstall` against a private directory
//! laid out like `/proc/sys/fs/binfmt_misc` (`HOIST_BINFMT_MISC_DIR`), and, as root, one
//! real register/unregister of the loong64 emulator with the previous state restored.

use std::path::Path;
use std::process::{Command, Output};

use hoist_engine::binfmt::{BinfmtMisc, Emulator, BINFMT_CONF_DIR};

const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
    flags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
    mask ffffffffffffff00fffffffffffffffffeffffff\n";
const S390X_OFF: &str = "disabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: F\noffset 0\n\
    magic 7f454c4602020100000000000000000000020016\n";

fn hoist(binfmt_dir: &Path, conf_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("binfmt")
        .args(args)
        .env("HOIST_BINFMT_MISC_DIR", binfmt_dir)
        .env("HOIST_BINFMT_CONF_DIR", conf_dir)
        .output()
        .unwrap()
}

fn fake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("misc")).unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let misc = dir.path().join("misc");
    std::fs::write(misc.join("status"), "enabled\n").unwrap();
    std::fs::write(misc.join("register"), "").unwrap();
    std::fs::write(misc.join("qemu-aarch64"), AARCH64).unwrap();
    std::fs::write(misc.join("qemu-s390x"), S390X_OFF).unwrap();
    dir
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "hoist binfmt failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_enabled_handlers_as_platforms() {
    let dir = fake();
    let (misc, conf) = (dir.path().join("misc"), dir.path().join("conf"));
    let text = stdout(&hoist(&misc, &conf, &[]));
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("Platforms:   linux/amd64"), "{text}");
    assert!(first.ends_with(", linux/arm64"), "{text}");
    assert!(
        !first.contains("s390x"),
        "a disabled handler counted:\n{text}"
    );
    assert!(text.contains("binfmt_misc: "), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("qemu-aarch64"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "qemu-aarch64",
            "linux/arm64",
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
            "POF",
            "enabled"
        ]
    );
    let row = text.lines().find(|l| l.starts_with("qemu-s390x")).unwrap();
    assert!(row.ends_with("disabled"), "{row}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&hoist(&misc, &conf, &["--format", "json"]))).unwrap();
    assert_eq!(
        json["supported"].as_array().unwrap().last().unwrap(),
        "linux/arm64"
    );
    assert_eq!(json["native"][0], "linux/amd64");
    assert_eq!(json["binfmt_misc"]["enabled"], true);
    let emulators = json["emulators"].as_array().unwrap();
    assert_eq!(emulators.len(), 2, "{json}");
    assert_eq!(emulators[0]["name"], "qemu-aarch64");
    assert_eq!(emulators[0]["platforms"][0], "linux/arm64");
    assert_eq!(emulators[0]["flags"], "POF");
    assert_eq!(emulators[1]["enabled"], false);
}

#[test]
fn install_reads_debian_conf_and_adds_the_f_flag() {
    let dir = fake();
    let (misc, conf) = (dir.path().join("misc"), dir.path().join("conf"));
    let interpreter = dir.path().join("riscv64-binfmt-P");
    std::fs::write(&interpreter, "").unwrap();
    std::fs::write(
        conf.join("qemu-riscv64.conf"),
        format!(
            ":qemu-riscv64:M::\\x7fELF\\x02:\\xff\\xff\\xff\\xff\\xff:{}:OP\n",
            interpreter.display()
        ),
    )
    .unwrap();
    let out = hoist(&misc, &conf, &["--install", "riscv64,arm64"]);
    stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("qemu-aarch64: already registered"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(misc.join("register")).unwrap(),
        format!(
            ":qemu-riscv64:M:0:\\x7fELF\\x02:\\xff\\xff\\xff\\xff\\xff:{}:OPF",
            interpreter.display()
        )
    );

    let out = hoist(&misc, &conf, &["--uninstall", "arm64"]);
    stdout(&out);
    assert_eq!(
        std::fs::read_to_string(misc.join("qemu-aarch64")).unwrap(),
        "-1"
    );

    let out = hoist(&misc, &conf, &["--install", "z80"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown architecture \"z80\""), "{stderr}");
    assert!(stderr.contains("arm64"), "{stderr}");
}

/// Puts the system's loong64 handler back as it was, even when the test fails.
struct Restore {
    binfmt: BinfmtMisc,
    had: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let emulator = Emulator::find("loong64").unwrap();
        let present = self
            .binfmt
            .handlers()
            .unwrap()
            .iter()
            .any(|h| h.emulator() == Some(emulator));
        if present && !self.had {
            let _ = self.binfmt.unregister(&emulator.handler_name());
        } else if !present && self.had {
            if let Ok(reg) = emulator.registration(Path::new(BINFMT_CONF_DIR)) {
                let _ = self.binfmt.register(&reg);
            }
        }
    }
}

#[test]
fn real_register_and_unregister_of_loong64_as_root() {
    if !hoist_testkit::is_root() {
        hoist_testkit::skip("registering binfmt_misc handlers needs root");
        return;
    }
    let binfmt = BinfmtMisc::system();
    if !binfmt.is_mounted() {
        hoist_testkit::skip("binfmt_misc is not mounted at /proc/sys/fs/binfmt_misc");
        return;
    }
    let emulator = Emulator::find("loong64").unwrap();
    if emulator.registration(Path::new(BINFMT_CONF_DIR)).is_err() {
        hoist_testkit::skip("no qemu-loongarch64 (apt-get install qemu-user-static)");
        return;
    }
    let system = |args: &[&str]| hoist(binfmt.dir(), Path::new(BINFMT_CONF_DIR), args);
    let present = || {
        binfmt
            .handlers()
            .unwrap()
            .iter()
            .any(|h| h.emulator() == Some(emulator) && h.enabled)
    };
    let had = present();
    let _restore = Restore {
        binfmt: binfmt.clone(),
        had,
    };
    if had {
        stdout(&system(&["--uninstall", "loong64"]));
        assert!(!present());
    }
    stdout(&system(&["--install", "loong64"]));
    assert!(present());
    let text = stdout(&system(&[]));
    let row = text
        .lines()
        .find(|l| l.starts_with("qemu-loongarch64"))
        .unwrap_or_else(|| panic!("no row:\n{text}"));
    let flags = row.split_whitespace().nth(3).unwrap();
    assert!(flags.contains('F'), "{row}");
    assert!(row.contains("linux/loong64"), "{row}");
    if !had {
        stdout(&system(&["--uninstall", "loong64"]));
        assert!(!present());
    }
}
