//! `--progress=plain` and `rawjson` say why a step ran: after one context file changed, the
//! copy that reads it names it on a `#N cache miss: …` line right after its header, and the
//! rawjson vertex carries the same text as `cacheMiss`.
//!
//! Needs what `BuildEnv` needs (root, `docker-registry`, the busybox .debs).

use crate::build_env::BuildEnv;

#[test]
fn a_changed_context_file_is_named_on_the_copys_cache_miss_line() {
    let Some(env) = BuildEnv::new() else { return };
    let ctx = env.fresh_dir("ctx");
    std::fs::create_dir_all(ctx.join("src")).unwrap();
    std::fs::write(ctx.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(ctx.join("Cargo.toml"), "[package]\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /src\n").unwrap();
    let out = env.fresh_dir("out");
    let output = format!("type=local,dest={}", out.display());
    let ctx_arg = ctx.display().to_string();
    let build = |progress: &str| {
        let result = env
            .command(&["build", progress, "-o", &output, &ctx_arg])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        assert!(result.status.success(), "{stderr}");
        stderr
    };

    let first = build("--progress=plain");
    let header = first
        .lines()
        .position(|l| l.ends_with(" [1/1] COPY . /src"))
        .unwrap_or_else(|| panic!("{first}"));
    let lines: Vec<&str> = first.lines().collect();
    let n = lines[header].split(' ').next().unwrap();
    assert_eq!(
        lines[header + 1],
        format!("{n} cache miss: no record of an earlier build of this step"),
        "{first}"
    );

    std::fs::write(ctx.join("src/main.rs"), "fn main() { run() }\n").unwrap();
    let second = build("--progress=plain");
    let lines: Vec<&str> = second.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.ends_with(" [1/1] COPY . /src"))
        .unwrap_or_else(|| panic!("{second}"));
    let n = lines[header].split(' ').next().unwrap();
    assert_eq!(
        lines[header + 1],
        format!("{n} cache miss: context files changed: src/main.rs"),
        "{second}"
    );

    std::fs::write(ctx.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let json = build("--progress=rawjson");
    let miss = json
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| v["vertexes"].as_array().cloned().unwrap_or_default())
        .find(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("COPY . /src"))
                && v["cacheMiss"].is_string()
        })
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(miss["cacheMiss"], "context files changed: Cargo.toml");
}
