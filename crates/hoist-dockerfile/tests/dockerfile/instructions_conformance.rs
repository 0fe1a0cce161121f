//! BuildKit's `instructions/parse_test.go` cases (transcribed in the shared conformance data,
//! `buildkit-dockerfile-parser/instruction-errors.json`): argument-count and trigger errors,
//! HEALTHCHECK shell form, the `--interval` minimum and doc-comment detection.

use hoist_dockerfile::ast::{LineSpan, Node};
use hoist_dockerfile::instructions::{parse_instruction, parse_stages, Healthcheck, Instruction};
use hoist_dockerfile::parser;
use serde_json::Value;

/// One case's outcome: `Err` says what differed.
type Outcome = Result<(), String>;

fn load() -> Option<Value> {
    let dir = hoist_testkit::conformance_dir("buildkit-dockerfile-parser")?;
    let text = std::fs::read_to_string(dir.join("instruction-errors.json")).unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

fn str_field<'a>(case: &'a Value, key: &str) -> Option<&'a str> {
    case.get(key).and_then(Value::as_str)
}

/// Parses `text` and turns its first instruction into a typed one.
fn first_instruction(text: &str) -> Result<hoist_dockerfile::Result<Instruction>, String> {
    let dockerfile = parser::parse(text).map_err(|e| format!("parser failed: {e}"))?;
    let node = dockerfile.children.first().ok_or("no instruction parsed")?;
    Ok(parse_instruction(node))
}

fn instruction_error(case: &Value) -> Outcome {
    let text = str_field(case, "dockerfile").ok_or("case without dockerfile")?;
    let err = match first_instruction(text)? {
        Ok(instruction) => return Err(format!("expected an error, got {instruction:?}")),
        Err(err) => err.to_string(),
    };
    if let Some(want) = str_field(case, "error_equals") {
        if err != want {
            return Err(format!("error {err:?}, want {want:?}"));
        }
    }
    if let Some(want) = str_field(case, "error_contains") {
        if !err.contains(want) {
            return Err(format!("error {err:?} does not contain {want:?}"));
        }
    }
    Ok(())
}

fn healthcheck_test(instruction: Instruction) -> Result<Vec<String>, String> {
    match instruction {
        Instruction::Healthcheck(Healthcheck::Cmd(cmd)) => Ok(cmd.test),
        other => Err(format!("not a HEALTHCHECK CMD: {other:?}")),
    }
}

fn healthcheck_shell_form(case: &Value) -> Outcome {
    let want: Vec<String> = serde_json::from_value(case["expected_test"].clone())
        .map_err(|e| format!("bad expected_test: {e}"))?;
    // From the text, through the parser...
    let text = str_field(case, "instruction").ok_or("case without instruction")?;
    let got = healthcheck_test(first_instruction(text)?.map_err(|e| e.to_string())?)?;
    if got != want {
        return Err(format!("from text: test {got:?}, want {want:?}"));
    }
    // ...and from the hand-built node upstream uses (one argument per word).
    let node = Node {
        keyword: "healthcheck".to_string(),
        keyword_original: "HEALTHCHECK".to_string(),
        args: vec!["CMD".to_string(), "hello".to_string(), "world".to_string()],
        span: LineSpan { start: 1, end: 1 },
        ..Node::default()
    };
    let got = healthcheck_test(parse_instruction(&node).map_err(|e| e.to_string())?)?;
    if got != want {
        return Err(format!("from nodes: test {got:?}, want {want:?}"));
    }
    Ok(())
}

fn healthcheck_interval(case: &Value) -> Outcome {
    let interval = str_field(case, "interval").ok_or("case without interval")?;
    let text = format!("HEALTHCHECK --interval={interval} CMD true\n");
    let result = first_instruction(&text)?;
    match (result, str_field(case, "error_contains")) {
        (Ok(_), None) => Ok(()),
        (Ok(i), Some(want)) => Err(format!("expected an error containing {want:?}, got {i:?}")),
        (Err(err), None) => Err(format!("unexpected error {err}")),
        (Err(err), Some(want)) if err.to_string().contains(want) => Ok(()),
        (Err(err), Some(want)) => Err(format!("error {err:?} does not contain {want:?}")),
    }
}

/// The `expected` keys of the doc-comment case, checked against what `parse_stages` gives.
fn doc_comments(case: &Value) -> Outcome {
    let text = str_field(case, "dockerfile").ok_or("case without dockerfile")?;
    let dockerfile = parser::parse(text).map_err(|e| format!("parser failed: {e}"))?;
    let (metas, stages) = parse_stages(&dockerfile).map_err(|e| e.to_string())?;
    let stage = stages.first().ok_or("no stage")?;
    let stage_arg = |command: usize, key: &str| -> Result<String, String> {
        match stage.commands.get(command).map(|c| &c.instruction) {
            Some(Instruction::Arg(arg)) => arg
                .args
                .iter()
                .find(|d| d.key == key)
                .map(|d| d.doc_comment.clone())
                .ok_or(format!("ARG {key} not in command {command}")),
            other => Err(format!("command {command} is not an ARG: {other:?}")),
        }
    };
    let expected = case["expected"]
        .as_object()
        .ok_or("case without expected")?;
    for (key, want) in expected {
        let want = want.as_str().ok_or("expected values are strings")?;
        let got = match key.as_str() {
            "stages[0].DocComment" => stage.doc_comment.clone(),
            "meta_args[0].Key" => metas.first().ok_or("no meta arg")?.key.clone(),
            "meta_args[0].DocComment" => metas.first().ok_or("no meta arg")?.doc_comment.clone(),
            "stage0.commands[0] ARG foo DocComment" => stage_arg(0, "foo")?,
            "stage0.commands[1] ARG bar DocComment" => stage_arg(1, "bar")?,
            "stage0.commands[1] ARG baz DocComment" => stage_arg(1, "baz")?,
            other => return Err(format!("unknown expectation {other:?}")),
        };
        if got != want {
            return Err(format!("{key}: {got:?}, want {want:?}"));
        }
    }
    Ok(())
}

#[test]
#[allow(clippy::print_stdout)] // the runner's count is its output
fn instruction_errors_conformance() {
    let Some(data) = load() else { return };
    let mut results: Vec<(String, Outcome)> = Vec::new();
    let errors = data["instruction_errors"].as_array().unwrap();
    for (i, case) in errors.iter().enumerate() {
        let name = format!(
            "instruction_errors[{i}] {} {:?}",
            str_field(case, "test").unwrap_or("?"),
            str_field(case, "dockerfile").unwrap_or("?")
        );
        results.push((name, instruction_error(case)));
    }
    results.push((
        "healthcheck_shell_form".to_string(),
        healthcheck_shell_form(&data["healthcheck_shell_form"]),
    ));
    for case in data["healthcheck_interval"]["cases"].as_array().unwrap() {
        let name = format!(
            "healthcheck_interval {}",
            str_field(case, "interval").unwrap_or("?")
        );
        results.push((name, healthcheck_interval(case)));
    }
    results.push((
        "doc_comments".to_string(),
        doc_comments(&data["doc_comments"]),
    ));

    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, outcome)| outcome.as_ref().err().map(|why| format!("{name}: {why}")))
        .collect();
    println!(
        "buildkit instructions: {}/{} passed",
        results.len() - failures.len(),
        results.len()
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
