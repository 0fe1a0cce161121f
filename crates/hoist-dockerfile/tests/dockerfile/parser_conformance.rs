//! Conformance runners over BuildKit's own parser test vectors
//! (`buildkit-dockerfile-parser`: testfiles, negative cases, line spans and the tables
//! transcribed from its Go tests). Each runner checks every case, prints `name: N/M passed`
//! and fails listing every case that did not pass.

use std::path::{Path, PathBuf};

use hoist_dockerfile::ast::Heredoc;
use hoist_dockerfile::parser::{self, ExecFormError};
use serde_json::Value;

const FOLDER: &str = "buildkit-dockerfile-parser";

fn dir() -> Option<PathBuf> {
    hoist_testkit::conformance_dir(FOLDER)
}

fn load(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Counts results, prints the summary and fails with every failure listed.
struct Runner {
    name: &'static str,
    total: usize,
    failures: Vec<String>,
}

impl Runner {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            total: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, case: impl Into<String>, outcome: Result<(), String>) {
        self.total += 1;
        if let Err(why) = outcome {
            self.failures.push(format!("{}: {why}", case.into()));
        }
    }

    fn finish(self) {
        let passed = self.total - self.failures.len();
        eprintln!("{}: {passed}/{} passed", self.name, self.total);
        assert!(self.total > 0, "{}: no cases found", self.name);
        assert!(
            self.failures.is_empty(),
            "{} failing cases:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn sorted_cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn case_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn parser_testfiles_conformance() {
    let Some(dir) = dir() else { return };
    let mut runner = Runner::new("parser_testfiles");
    for case in sorted_cases(&dir.join("testfiles")) {
        let input = std::fs::read(case.join("Dockerfile")).unwrap();
        let expected = std::fs::read_to_string(case.join("result")).unwrap();
        let outcome = match parser::parse_bytes(&input) {
            Ok(df) => {
                let got = df.dump() + "\n";
                if got == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "dump differs:\n--- got\n{got}--- expected\n{expected}"
                    ))
                }
            }
            Err(e) => Err(format!("parse failed: {e}")),
        };
        runner.check(case_name(&case), outcome);
    }
    runner.finish();
}

#[test]
fn parser_negative_conformance() {
    let Some(dir) = dir() else { return };
    let mut runner = Runner::new("parser_negative");
    for case in sorted_cases(&dir.join("testfiles-negative")) {
        let input = std::fs::read(case.join("Dockerfile")).unwrap();
        let outcome = match parser::parse_bytes(&input) {
            Ok(df) => Err(format!("parsed, expected an error:\n{}", df.dump())),
            Err(e) => {
                eprintln!("  {}: {e}", case_name(&case));
                Ok(())
            }
        };
        runner.check(case_name(&case), outcome);
    }
    runner.finish();
}

#[test]
fn parser_line_numbers_and_warnings_conformance() {
    let Some(dir) = dir() else { return };
    let table = load(&dir, "line-numbers-and-warnings.json");
    let mut runner = Runner::new("parser_line_numbers_and_warnings");

    // testfile-line spans
    let lines = &table["line_numbers"];
    let input = std::fs::read(dir.join(lines["input_file"].as_str().unwrap())).unwrap();
    let expected = &lines["expected"];
    let outcome = parser::parse_bytes(&input)
        .map_err(|e| e.to_string())
        .and_then(|df| {
            let got_root = (df.span.start, df.span.end);
            let want_root = (
                expected["ast_start_line"].as_u64().unwrap() as usize,
                expected["ast_end_line"].as_u64().unwrap() as usize,
            );
            let got_children: Vec<(usize, usize)> = df
                .children
                .iter()
                .map(|c| (c.span.start, c.span.end))
                .collect();
            let want_children: Vec<(usize, usize)> = expected["child_lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_u64().unwrap() as usize,
                        p[1].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            if got_root == want_root
                && got_children == want_children
                && df.children.len() == expected["children"].as_u64().unwrap() as usize
            {
                Ok(())
            } else {
                Err(format!(
                    "root {got_root:?} children {got_children:?}, expected {want_root:?} {want_children:?}"
                ))
            }
        });
    runner.check("line_numbers", outcome);

    // empty continuation warnings
    let warn = &table["empty_continuation_warnings"];
    let expected = &warn["expected"];
    let outcome = parser::parse(warn["dockerfile"].as_str().unwrap())
        .map_err(|e| e.to_string())
        .and_then(|df| {
            let count = expected["warning_count"].as_u64().unwrap() as usize;
            if df.warnings.len() != count {
                return Err(format!("{} warnings: {:?}", df.warnings.len(), df.warnings));
            }
            for (w, needles) in df
                .warnings
                .iter()
                .zip(expected["warnings_short_contains"].as_array().unwrap())
            {
                for needle in needles.as_array().unwrap() {
                    let needle = needle.as_str().unwrap();
                    if !w.short.contains(needle) {
                        return Err(format!("warning {:?} lacks {needle:?}", w.short));
                    }
                }
            }
            let detail = expected["warning0_detail0_contains"].as_str().unwrap();
            if !df.warnings[0].detail[0].contains(detail) {
                return Err(format!(
                    "detail {:?} lacks {detail:?}",
                    df.warnings[0].detail
                ));
            }
            Ok(())
        });
    runner.check("empty_continuation_warnings", outcome);

    // a line of 65536+ bytes
    let long = &table["line_too_long"];
    let text = long["dockerfile_template"]
        .as_str()
        .unwrap()
        .replace("%s", &"a".repeat(65_536));
    let want = long["expected_error"].as_str().unwrap();
    let outcome = match parser::parse(&text) {
        Ok(_) => Err("parsed, expected an error".to_string()),
        Err(e) if e.to_string().contains(want) => Ok(()),
        Err(e) => Err(format!("error {e:?}, expected {want:?}")),
    };
    runner.check("line_too_long", outcome);
    runner.finish();
}

fn heredoc_from_json(v: &Value) -> Heredoc {
    Heredoc {
        name: v["Name"].as_str().unwrap().to_string(),
        content: v["Content"].as_str().unwrap().to_string(),
        expand: v["Expand"].as_bool().unwrap(),
        chomp: v["Chomp"].as_bool().unwrap(),
        file_descriptor: v["FileDescriptor"].as_u64().unwrap() as u32,
    }
}

#[test]
fn parser_heredocs_conformance() {
    let Some(dir) = dir() else { return };
    let table = load(&dir, "heredocs.json");
    let mut runner = Runner::new("parser_heredocs");

    let extract = &table["parse_extracts_heredoc"];
    let parsed = parser::parse(extract["dockerfile"].as_str().unwrap());
    for case in extract["cases"].as_array().unwrap() {
        let index = case["ast_child_index"].as_u64().unwrap() as usize;
        let want: Vec<Heredoc> = case["expected_heredocs"]
            .as_array()
            .map(|a| a.iter().map(heredoc_from_json).collect())
            .unwrap_or_default();
        let outcome = match &parsed {
            Err(e) => Err(format!("parse failed: {e}")),
            Ok(df) => match df.children.get(index) {
                None => Err(format!("no child {index}")),
                Some(child) if child.heredocs == want => Ok(()),
                Some(child) => Err(format!("got {:?}, expected {want:?}", child.heredocs)),
            },
        };
        runner.check(
            format!(
                "extract #{index} {}",
                case["upstream_comment"].as_str().unwrap()
            ),
            outcome,
        );
    }

    let json = &table["json_form_has_no_heredocs"];
    let outcome = parser::parse(json["dockerfile"].as_str().unwrap())
        .map_err(|e| e.to_string())
        .and_then(|df| {
            if df.children.len() >= 4 && df.children[1..4].iter().all(|c| c.heredocs.is_empty()) {
                Ok(())
            } else {
                Err(format!("{:?}", df.children))
            }
        });
    runner.check("json_form_has_no_heredocs", outcome);

    let chomp = &table["chomp"];
    let got = parser::chomp_heredoc_content(chomp["input"].as_str().unwrap());
    let want = chomp["expected"].as_str().unwrap();
    runner.check(
        "chomp",
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        },
    );

    let words = &table["parse_heredoc_word"];
    for word in words["valid_name_EOF"].as_array().unwrap() {
        let word = word.as_str().unwrap();
        let outcome = match parser::parse_heredoc(word) {
            Ok(Some(doc)) if doc.name == "EOF" => Ok(()),
            other => Err(format!("{other:?}")),
        };
        runner.check(format!("heredoc word valid {word:?}"), outcome);
    }
    for word in words["invalid_error"].as_array().unwrap() {
        let word = word.as_str().unwrap();
        let outcome = match parser::parse_heredoc(word) {
            Err(_) => Ok(()),
            other => Err(format!("{other:?}")),
        };
        runner.check(format!("heredoc word invalid {word:?}"), outcome);
    }
    for word in words["not_heredoc"].as_array().unwrap() {
        let word = word.as_str().unwrap();
        let outcome = match parser::parse_heredoc(word) {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        };
        runner.check(format!("heredoc word not a heredoc {word:?}"), outcome);
    }

    for case in table["heredocs_from_line"]["cases"].as_array().unwrap() {
        let line = case["line"].as_str().unwrap();
        let want: Vec<String> = case["names"]
            .as_array()
            .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        let outcome = match parser::heredocs_from_line(line) {
            Ok(docs) => {
                // As upstream: only the heredocs actually returned are compared (BuildKit
                // itself returns none for "RUN <<- EOF", whose lexer splits "<<-" from "EOF").
                let got: Vec<String> = docs.into_iter().map(|d| d.name).collect();
                if got.len() <= want.len() && got[..] == want[..got.len()] {
                    Ok(())
                } else {
                    Err(format!("got {got:?}, expected {want:?}"))
                }
            }
            Err(e) => Err(e),
        };
        runner.check(format!("heredocs from line {line:?}"), outcome);
    }
    runner.finish();
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

#[test]
fn parser_directives_conformance() {
    let Some(dir) = dir() else { return };
    let table = load(&dir, "directives.json");
    let mut runner = Runner::new("parser_directives");

    for (i, case) in table["directive_parser_parse_all"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let mut p = parser::DirectiveParser::new();
        let outcome = p
            .parse_all(case["input"].as_str().unwrap())
            .and_then(|found| {
                let got: Vec<(String, String)> =
                    found.into_iter().map(|d| (d.name, d.value)).collect();
                let want: Vec<(String, String)> = case["expected"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        (
                            d["name"].as_str().unwrap().to_string(),
                            d["value"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                expect_eq("directives", got, want)
            });
        runner.check(format!("parse_all #{i}"), outcome);
    }

    let detect_cases = table["detect_syntax"]["cases"].as_array().unwrap().iter();
    let check_cases = table["parse_directive_check"]["cases"]
        .as_array()
        .unwrap()
        .iter();
    for (i, case) in detect_cases.chain(check_cases).enumerate() {
        let mut input = String::new();
        if case["input_hex_prefix"].as_str() == Some("efbbbf") {
            input.push('\u{feff}');
        }
        input.push_str(case["input"].as_str().unwrap());
        let found = match case["name"].as_str() {
            Some(name) => parser::parse_directive(name, &input),
            None => parser::detect_syntax(&input),
        };
        let value_key = if case.get("value").is_some() {
            "value"
        } else {
            "ref"
        };
        let outcome = (|| {
            expect_eq("ok", found.is_some(), case["ok"].as_bool().unwrap())?;
            let value = found.as_ref().map_or("", |d| d.value.as_str());
            let cmdline = found.as_ref().map_or("", |d| d.cmdline.as_str());
            if let Some(want) = case[value_key].as_str() {
                expect_eq("value", value, want)?;
            }
            if let Some(want) = case["cmdline"].as_str() {
                expect_eq("cmdline", cmdline, want)?;
            }
            if let (Some(start), Some(end)) =
                (case["line_start"].as_u64(), case["line_end"].as_u64())
            {
                let span = found.as_ref().map(|d| (d.span.start, d.span.end));
                expect_eq("lines", span, Some((start as usize, end as usize)))?;
            }
            Ok(())
        })();
        runner.check(format!("directive #{i} {:?}", case["input"]), outcome);
    }
    runner.finish();
}

#[test]
fn parser_json_arrays_conformance() {
    let Some(dir) = dir() else { return };
    let table = load(&dir, "json-arrays.json");
    let mut runner = Runner::new("parser_json_arrays");
    for case in table["valid"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let want: Vec<String> = case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        let outcome = match parser::parse_exec_form(input) {
            Ok(got) => expect_eq("array", got, want),
            Err(e) => Err(format!("failed: {e}")),
        };
        runner.check(format!("valid {input:?}"), outcome);
    }
    for case in table["invalid_not_string_array"].as_array().unwrap() {
        let input = case.as_str().unwrap();
        let outcome = match parser::parse_exec_form(input) {
            Err(ExecFormError::NotStringArray) => Ok(()),
            other => Err(format!("{other:?}")),
        };
        runner.check(format!("invalid {input:?}"), outcome);
    }
    runner.finish();
}

#[test]
fn parser_parse_words_conformance() {
    let Some(dir) = dir() else { return };
    let table = load(&dir, "parse-words.json");
    let mut runner = Runner::new("parser_parse_words");
    for case in table["cases"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let want: Vec<String> = case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        let got = parser::parse_words(input, '\\');
        runner.check(format!("{input:?}"), expect_eq("words", got, want));
    }
    runner.finish();
}
