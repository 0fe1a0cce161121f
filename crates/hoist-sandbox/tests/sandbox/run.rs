//! The sandbox backends against a busybox rootfs (root only; each test runs every backend).

use crate::fixture::{busybox, busybox_rootfs, executors, run, sh};
use hoist_sandbox::{
    resolve_user, BindMount, Error, Executor, ExitStatus, Network, OutputStream, RunSpec,
    TmpfsMount,
};

#[test]
fn echo_hi() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let (status, output) = run(&executor, &RunSpec::new(rootfs.path(), ["echo", "hi"]));
        assert_eq!(status, ExitStatus::Code(0), "{}", executor.name());
        assert_eq!(output.stdout_text(), "hi\n", "{}", executor.name());
    }
}

#[test]
fn exit_codes_and_signals_are_reported() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let name = executor.name();
        let (status, _) = run(&executor, &sh(rootfs.path(), "exit 3"));
        assert_eq!(status, ExitStatus::Code(3), "{name}");
        let (status, _) = run(&executor, &RunSpec::new(rootfs.path(), ["false"]));
        assert_eq!(status, ExitStatus::Code(1), "{name}");
        // pid 1 ignores signals it has no handler for, so the shell kills itself through a
        // child that is not pid 1.
        let (status, _) = run(&executor, &sh(rootfs.path(), "sh -c 'kill -9 $$'; exit $?"));
        assert_eq!(status, ExitStatus::Code(137), "{name}");
        // pid 1 cannot be killed from inside its namespace, so the test kills it from here.
        let (status, _) = run_and_kill_from_host(&executor, rootfs.path());
        match executor {
            // The built-in runtime sees the wait status itself...
            hoist_sandbox::AnyExecutor::Builtin(_) => {
                assert_eq!(status, ExitStatus::Signal(9), "{name}")
            }
            // ...runtimes report a signal as 128 + n.
            hoist_sandbox::AnyExecutor::OciRuntime(_) => {
                assert_eq!(status, ExitStatus::Code(137), "{name}")
            }
            #[cfg(feature = "testing")]
            hoist_sandbox::AnyExecutor::Scripted(_) => unreachable!("no scripted executor here"),
        }
    }
}

/// Runs `exec sleep <unique>` and SIGKILLs that process from the host once it shows up.
fn run_and_kill_from_host(
    executor: &hoist_sandbox::AnyExecutor,
    rootfs: &std::path::Path,
) -> (ExitStatus, hoist_sandbox::CollectedOutput) {
    let marker = format!(
        "{}{}",
        400_000 + std::process::id() % 100_000,
        executor.name().len()
    );
    let spec = sh(rootfs, &format!("exec sleep {marker}"));
    let killer = {
        let marker = marker.clone();
        std::thread::spawn(move || {
            let wanted = format!("sleep\0{marker}\0");
            for _ in 0..500 {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                    if cmdline == wanted.as_bytes() {
                        let pid: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
                        nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        )
                        .unwrap();
                        return;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            panic!("never saw `sleep {marker}` start");
        })
    };
    let result = run(executor, &spec);
    killer.join().unwrap();
    result
}

#[test]
fn env_and_cwd_are_applied_and_cwd_is_created() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let mut spec = sh(rootfs.path(), "echo \"$FOO|$EMPTY|$PATH\"; pwd; env | sort");
        spec.env.push(("FOO".into(), "bar baz".into()));
        spec.env.push(("EMPTY".into(), String::new()));
        spec.cwd = "/work/dir".into();
        let (status, output) = run(&executor, &spec);
        assert_eq!(status, ExitStatus::Code(0), "{}", executor.name());
        let text = output.stdout_text();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(format!("bar baz||{}", hoist_sandbox::DEFAULT_PATH).as_str())
        );
        assert_eq!(lines.next(), Some("/work/dir"));
        assert!(
            !text.contains("_HOIST_SANDBOX_INIT"),
            "{}: the helper marker leaked: {text}",
            executor.name()
        );
        assert!(rootfs.path().join("work/dir").is_dir());
    }
}

#[test]
fn id_as_named_user_and_as_uid_gid() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let mut spec = RunSpec::new(rootfs.path(), ["id"]);
        spec.user = resolve_user("alice", rootfs.path()).unwrap();
        let (_, output) = run(&executor, &spec);
        assert_eq!(
            output.stdout_text(),
            "uid=1000(alice) gid=1000(alice) groups=10(wheel),50(staff),1000(alice)\n",
            "{}",
            executor.name()
        );
        spec.user = resolve_user("1234:5678", rootfs.path()).unwrap();
        let (_, output) = run(&executor, &spec);
        assert_eq!(
            output.stdout_text(),
            "uid=1234 gid=5678 groups=5678\n",
            "{}",
            executor.name()
        );
        spec.user = resolve_user("alice:staff", rootfs.path()).unwrap();
        let (_, output) = run(&executor, &spec);
        assert_eq!(
            output.stdout_text(),
            "uid=1000(alice) gid=50(staff) groups=50(staff)\n",
            "{}",
            executor.name()
        );
    }
}

#[test]
fn stdin_is_empty_and_not_the_helper_socket() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let script = "readlink /proc/self/fd/0; cat; echo end";
        let (status, output) = run(&executor, &sh(rootfs.path(), script));
        assert_eq!(status, ExitStatus::Code(0), "{}", executor.name());
        let text = output.stdout_text();
        match executor {
            // Never the helper's socket, which the command could use to forge reports.
            hoist_sandbox::AnyExecutor::Builtin(_) => assert_eq!(text, "/dev/null\nend\n"),
            // runc hands the container an empty pipe.
            hoist_sandbox::AnyExecutor::OciRuntime(_) => {
                assert!(text.ends_with("]\nend\n"), "{text}")
            }
            #[cfg(feature = "testing")]
            hoist_sandbox::AnyExecutor::Scripted(_) => unreachable!("no scripted executor here"),
        }
    }
}

#[test]
fn hostname_and_etc_files() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let mut spec = sh(
            rootfs.path(),
            "hostname; cat /etc/hosts; test -s /etc/resolv.conf && echo resolv-ok",
        );
        spec.hostname = "builder1".into();
        let (status, output) = run(&executor, &spec);
        assert_eq!(status, ExitStatus::Code(0), "{}", executor.name());
        let text = output.stdout_text();
        assert!(
            text.starts_with("builder1\n"),
            "{}: {text}",
            executor.name()
        );
        assert!(
            text.contains("127.0.0.1\tlocalhost builder1"),
            "{}: {text}",
            executor.name()
        );
        assert!(text.contains("resolv-ok"), "{}: {text}", executor.name());
        // The generated files are mounted over mount points made for the run and removed
        // after it (BuildKit's mount-stub cleanup): nothing of them stays in the rootfs.
        for stub in ["etc/hosts", "etc/resolv.conf", "proc", "dev", "sys"] {
            let path = rootfs.path().join(stub);
            let existed = path.exists();
            assert!(!existed, "{}: {stub} stayed behind", executor.name());
        }
    }
}

#[test]
fn command_is_pid_1_with_its_own_proc() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let (_, output) = run(
            &executor,
            &sh(rootfs.path(), "echo $$; ls /proc | grep -c '^[0-9]'"),
        );
        // Only the shell and `ls` (and `grep`) exist in the new pid namespace.
        let text = output.stdout_text();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("1"), "{}: {text}", executor.name());
        let count: u32 = lines.next().unwrap().parse().unwrap();
        assert!(count <= 3, "{}: {count} processes visible", executor.name());
    }
}

#[test]
fn network_none_has_only_loopback_up() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let mut spec = sh(
            rootfs.path(),
            "ls /sys/class/net; cat /sys/class/net/lo/flags",
        );
        spec.network = Network::None;
        let (status, output) = run(&executor, &spec);
        assert_eq!(
            status,
            ExitStatus::Code(0),
            "{}: {}",
            executor.name(),
            output.stderr_text()
        );
        let text = output.stdout_text();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("lo"), "{}: {text}", executor.name());
        let flags =
            u32::from_str_radix(lines.next().unwrap().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(
            flags & 1,
            1,
            "{}: lo is not up (flags {flags:#x})",
            executor.name()
        );
        assert_eq!(lines.next(), None);
    }
}

#[test]
fn writes_land_in_the_rootfs_and_tmpfs_writes_do_not() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let mut spec = sh(
            rootfs.path(),
            "echo data > /written; echo scratch > /scratch/file",
        );
        spec.tmpfs.push(TmpfsMount {
            target: "/scratch".into(),
            size: Some(1 << 20),
        });
        let (status, _) = run(&executor, &spec);
        assert_eq!(status, ExitStatus::Code(0), "{}", executor.name());
        assert_eq!(
            std::fs::read_to_string(rootfs.path().join("written")).unwrap(),
            "data\n"
        );
        assert!(!rootfs.path().join("scratch/file").exists());
        std::fs::remove_file(rootfs.path().join("written")).unwrap();
    }
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("input"), "from host\n").unwrap();
    for executor in executors() {
        let mut spec = sh(
            rootfs.path(),
            "cat /ro/input; touch /ro/nope 2>/dev/null && echo ro-writable; echo out > /rw/output",
        );
        spec.mounts = vec![
            BindMount {
                source: host.path().into(),
                target: "/ro".into(),
                readonly: true,
            },
            BindMount {
                source: host.path().into(),
                target: "/rw".into(),
                readonly: false,
            },
        ];
        let (status, output) = run(&executor, &spec);
        assert_eq!(
            status,
            ExitStatus::Code(0),
            "{}: {}",
            executor.name(),
            output.stderr_text()
        );
        assert_eq!(output.stdout_text(), "from host\n", "{}", executor.name());
        assert_eq!(
            std::fs::read_to_string(host.path().join("output")).unwrap(),
            "out\n"
        );
    }
}

#[test]
fn output_streams_line_by_line() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let mut lines = Vec::new();
        let mut sink = |stream: OutputStream, line: &[u8]| lines.push((stream, line.to_vec()));
        let spec = sh(
            rootfs.path(),
            "echo one; echo two >&2; printf 'three\\nfour'",
        );
        executor.run(&spec, &mut sink).unwrap();
        let stdout: Vec<_> = lines
            .iter()
            .filter(|(s, _)| *s == OutputStream::Stdout)
            .map(|(_, l)| l.clone())
            .collect();
        assert_eq!(
            stdout,
            [&b"one\n"[..], b"three\n", b"four"],
            "{}",
            executor.name()
        );
        assert!(
            lines.contains(&(OutputStream::Stderr, b"two\n".to_vec())),
            "{}",
            executor.name()
        );
    }
}

#[test]
fn missing_command_error_names_it() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let err = executor
            .run(
                &RunSpec::new(rootfs.path(), ["nosuchcmd", "arg"]),
                &mut hoist_sandbox::CollectedOutput::default(),
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::CommandNotFound { command } if command == "nosuchcmd"),
            "{}: {err:?}",
            executor.name()
        );
        assert!(err.to_string().contains("\"nosuchcmd\""), "{err}");
    }
}

#[test]
fn nothing_is_left_mounted_on_the_host() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    let host = tempfile::tempdir().unwrap();
    for executor in executors() {
        let mut spec = sh(rootfs.path(), "mount | wc -l");
        spec.mounts.push(BindMount {
            source: host.path().into(),
            target: "/mnt".into(),
            readonly: true,
        });
        spec.tmpfs.push(TmpfsMount {
            target: "/scratch".into(),
            size: None,
        });
        spec.network = Network::None;
        let (status, _) = run(&executor, &spec);
        assert_eq!(status, ExitStatus::Code(0), "{}", executor.name());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = rootfs.path().to_str().unwrap();
        let leaked: Vec<_> = mountinfo
            .lines()
            // The rootfs, and the per-run temp dirs of every test (generated /etc files,
            // bundles): nothing of a sandbox is ever mounted in the host's namespace.
            .filter(|line| {
                line.contains(root)
                    || line.contains("/hoist-sandbox-")
                    || line.contains("/hoist-bundle-")
            })
            .collect();
        assert!(
            leaked.is_empty(),
            "{}: left mounted: {leaked:#?}",
            executor.name()
        );
    }
}

#[test]
fn symlinks_in_the_rootfs_cannot_redirect_mounts_to_the_host() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    let outside = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // A hostile image: /proc and /mnt point at absolute host paths.
    std::os::unix::fs::symlink(outside[0].path(), rootfs.path().join("proc")).unwrap();
    std::os::unix::fs::symlink(outside[1].path(), rootfs.path().join("mnt")).unwrap();
    let executor = &executors()[0];
    let mut spec = sh(rootfs.path(), "test -f /proc/self/status && echo proc-ok");
    spec.tmpfs.push(TmpfsMount {
        target: "/mnt/x".into(),
        size: None,
    });
    let (status, output) = run(executor, &spec);
    assert_eq!(status, ExitStatus::Code(0), "{}", output.stderr_text());
    assert_eq!(output.stdout_text(), "proc-ok\n");
    for dir in &outside {
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "something was created outside the rootfs"
        );
    }
}

#[test]
fn invalid_spec_is_rejected_before_anything_runs() {
    let executor =
        hoist_sandbox::BuiltinExecutor::with_helper(env!("CARGO_BIN_EXE_hoist-sandbox-init"));
    let mut output = hoist_sandbox::CollectedOutput::default();
    let empty: [&str; 0] = [];
    let err = executor
        .run(&RunSpec::new("/nonexistent", empty), &mut output)
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid run spec: no command to run");
    let err = executor
        .run(&RunSpec::new("relative", ["true"]), &mut output)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid run spec: rootfs relative is not an absolute path"
    );
}

#[test]
fn capabilities_and_proc_paths_are_confined() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let name = executor.name();
        let script = "grep -E '^Cap(Bnd|Eff)' /proc/self/status; \
                      test -s /proc/kcore || echo kcore-masked; \
                      echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo sys-readonly";
        let (_, output) = run(&executor, &sh(rootfs.path(), script));
        assert_eq!(
            output.stdout_text(),
            "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nkcore-masked\nsys-readonly\n",
            "{name}"
        );
        let mut spec = sh(rootfs.path(), "grep -E '^Cap(Bnd|Eff)' /proc/self/status");
        spec.user = resolve_user("alice", rootfs.path()).unwrap();
        let (_, output) = run(&executor, &spec);
        assert_eq!(
            output.stdout_text(),
            "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n",
            "{name}"
        );
    }
}

/// A RUN starts with no signal ignored or blocked, as under runc, whatever hoist's own
/// process ignores (Rust ignores SIGPIPE): `yes | head` ends, as it does in BuildKit.
#[test]
fn a_run_starts_with_default_signal_actions() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let name = executor.name();
        let script = "grep -E '^Sig(Ign|Blk)' /proc/self/status; yes | head -c 4; echo";
        let (status, output) = run(&executor, &sh(rootfs.path(), script));
        assert_eq!(
            status,
            ExitStatus::Code(0),
            "{name}: {}",
            output.stderr_text()
        );
        let text = output.stdout_text();
        for line in text.lines().filter(|l| l.starts_with("Sig")) {
            let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
            // Bits 31 and 32 are glibc's own real-time signals (32, 33), which a static
            // busybox does not use; only the classic signals 1–31 matter here.
            assert_eq!(mask & 0x7fff_ffff, 0, "{name}: {line}");
        }
        assert!(text.ends_with("y\ny\n\n"), "{name}: {text:?}");
    }
}

#[test]
fn cancel_kills_the_process_tree() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    for executor in executors() {
        let name = executor.name();
        let marker = format!("{}{}", 500_000 + std::process::id() % 100_000, name.len());
        // A child of pid 1 too, to see that the whole tree goes.
        let spec = sh(
            rootfs.path(),
            &format!("sleep {marker} & echo started; wait"),
        );
        let cancel = hoist_sandbox::CancelToken::new();
        let mut sink = {
            let cancel = cancel.clone();
            move |_: OutputStream, line: &[u8]| {
                if line == b"started\n" {
                    cancel.cancel();
                }
            }
        };
        let started = std::time::Instant::now();
        let err = executor
            .run_cancellable(&spec, &mut sink, &cancel)
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{name}: {err:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{name}: cancelling took {:?}",
            started.elapsed()
        );
        let wanted = format!("sleep\0{marker}\0");
        let survivors = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|entry| {
                std::fs::read(entry.path().join("cmdline")).unwrap_or_default() == wanted.as_bytes()
            })
            .count();
        assert_eq!(survivors, 0, "{name}: `sleep {marker}` survived the cancel");
    }
}

#[test]
fn exec_failures_say_why() {
    let Some(busybox) = busybox() else { return };
    let rootfs = busybox_rootfs(&busybox);
    // A dynamically linked program without its interpreter, and one for no known format.
    std::fs::copy("/bin/true", rootfs.path().join("bin/dynamic-true")).unwrap();
    let garbage = rootfs.path().join("bin/garbage");
    std::fs::write(&garbage, [0u8; 64]).unwrap();
    std::fs::set_permissions(
        &garbage,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let executor = &executors()[0];
    let mut output = hoist_sandbox::CollectedOutput::default();
    let cases = [
        (
            "dynamic-true",
            "is its ELF interpreter or a library missing",
        ),
        (
            "garbage",
            "Exec format error (os error 8) (a program for another architecture?",
        ),
        (
            "/bin/absent",
            "failed to exec /bin/absent in the sandbox: No such file or directory",
        ),
    ];
    for (command, expected) in cases {
        let err = executor
            .run(&RunSpec::new(rootfs.path(), [command]), &mut output)
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{command}: {err}");
    }
}
