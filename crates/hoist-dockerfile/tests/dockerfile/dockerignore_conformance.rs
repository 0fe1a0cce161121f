//! Conformance runners over moby/patternmatcher's own test tables
//! (`moby-patternmatcher-dockerignore`): `matches.json` and `ignorefile-readall.json`.
//! Every case runs; each runner prints its count and fails listing every failing case.

use std::path::Path;

use hoist_dockerfile::dockerignore::{self, MatchInfo, PatternMatcher};
use hoist_dockerfile::Error;
use serde_json::Value;

const FOLDER: &str = "moby-patternmatcher-dockerignore";

fn load(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("expected a string, got {v}"))
                .to_owned()
        })
        .collect()
}

fn cases<'a>(value: &'a Value, pointer: &str) -> &'a Vec<Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{pointer} is missing from the conformance data"))
}

/// Tallies results and reports them the way every runner does.
#[derive(Default)]
struct Tally {
    total: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, label: String, outcome: Result<(), String>) {
        self.total += 1;
        if let Err(why) = outcome {
            self.failures.push(format!("{label}: {why}"));
        }
    }

    fn finish(self, runner: &str) {
        let passed = self.total - self.failures.len();
        eprintln!("{runner}: {passed}/{} passed", self.total);
        assert!(
            self.failures.is_empty(),
            "{runner}: {} failing case(s):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// The parent directories of `path` as upstream's test walks them (Go's `filepath.Dir`,
/// then each leading run of its elements), outermost first; empty at the root.
fn parents_walk(path: &str) -> Vec<String> {
    let dir = match path.rfind('/') {
        Some(slash) => go_clean(&path[..=slash]),
        None => return Vec::new(),
    };
    if dir == "." {
        return Vec::new();
    }
    let elements: Vec<&str> = dir.split('/').collect();
    (1..=elements.len())
        .map(|n| elements[..n].join("/"))
        .collect()
}

/// Enough of Go's `filepath.Clean` for the directory part of the test paths.
fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let kept: Vec<&str> = path
        .split('/')
        .filter(|e| !e.is_empty() && *e != ".")
        .collect();
    match (rooted, kept.is_empty()) {
        (true, _) => format!("/{}", kept.join("/")),
        (false, true) => ".".to_owned(),
        (false, false) => kept.join("/"),
    }
}

/// The four ways upstream's `TestMatches` checks a case; `with_single_bool` adds the
/// deprecated `MatchesUsingParentResult` walk, run on single-pattern cases only.
fn check_matches(
    patterns: &[String],
    path: &str,
    want: bool,
    with_single_bool: bool,
) -> Result<(), String> {
    let pm = PatternMatcher::new(patterns).map_err(|e| format!("new failed: {e}"))?;
    let mut wrong = Vec::new();

    match pm.matches_or_parent_matches(path) {
        Ok(got) if got == want => {}
        other => wrong.push(format!("matches_or_parent_matches gave {other:?}")),
    }

    if with_single_bool {
        let mut parent_matched = false;
        for parent in parents_walk(path) {
            parent_matched = pm
                .matches_using_parent_result(&parent, parent_matched)
                .unwrap_or(false);
        }
        match pm.matches_using_parent_result(path, parent_matched) {
            Ok(got) if got == want => {}
            other => wrong.push(format!("matches_using_parent_result walk gave {other:?}")),
        }
    }

    let mut info = MatchInfo::default();
    for parent in parents_walk(path) {
        if let Ok((_, next)) = pm.matches_using_parent_results(&parent, &info) {
            info = next;
        }
    }
    match pm.matches_using_parent_results(path, &info) {
        Ok((got, _)) if got == want => {}
        other => wrong.push(format!("matches_using_parent_results walk gave {other:?}")),
    }

    match pm.matches_using_parent_results(path, &MatchInfo::default()) {
        Ok((got, _)) if got == want => {}
        other => wrong.push(format!(
            "matches_using_parent_results without context gave {other:?}"
        )),
    }

    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("want {want}; {}", wrong.join("; ")))
    }
}

fn is_pattern_error<T: std::fmt::Debug>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::Pattern { .. }))
}

#[test]
fn dockerignore_matches_conformance() {
    let Some(dir) = hoist_testkit::conformance_dir(FOLDER) else {
        return;
    };
    let data = load(&dir, "matches.json");
    let mut tally = Tally::default();

    for case in cases(&data, "/matches_or_parent_matches/single_pattern") {
        let patterns = strings(&case["patterns"]);
        let path = case["path"].as_str().unwrap_or_default();
        let want = case["match"].as_bool().unwrap_or_default();
        tally.check(
            format!("single_pattern {patterns:?} vs {path:?}"),
            check_matches(&patterns, path, want, true),
        );
    }

    for case in cases(&data, "/matches_or_parent_matches/multi_pattern") {
        let patterns = strings(&case["patterns"]);
        let path = case["path"].as_str().unwrap_or_default();
        let want = case["match"].as_bool().unwrap_or_default();
        tally.check(
            format!("multi_pattern {patterns:?} vs {path:?}"),
            check_matches(&patterns, path, want, false),
        );
    }

    for case in cases(&data, "/legacy_matches_function/cases") {
        let pattern = case["pattern"].as_str().unwrap_or_default();
        let path = case["path"].as_str().unwrap_or_default();
        let want = case["match"].as_bool().unwrap_or_default();
        let want_error = case["error"].as_str() == Some("ErrBadPattern");
        let got = dockerignore::matches(path, [pattern]);
        let outcome = match (&got, want_error) {
            (Ok(m), false) if *m == want => Ok(()),
            (_, true) if is_pattern_error(&got) => Ok(()),
            _ => Err(format!("want match={want} error={want_error}, got {got:?}")),
        };
        tally.check(format!("legacy {pattern:?} vs {path:?}"), outcome);
    }

    for case in cases(&data, "/legacy_matches_function/simple_cases") {
        let test = case["test"].as_str().unwrap_or_default();
        let patterns = strings(&case["patterns"]);
        let path = case["path"].as_str().unwrap_or_default();
        let want_error = case["error"].as_bool().unwrap_or_default();
        let got = dockerignore::matches(path, &patterns);
        let outcome = if want_error {
            if is_pattern_error(&got) {
                Ok(())
            } else {
                Err(format!("want an Error::Pattern, got {got:?}"))
            }
        } else {
            let want = case["match"].as_bool().unwrap_or_default();
            match got {
                Ok(m) if m == want => Ok(()),
                other => Err(format!("want {want}, got {other:?}")),
            }
        };
        tally.check(format!("{test} {patterns:?} vs {path:?}"), outcome);
    }

    for case in cases(&data, "/constructor/cases") {
        let test = case["test"].as_str().unwrap_or_default();
        let patterns = strings(&case["patterns"]);
        let got = PatternMatcher::new(&patterns);
        let outcome = (|| {
            if case["expected_error"].as_bool() == Some(true) {
                return if is_pattern_error(&got) {
                    Ok(())
                } else {
                    Err(format!("want an Error::Pattern, got {got:?}"))
                };
            }
            let pm = got.map_err(|e| format!("new failed: {e}"))?;
            if let Some(count) = case["expected_pattern_count"].as_u64() {
                if pm.patterns().len() as u64 != count {
                    return Err(format!(
                        "want {count} patterns, got {}",
                        pm.patterns().len()
                    ));
                }
            }
            if let Some(flag) = case["expected_has_exclusions"].as_bool() {
                if pm.exclusions() != flag {
                    return Err(format!("want exclusions()={flag}, got {}", pm.exclusions()));
                }
            }
            if case.get("then").is_some() {
                // The malformed pattern fails on every call, never panics.
                for attempt in 1..=2 {
                    let result = pm.matches_or_parent_matches("x");
                    if !is_pattern_error(&result) {
                        return Err(format!(
                            "call {attempt}: want an Error::Pattern, got {result:?}"
                        ));
                    }
                }
            }
            Ok(())
        })();
        tally.check(format!("constructor {test} {patterns:?}"), outcome);
    }

    tally.finish("moby-patternmatcher matches");
}

#[test]
fn dockerignore_readall_conformance() {
    let Some(dir) = hoist_testkit::conformance_dir(FOLDER) else {
        return;
    };
    let data = load(&dir, "ignorefile-readall.json");
    let mut tally = Tally::default();
    for case in cases(&data, "/cases") {
        let input = case["input"].as_str().unwrap_or_default();
        let want = strings(&case["expected"]);
        // A nil reader is "no ignore file": the caller has no text, which reads as empty.
        let got = dockerignore::read_ignore_file(input);
        let outcome = match &got {
            Ok(patterns) if *patterns == want => Ok(()),
            other => Err(format!("want {want:?}, got {other:?}")),
        };
        tally.check(format!("read_ignore_file {input:?}"), outcome);
    }
    tally.finish("moby-patternmatcher ignorefile ReadAll");
}
