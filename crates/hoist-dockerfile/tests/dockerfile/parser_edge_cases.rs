//! Edge cases of the Dockerfile parser, each checked against what BuildKit's parser produces
//! for the same input (AST dump, spans, heredocs, comments, warnings or error text).

use hoist_dockerfile::ast::LineSpan;
use hoist_dockerfile::parser::{self, Directives};
use hoist_dockerfile::Error;

fn dump(text: &str) -> String {
    parser::parse(text).unwrap().dump()
}

fn spans(text: &str) -> Vec<(usize, usize)> {
    parser::parse(text)
        .unwrap()
        .children
        .iter()
        .map(|c| (c.span.start, c.span.end))
        .collect()
}

fn parse_error(text: &str) -> (usize, String) {
    match parser::parse(text) {
        Err(Error::Parse { line, message }) => (line, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn backtick_escape_directive_changes_continuations() {
    let text = "# escape=`\nFROM x\nRUN echo a `\n  b \\\nCOPY c d\n";
    assert_eq!(
        dump(text),
        "(from \"x\")\n(run \"echo a   b \\\\\")\n(copy \"c\" \"d\")"
    );
    let df = parser::parse(text).unwrap();
    assert_eq!(df.escape, '`');
    assert_eq!(spans(text), [(2, 2), (3, 4), (5, 5)]);
    assert_eq!((df.span.start, df.span.end), (2, 5));
}

#[test]
fn directive_after_instruction_is_a_comment() {
    let df = parser::parse("FROM a\n# escape=`\nRUN a `\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert_eq!(df.dump(), "(from \"a\")\n(run \"a `\")");
    assert_eq!(df.children[1].prev_comment, ["escape=`"]);
}

#[test]
fn bom_crlf_and_comments() {
    let text = "\u{feff}# syntax=x\r\n#  hello \r\n\r\n# world\r\nFROM a AS b\r\n#\r\nRUN x\r\n";
    let df = parser::parse(text).unwrap();
    assert_eq!(df.dump(), "(from \"a\" \"AS\" \"b\")\n(run \"x\")");
    // the directive is not a comment; a blank line does not reset comments, "#" does
    assert_eq!(df.children[0].prev_comment, ["hello", "world"]);
    assert!(df.children[1].prev_comment.is_empty());
    assert_eq!(spans(text), [(5, 5), (7, 7)]);
    let bytes = [b"\xef\xbb\xbf".as_slice(), b"FROM a\n"].concat();
    assert_eq!(parser::parse_bytes(&bytes).unwrap().dump(), "(from \"a\")");
}

#[test]
fn indented_comment_keeps_its_hash() {
    // BuildKit drops the first byte of the raw line, which for an indented comment is a blank
    let df = parser::parse("  # note\nFROM a\n").unwrap();
    assert_eq!(df.children[0].prev_comment, ["# note"]);
}

#[test]
fn heredoc_forms() {
    let text = "FROM a\nONBUILD RUN <<EOF\nbody\nEOF\nRUN --mount=type=cache,target=/x <<A cat <<-B > /f\na\nA\n\tb\n\tB\nRUN <<EOF python3\nprint(1)\nEOF\nRUN 3<<'X'\n$y\nX\n";
    let df = parser::parse(text).unwrap();
    assert_eq!(
        df.dump(),
        "(from \"a\")\n(onbuild (run \"<<EOF\"))\n(run [\"--mount=type=cache,target=/x\"] \"<<A cat <<-B > /f\")\n(run \"<<EOF python3\")\n(run \"3<<'X'\")"
    );
    assert_eq!(spans(text), [(1, 1), (2, 4), (5, 9), (10, 12), (13, 15)]);
    let onbuild = &df.children[1];
    assert_eq!(onbuild.heredocs[0].content, "body\n");
    assert_eq!(
        onbuild.nested.as_ref().unwrap().span,
        LineSpan { start: 2, end: 4 }
    );
    let run = &df.children[2];
    assert_eq!(run.heredocs.len(), 2);
    assert_eq!(
        (run.heredocs[1].name.as_str(), run.heredocs[1].chomp),
        ("B", true)
    );
    assert_eq!(run.heredocs[1].content, "\tb\n");
    let fd = &df.children[4].heredocs[0];
    assert_eq!(
        (fd.file_descriptor, fd.expand, fd.content.as_str()),
        (3, false, "$y\n")
    );
}

#[test]
fn heredocs_only_for_run_copy_add_in_shell_form() {
    let df = parser::parse("FROM a\nCMD <<EOF\nEOF\nRUN [\"<<EOF\"]\nrun <<EOF\nEOF\n").unwrap();
    assert_eq!(
        df.dump(),
        "(from \"a\")\n(cmd \"<<EOF\")\n(eof \"\")\n(run \"<<EOF\")\n(run \"<<EOF\")"
    );
    assert!(df.children[1].heredocs.is_empty());
    assert!(df.children[3].heredocs.is_empty() && df.children[3].json);
    assert_eq!(df.children[4].heredocs.len(), 1);
}

#[test]
fn unterminated_heredoc_fails_at_its_instruction() {
    assert_eq!(
        parse_error("FROM a\nRUN <<EOF\nnever\n"),
        (2, "unterminated heredoc".to_string())
    );
}

#[test]
fn per_instruction_arguments() {
    let text = "FROM a\nFOO bar baz\nHEALTHCHECK --interval=1s CMD [\"a\", \"b\"]\nHEALTHCHECK NONE\nHEALTHCHECK\nONBUILD\nMAINTAINER me <x@y>\nSTOPSIGNAL   SIGKILL  \nARG a=1 b \"c d\"=e\nENV a b c\nLABEL \"a b\"=c d=\nENV =x\nENV a==\nCMD [\"a\" ]  \nSHELL   [ ]\nVOLUME [\"/a\", \"/b\"] \nEXPOSE 80/tcp  443\nCOPY [\"a\", 1] b\n";
    let expected = [
        "(from \"a\")",
        "(foo \"\")",
        "(healthcheck [\"--interval=1s\"] \"CMD\" \"a\" \"b\")",
        "(healthcheck \"NONE\")",
        "(healthcheck)",
        "(onbuild)",
        "(maintainer \"me <x@y>\")",
        "(stopsignal \"SIGKILL\")",
        "(arg \"a=1\" \"b\" \"\\\"c d\\\"=e\")",
        "(env \"a\" \"b c\" \"\")",
        "(label \"\\\"a b\\\"\" \"c\" \"=\" \"d\" \"\" \"=\")",
        "(env \"\" \"x\" \"=\")",
        "(env \"a\" \"=\" \"=\")",
        "(cmd \"a\")",
        "(shell)",
        "(volume \"/a\" \"/b\")",
        "(expose \"80/tcp\" \"443\")",
        // `["a", 1] b` is not JSON as a whole (text after the array), so: words
        "(copy \"[\\\"a\\\",\" \"1]\" \"b\")",
    ];
    let df = parser::parse(text).unwrap();
    assert_eq!(df.dump(), expected.join("\n"));
    assert!(df.children[2].json, "HEALTHCHECK exec form is JSON");
    assert!(df.children[14].json, "an empty JSON array is exec form");
    assert_eq!(df.children[1].keyword_original, "FOO");
}

#[test]
fn json_with_non_strings_is_an_error_only_when_it_parses() {
    // `["a", 1] b` is not valid JSON as a whole, so it is split into words (above); a
    // complete array with a number is an error
    let (line, message) = parse_error("FROM a\nCMD [\"a\", 1]\n");
    assert_eq!(line, 2);
    assert!(message.contains("arrays must be comprised of strings only"));
    // an overflowing number makes the JSON invalid, so it falls back to shell form
    assert_eq!(
        dump("FROM a\nCMD [\"a\", 1e999]\n"),
        "(from \"a\")\n(cmd \"[\\\"a\\\", 1e999]\")"
    );
}

#[test]
fn continuation_details() {
    // a comment inside a continuation is skipped; blanks after the escape are ignored
    assert_eq!(
        dump("FROM a\nRUN a \\ \t\n  # c\n  b\n"),
        "(from \"a\")\n(run \"a   b\")"
    );
    // an escaped escape is not a continuation
    assert_eq!(
        dump("FROM a\nRUN a \\\\\nRUN b\n"),
        "(from \"a\")\n(run \"a \\\\\\\\\")\n(run \"b\")"
    );
    // a lone escape on the first line starts a continuation
    assert_eq!(spans("\\\nFROM a\n"), [(1, 2)]);
    // continuation at end of file
    assert_eq!(dump("FROM a \\"), "(from \"a\")");
    assert_eq!(
        dump("FROM a\nLABEL a=b\\\n  c=d\n"),
        "(from \"a\")\n(label \"a\" \"b\" \"=\" \"c\" \"d\" \"=\")"
    );
}

#[test]
fn empty_continuation_warning() {
    let df = parser::parse("FROM a\nRUN x \\\n\n  y\n").unwrap();
    assert_eq!(df.warnings.len(), 1);
    let w = &df.warnings[0];
    assert_eq!(w.short, "Empty continuation line found in: RUN x   y");
    assert_eq!(
        w.detail,
        ["Empty continuation lines will become errors in a future release"]
    );
    assert_eq!(w.url, parser::EMPTY_CONTINUATION_URL);
    assert_eq!(w.span, LineSpan { start: 4, end: 4 });
}

#[test]
fn case_insensitive_keywords() {
    let df = parser::parse("from A\nrun <<EOF\nEOF\nCoPy <<EOF /x\nEOF\n").unwrap();
    assert_eq!(
        df.dump(),
        "(from \"A\")\n(run \"<<EOF\")\n(copy \"<<EOF\" \"/x\")"
    );
    assert_eq!(df.children[2].keyword, "copy");
    assert_eq!(df.children[2].keyword_original, "CoPy");
}

#[test]
fn flags_stop_at_double_dash_and_first_plain_word() {
    assert_eq!(
        dump("FROM a\nCOPY --from=b --chown=\"x y\" -- --c d\n"),
        "(from \"a\")\n(copy [\"--from=b\" \"--chown=x y\"] \"--c\" \"d\")"
    );
}

#[test]
fn negative_cases() {
    assert_eq!(parse_error("").1, "file with no instructions");
    assert_eq!(
        parse_error("# only\n\n# comments\n").1,
        "file with no instructions"
    );
    assert_eq!(
        parse_error("FROM a\nENV x\n"),
        (2, "ENV must have two arguments".into())
    );
    assert_eq!(
        parse_error("FROM a\nLABEL x\n").1,
        "LABEL must have two arguments"
    );
    assert_eq!(
        parse_error("FROM a\nENV a=b c\n").1,
        "Syntax error - can't find = in \"c\". Must be of the form: name=value"
    );
    assert_eq!(
        parse_error("# escape=x\nFROM a\n"),
        (1, "invalid escape token 'x' does not match ` or \\".into())
    );
    assert_eq!(
        parse_error("# escape=`\n# escape=`\nFROM a\n"),
        (2, "only one escape parser directive can be used".into())
    );
}

#[test]
fn line_length_limit() {
    let ok = format!("FROM a\nLABEL a={}\n", "b".repeat(65_535 - 8));
    assert!(parser::parse(&ok).is_ok());
    let long = format!("FROM a\nLABEL a={}\n", "b".repeat(65_536 - 8));
    assert_eq!(
        parse_error(&long),
        (
            2,
            "dockerfile line greater than max allowed size of 65535".into()
        )
    );
    // without a final newline the same limit holds
    let long_last = format!("FROM a\nLABEL a={}", "b".repeat(65_536 - 8));
    assert!(parser::parse(&long_last).is_err());
    // an earlier error wins, as in BuildKit
    let first = format!("# c\n{}\n", "b".repeat(70_000));
    assert_eq!(parse_error(&first).1, "file with no instructions");
    let heredoc = format!("FROM a\nRUN <<EOF\n{}\nEOF\n", "b".repeat(70_000));
    assert_eq!(parse_error(&heredoc).1, "unterminated heredoc");
}

#[test]
fn invalid_utf8_is_rejected_with_its_line() {
    let (line, message) = match parser::parse_bytes(b"FROM a\nRUN \xff\n") {
        Err(Error::Parse { line, message }) => (line, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(line, 2);
    assert!(message.contains("not valid UTF-8"), "{message}");
}

#[test]
fn dump_quotes_like_go() {
    assert_eq!(
        dump("FROM a\nRUN echo \"\t\u{7f}\u{a0}♥\"\n"),
        "(from \"a\")\n(run \"echo \\\"\\t\\x7f\\u00a0♥\\\"\")"
    );
}

#[test]
fn directives_struct() {
    let d = Directives::parse("# syntax=docker/dockerfile:1\n#check=skip=all\nFROM a\n").unwrap();
    assert_eq!(d.escape_char(), '\\');
    assert_eq!(d.syntax.unwrap().value, "docker/dockerfile:1");
    assert_eq!(d.check.unwrap().value, "skip=all");
    let d = Directives::parse("# escape=`\n").unwrap();
    assert_eq!(d.escape_char(), '`');
    let s = parser::detect_syntax("#!/bin/sh\n# syntax = x // y\n").unwrap();
    assert_eq!(
        (s.value.as_str(), s.cmdline.as_str(), s.span.start),
        ("x", "x // y", 2)
    );
}

#[test]
fn empty_and_odd_keywords_dump_like_buildkit() {
    // a lone continuation makes an instruction with an empty keyword
    assert_eq!(dump("\\\n"), "(\"\")");
    let df = parser::parse("FROM a\n\\\n \n").unwrap();
    assert_eq!(df.dump(), "(from \"a\")\n(\"\")");
    assert_eq!(df.warnings[0].short, "Empty continuation line found in: ");
    // only ASCII blanks split the keyword: `RUN\u{a0}` is an unknown instruction
    let df = parser::parse("\u{a0}FROM a\n\u{2028}RUN\u{a0} x\n").unwrap();
    assert_eq!(df.dump(), "(from \"a\")\n(run\u{a0} \"\")");
    assert_eq!(df.children[1].original, "RUN\u{a0} x");
}
