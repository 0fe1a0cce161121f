//! BuildKit's own shell-lexer test vectors (`envVarTest`, `wordsTest` and the tables of
//! `lex_test.go`), run against `hoist_dockerfile::shell`. See the folder's README for the
//! formats.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hoist_dockerfile::shell::{Env, KeyCase, Lexer};
use serde_json::Value;

const FOLDER: &str = "buildkit-shell-lexer";

/// Counts cases and remembers failures; prints `<runner>: N/M passed` and fails listing
/// every failing case.
struct Tally {
    runner: &'static str,
    total: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(runner: &'static str) -> Self {
        Tally {
            runner,
            total: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, describe: impl FnOnce() -> String) {
        self.total += 1;
        if !ok {
            self.failures.push(describe());
        }
    }

    fn finish(self) {
        let passed = self.total - self.failures.len();
        eprintln!("{}: {passed}/{} passed", self.runner, self.total);
        assert!(self.total > 0, "{}: no case was run", self.runner);
        assert!(
            self.failures.is_empty(),
            "{}: {} failing case(s):\n{}",
            self.runner,
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn data(file: &str) -> Option<(PathBuf, String)> {
    let dir = hoist_testkit::conformance_dir(FOLDER)?;
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Some((path, text))
}

/// `PLATFORM | INPUT | EXPECTED` lines of `envVarTest`.
fn env_var_cases(path: &Path, text: &str) -> Vec<(String, String, String)> {
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(
            fields.len(),
            3,
            "{}:{}: not three fields: {line:?}",
            path.display(),
            n + 1
        );
        cases.push((fields[0].into(), fields[1].into(), fields[2].into()));
    }
    cases
}

fn run_env_var_test(runner: &'static str, platforms: &[&str], case: KeyCase) {
    let Some((path, text)) = data("envVarTest") else {
        return;
    };
    let mut env = Env::with_case(case);
    env.extend(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lexer = Lexer::new('\\');
    let mut tally = Tally::new(runner);
    for (platform, input, expected) in env_var_cases(&path, &text) {
        if !platforms.contains(&platform.as_str()) {
            continue;
        }
        let got = lexer.process_word(&input, &env);
        let ok = match &got {
            Ok(result) => expected != "error" && *result == expected,
            Err(_) => expected == "error",
        };
        tally.check(ok, || {
            format!("  {platform}|{input}: expected {expected:?}, got {got:?}")
        });
    }
    tally.finish();
}

#[test]
fn envvartest_conformance() {
    run_env_var_test("envVarTest (Linux: A+U)", &["A", "U"], KeyCase::Sensitive);
}

#[test]
fn envvartest_windows_keys_conformance() {
    run_env_var_test(
        "envVarTest (Windows keys: A+W)",
        &["A", "W"],
        KeyCase::Insensitive,
    );
}

#[test]
fn wordstest_conformance() {
    let Some((path, text)) = data("wordsTest") else {
        return;
    };
    let lexer = Lexer::new('\\');
    let mut env = Env::new();
    let mut tally = Tally::new("wordsTest");
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(entry) = line.strip_prefix("ENV ") {
            env.push(entry.trim_start_matches(' '));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(
            fields.len(),
            2,
            "{}:{}: not two fields: {line:?}",
            path.display(),
            n + 1
        );
        let input = fields[0].trim();
        let expected: Vec<String> = fields[1]
            .trim_start_matches(' ')
            .split(',')
            .map(String::from)
            .collect();
        let got = lexer
            .process_words(input, &env)
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        tally.check(got == expected, || {
            format!(
                "  line {}: {input:?}: expected {expected:?}, got {got:?}",
                n + 1
            )
        });
    }
    tally.finish();
}

fn json_tables() -> Option<Value> {
    let (path, text) = data("process-word-with-matches.json")?;
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display())),
    )
}

fn env_of(case: &Value) -> Env {
    let mut env = Env::new();
    if let Some(vars) = case["envs"].as_object() {
        for (key, value) in vars {
            env.set(key, value.as_str().expect("env values are strings"));
        }
    }
    env
}

fn names(value: &Value) -> Option<BTreeSet<String>> {
    value.as_array().map(|list| {
        list.iter()
            .map(|v| v.as_str().expect("names are strings").to_owned())
            .collect()
    })
}

fn cases<'a>(tables: &'a Value, table: &str) -> &'a [Value] {
    tables[table]["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("table {table} has no cases"))
}

#[test]
fn process_word_with_matches_conformance() {
    let Some(tables) = json_tables() else {
        return;
    };
    let lexer = Lexer::new('\\');
    let mut tally = Tally::new("process-word-with-matches.json");

    for table in ["process_with_matches", "platform_release_name"] {
        for case in cases(&tables, table) {
            let input = case["input"].as_str().expect("input is a string");
            let got = lexer.process_word_with_matches(input, &env_of(case));
            let ok = match (&got, case["expect_error"].as_bool() == Some(true)) {
                (Err(_), true) => true,
                (Ok(_), true) | (Err(_), false) => false,
                (Ok(got), false) => {
                    Some(got.result.as_str()) == case["expected"].as_str()
                        && names(&case["matched"]).is_none_or(|m| m == got.matched)
                        && names(&case["unmatched"]).is_none_or(|u| u == got.unmatched)
                }
            };
            tally.check(ok, || format!("  {table}: {case}\n    got {got:?}"));
        }
    }

    for case in cases(&tables, "mandatory_vars") {
        let input = case["input"].as_str().expect("input is a string");
        let got = lexer.process_word(input, &env_of(case));
        let ok = match &got {
            Ok(result) => {
                case["expect_error"] == false && Some(result.as_str()) == case["expected"].as_str()
            }
            Err(e) => {
                case["expect_error"] == true
                    && case["error_contains"]
                        .as_str()
                        .is_none_or(|part| e.to_string().contains(part))
            }
        };
        tally.check(ok, || format!("  mandatory_vars: {case}\n    got {got:?}"));
    }

    for case in cases(&tables, "get_env_last_wins") {
        let list = case["env_list"].as_array().expect("env_list is a list");
        let env: Env = list
            .iter()
            .map(|v| v.as_str().unwrap_or_default())
            .collect();
        let lookup = case["lookup"].as_str().expect("lookup is a string");
        let got = env.get(lookup).unwrap_or_default();
        tally.check(Some(got) == case["expected"].as_str(), || {
            format!("  get_env_last_wins: {case}\n    got {got:?}")
        });
    }

    tally.finish();
}
