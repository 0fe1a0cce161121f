//! `hoist build --secret` with `RUN --mount=type=secret`: the secret as a file (default and
//! custom target, mode and owner) or a variable, missing optional and required secrets, a
//! missing `src=` file, and no trace of the value in the state dir, the exports or the
//! progress output.

use std::path::PathBuf;
use std::process::Output;

use crate::build_env::{files_containing, BuildEnv};

struct Case {
    env: BuildEnv,
    ctx: PathBuf,
}

impl Case {
    fn new(dockerfile: &str) -> Option<Case> {
        let env = BuildEnv::new()?;
        let ctx = env.fresh_dir("ctx");
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        Some(Case { env, ctx })
    }

    /// A file holding `value`, outside the context.
    fn secret_file(&self, value: &str) -> PathBuf {
        let path = self.env.fresh_dir("secret").join("value");
        std::fs::write(&path, value).unwrap();
        path
    }

    fn build(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let ctx = self.ctx.to_string_lossy().into_owned();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(&ctx);
        let mut command = self.env.command(&all);
        for (k, v) in vars {
            command.env(k, v);
        }
        command.output().unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

#[test]
fn secrets_file_is_mounted_read_only_at_run_secrets() {
    let Some(case) = Case::new(
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && \
         test \"$(cat /run/secrets/tok)\" = expected && \
         test \"$(stat -c %a:%u:%g /run/secrets/tok)\" = 400:0:0 && \
         ! sh -c 'echo x > /run/secrets/tok' 2>/dev/null\n",
    ) else {
        return;
    };
    let file = case.secret_file("expected");
    let spec = format!("id=tok,src={}", file.display());
    assert_ok(&case.build(&["--secret", &spec], &[]));
}

#[test]
fn secrets_custom_target_mode_and_owner() {
    let Some(case) = Case::new(
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok,target=/etc/app/token,mode=0440,uid=1000,gid=1001 \
         test \"$(cat /etc/app/token)\" = expected && \
         test \"$(stat -c %a:%u:%g /etc/app/token)\" = 440:1000:1001 && \
         test ! -e /run/secrets/tok\n\
         RUN test ! -e /etc/app\n",
    ) else {
        return;
    };
    let file = case.secret_file("expected");
    let spec = format!("id=tok,source={}", file.display());
    assert_ok(&case.build(&["--secret", &spec], &[]));
}

#[test]
fn secrets_env_form_sets_the_variable_for_that_run_only() {
    let Some(case) = Case::new(
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok,env=TOKEN test \"$TOKEN\" = expected && \
         test ! -e /run/secrets/tok\n\
         RUN test -z \"$TOKEN\"\n",
    ) else {
        return;
    };
    // From a variable of the client (`env=`), and from a bare id naming a set variable.
    let out = case.build(
        &["--secret", "id=tok,env=HOIST_TEST_SECRET_VAR"],
        &[("HOIST_TEST_SECRET_VAR", "expected")],
    );
    assert_ok(&out);
    let out = case.build(
        &["--no-cache", "--secret", "id=tok"],
        &[("tok", "expected")],
    );
    assert_ok(&out);
    let out = case.build(
        &["--no-cache", "--secret", "id=tok,type=env,src=OTHER_VAR"],
        &[("OTHER_VAR", "expected")],
    );
    assert_ok(&out);
}

#[test]
fn secrets_missing_optional_is_skipped_and_required_fails_naming_it() {
    let Some(case) = Case::new(
        "FROM busybox\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped\n",
    ) else {
        return;
    };
    assert_ok(&case.build(&[], &[]));

    std::fs::write(
        case.ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=needed,required=true true\n",
    )
    .unwrap();
    let out = case.build(&[], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("secret needed: not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn secrets_missing_src_file_fails_before_any_step() {
    let Some(case) = Case::new("FROM busybox\nRUN echo ran-a-step\n") else {
        return;
    };
    let missing = case.env.fresh_dir("none").join("no-such-secret");
    let spec = format!("id=tok,src={}", missing.display());
    let out = case.build(&["--secret", &spec], &[]);
    let text = stderr(&out);
    assert!(!out.status.success());
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(!text.contains("ran-a-step"), "{text}");

    let out = case.build(&["--secret", "src=/x"], &[]);
    assert!(
        stderr(&out).contains("secret ID missing"),
        "{}",
        stderr(&out)
    );
    let out = case.build(&["--secret", "id=a,bogus=1"], &[]);
    assert!(
        stderr(&out).contains("unexpected key 'bogus'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn secrets_leave_no_trace_in_state_exports_or_progress() {
    let Some(case) = Case::new(
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo made > /made\n\
         RUN --mount=type=secret,id=tok,target=/opt/deep/tok,env=TOK test -n \"$TOK\" && \
         mkdir -p /work && echo done > /work/done\n",
    ) else {
        return;
    };
    let marker = format!("hoist-secret-marker-{}-{}", std::process::id(), nanos());
    let file = case.secret_file(&marker);
    let spec = format!("id=tok,src={}", file.display());
    let out_dir = case.env.fresh_dir("out");
    let oci = out_dir.join("image.tar");
    let local = out_dir.join("local");
    let oci_spec = format!("type=oci,dest={}", oci.display());
    let local_spec = format!("type=local,dest={}", local.display());
    let out = case.build(&["--secret", &spec, "-o", &oci_spec], &[]);
    assert_ok(&out);
    let out2 = case.build(&["--secret", &spec, "-o", &local_spec], &[]);
    assert_ok(&out2);

    // The build did what it was asked, and nothing the secret mounts needed stayed.
    assert!(local.join("made").is_file());
    assert!(local.join("work/done").is_file());
    assert!(!local.join("run/secrets").exists());
    assert!(!local.join("opt").exists());
    let entries = crate::build_env::tar_entries(&oci);
    assert!(!entries.is_empty());

    let marker = marker.as_bytes();
    for output in [&out, &out2] {
        for stream in [&output.stdout, &output.stderr] {
            assert!(!stream.windows(marker.len()).any(|w| w == marker));
        }
    }
    assert_eq!(
        files_containing(&case.env.root(), marker),
        Vec::<PathBuf>::new()
    );
    assert_eq!(files_containing(&out_dir, marker), Vec::<PathBuf>::new());
    // The layers inside the OCI archive are compressed: look inside each one too.
    for (name, bytes) in &entries {
        let plain = decompress(bytes);
        assert!(
            !plain.windows(marker.len()).any(|w| w == marker),
            "the marker is in {name}"
        );
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A gzip member's bytes inflated; other bytes as they are.
fn decompress(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .is_ok()
        {
            return out;
        }
    }
    bytes.to_vec()
}
