//! A Dockerfile's warnings on stderr, as buildx prints them: `#N WARN: <short>` under the
//! step that loaded the Dockerfile, then, after the progress, `1 warning found (use docker
//! --debug to expand):` and ` - <short>`. The same text from the embedded `hoist build`,
//! from `hoist build --addr` against a real hoistd (the warning came in `Status`), and
//! through hoistd's gateway; expanded with docker's `DEBUG`; none after quiet progress,
//! BuildKit's `warnings` in rawjson.
//! Build checks as BuildKit's (`StageNameCasing`, `FromAsCasing`, `MaintainerDeprecated`,
//! the frontend's `JSONArgsRecommended`)
//! follow `# check=` and the `BUILDKIT_DOCKERFILE_CHECK` build arg, `error=true` included.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::build_env::BuildEnv;
use crate::build_remote::Daemon;

const SHORT: &str = "NoEmptyContinuation: Empty continuation line (line 4)";

fn context(env: &BuildEnv) -> PathBuf {
    let ctx = env.fresh_dir("warnings");
    // `COPY` continues over the empty line 3 and ends on line 4.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY a.txt \\\n\n /\n",
    )
    .unwrap();
    std::fs::write(ctx.join("a.txt"), "alpha\n").unwrap();
    ctx
}

fn build(env: &BuildEnv, ctx: &Path, progress: &str, remote: Option<(&str, bool)>) -> Output {
    let out = env.fresh_dir("warnings-out");
    let mut command = env.command(&["build", &format!("--progress={progress}")]);
    command
        .env_remove("HOIST_BUILD_VIA_GATEWAY")
        .env_remove("DEBUG");
    if let Some((addr, via_gateway)) = remote {
        command.args(["--addr", addr]);
        if via_gateway {
            command.env("HOIST_BUILD_VIA_GATEWAY", "1");
        }
    }
    let output = command
        .arg("-o")
        .arg(format!("type=local,dest={}", out.display()))
        .arg(ctx)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "alpha\n"
    );
    output
}

/// The plain progress shows the warning under the definition's step and sums it up last.
fn check_plain(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let step = stderr
        .lines()
        .find(|l| l.ends_with(" [internal] load build definition from Dockerfile"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no definition step in {stderr}"));
    assert!(
        stderr.contains(&format!("\n{step} WARN: {SHORT}\n")),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!(
            "\n\n 1 warning found (use docker --debug to expand):\n - {SHORT}\n"
        )),
        "{stderr}"
    );
}

#[test]
fn the_embedded_build_prints_a_dockerfile_warning_as_buildx_does() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = context(&env);
    check_plain(&build(&env, &ctx, "plain", None));

    // docker's DEBUG expands it, as `docker --debug` does buildx's.
    let out = env.fresh_dir("warnings-out");
    let debug = env
        .command(&["build", "--progress=plain", "-o"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&ctx)
        .env("DEBUG", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&debug.stderr);
    assert!(
        stderr.ends_with(&format!(
            "\n 1 warning found:\n - {SHORT}\n\
             Empty continuation lines will become errors in a future release\n\
             More info: https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/\n\
             Dockerfile:4\n\
             --------------------\n   \
             2 |     COPY a.txt \\\n   \
             3 |     \n   \
             4 | >>>  /\n   \
             5 |     \n\
             --------------------\n\n"
        )),
        "{stderr}"
    );

    let quiet = build(&env, &ctx, "quiet", None);
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains("warning found"), "{stderr}");

    let raw = build(&env, &ctx, "rawjson", None);
    let stderr = String::from_utf8_lossy(&raw.stderr);
    let warnings: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("warnings").cloned())
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let warning = &warnings[0][0];
    use base64::Engine as _;
    let short = base64::engine::general_purpose::STANDARD
        .decode(warning["short"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(short).unwrap(), SHORT);
    assert_eq!(warning["level"], 1);
    assert_eq!(warning["range"][0]["start"]["line"], 4, "{warning}");
    assert_eq!(warning["sourceInfo"]["filename"], "Dockerfile", "{warning}");
    assert!(!stderr.contains("warning found"), "{stderr}");

    // The build record keeps it: `history logs` prints it under its step.
    let logs = env.hoist(&["history", "logs"]);
    let stderr = String::from_utf8_lossy(&logs.stderr);
    assert!(logs.status.success(), "{stderr}");
    assert!(stderr.contains(&format!(" WARN: {SHORT}\n")), "{stderr}");
}

#[test]
fn a_remote_build_prints_the_warning_hoistd_sent_in_status() {
    let Some(env) = BuildEnv::new() else { return };
    let config = env.config().display().to_string();
    let Some(daemon) = Daemon::start(&["--config", config.as_str()]) else {
        return;
    };
    let ctx = context(&env);
    check_plain(&build(&env, &ctx, "plain", Some((&daemon.addr(), false))));
    check_plain(&build(&env, &ctx, "plain", Some((&daemon.addr(), true))));
}

#[test]
fn build_checks_follow_the_check_directive_and_the_build_arg() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("checks");
    std::fs::write(ctx.join("a.txt"), "alpha\n").unwrap();
    let dockerfile = |text: &str| std::fs::write(ctx.join("Dockerfile"), text).unwrap();
    let run = |args: &[&str]| {
        let out = env.fresh_dir("checks-out");
        env.command(&["build", "--progress=plain"])
            .env_remove("DEBUG")
            .args(args)
            .arg("-o")
            .arg(format!("type=local,dest={}", out.display()))
            .arg(&ctx)
            .output()
            .unwrap()
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // Three findings, summed up in BuildKit's order.
    dockerfile("FROM scratch as Base\nMAINTAINER me@example.org\nCOPY a.txt /\n");
    let out = run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "\n 3 warnings found (use docker --debug to expand):\n \
             - StageNameCasing: Stage name 'Base' should be lowercase (line 1)\n \
             - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n \
             - MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)\n"
        ),
        "{}",
        stderr(&out)
    );

    // JSONArgsRecommended: the frontend's, for stages it builds and no SHELL set; a
    // check= comment above skips it for that instruction.
    dockerfile(
        "FROM scratch AS unused\nCMD never\n\nFROM scratch AS shell\nSHELL [\"/bin/sh\", \"-c\"]\n\
         ENTRYPOINT fine\n\nFROM scratch\nCOPY a.txt /\nCMD mycommand\n\
         # check=skip=JSONArgsRecommended\nENTRYPOINT other\n",
    );
    let out = run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(
            "\n 1 warning found (use docker --debug to expand):\n \
             - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended \
             behavior related to OS signals (line 10)\n"
        ),
        "{}",
        stderr(&out)
    );
    dockerfile("# check=error=true\nFROM scratch\nCOPY a.txt /\nENTRYPOINT mycommand\n");
    let out = run(&[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lint violation found for rules: JSONArgsRecommended"),
        "{}",
        stderr(&out)
    );

    // The build arg overrides the directive; skip=all leaves nothing to say.
    let out = run(&["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // error=true: the findings are reported, then the build fails naming the rules.
    dockerfile("# check=skip=FromAsCasing;error=true\nFROM scratch as Base\nCOPY a.txt /\n");
    let out = run(&[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("WARN: StageNameCasing: Stage name 'Base' should be lowercase (line 2)"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("FromAsCasing"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lint violation found for rules: StageNameCasing"),
        "{}",
        stderr(&out)
    );

    // Options that do not parse fail the build, naming where they came from.
    let out = run(&["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: invalid check option \"nope\""
        ),
        "{}",
        stderr(&out)
    );
}
