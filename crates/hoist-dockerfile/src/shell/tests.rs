//! Unit tests for the lexer's subtle corners, and the conformance tables about its unexported
//! pattern helpers.

use super::pattern::{glob_to_regex, reverse_pattern};
use super::*;

fn env(pairs: &[&str]) -> Env {
    Env::from_pairs(pairs)
}

fn word(input: &str, pairs: &[&str]) -> Result<String> {
    Lexer::default().process_word(input, &env(pairs))
}

fn words(input: &str, pairs: &[&str]) -> Vec<String> {
    Lexer::default().process_words(input, &env(pairs)).unwrap()
}

fn err(input: &str, pairs: &[&str]) -> String {
    word(input, pairs).unwrap_err().to_string()
}

#[test]
fn errors_read_like_buildkit() {
    assert_eq!(
        err("he${PWD", &[]),
        "failed to process \"he${PWD\": unsupported modifier (\u{fffd}) in substitution"
    );
    assert_eq!(
        err("${aaa:-bbb", &[]),
        "failed to process \"${aaa:-bbb\": syntax error: missing '}'"
    );
    assert_eq!(
        err("${", &[]),
        "failed to process \"${\": syntax error: missing '}'"
    );
    assert_eq!(
        err("${}", &[]),
        "failed to process \"${}\": syntax error: bad substitution"
    );
    assert_eq!(
        err("${X:=1}", &[]),
        "failed to process \"${X:=1}\": unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        err("${X:#1}", &[]),
        "failed to process \"${X:#1}\": unsupported modifier (:#) in substitution"
    );
    assert_eq!(
        err("${X//a}", &[]),
        "failed to process \"${X//a}\": syntax error: missing '/' in ${}"
    );
    assert_eq!(
        err("'a", &[]),
        "failed to process \"'a\": unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(
        err("\"a\tb", &[]),
        "failed to process \"\\\"a\\tb\": unexpected end of statement while looking for matching double-quote"
    );
    assert_eq!(
        err("${X?}", &[]),
        "failed to process \"${X?}\": X: is not allowed to be unset"
    );
    assert_eq!(
        err("${X:?}", &["X="]),
        "failed to process \"${X:?}\": X: is not allowed to be empty"
    );
    assert_eq!(
        err("${X:?no $Y}", &["Y=y"]),
        "failed to process \"${X:?no $Y}\": X: no y"
    );
    assert_eq!(
        err("${X#a\\b}", &["X=ab"]),
        "failed to process \"${X#a\\\\b}\": invalid pattern (a\\b) in substitution: invalid escape '\\b'"
    );
}

#[test]
fn nested_errors_keep_their_own_reason() {
    // The inner `?` fails while the outer word still has its `}`: its reason comes through.
    assert_eq!(
        err("${A:-${B:?gone}}", &[]),
        "failed to process \"${A:-${B:?gone}}\": B: gone"
    );
    // When the input ran out the reason becomes "missing '}'".
    assert_eq!(
        err("${A:-'x}", &[]),
        "failed to process \"${A:-'x}\": syntax error: missing '}'"
    );
}

#[test]
fn dollar_edge_cases() {
    assert_eq!(word("$", &[]).unwrap(), "$");
    assert_eq!(word("a$", &[]).unwrap(), "a$");
    assert_eq!(word("$ $.", &[]).unwrap(), "$ $.");
    assert_eq!(word("$'a'", &[]).unwrap(), "$a");
    assert_eq!(word("$0abc", &["0=zero"]).unwrap(), "zeroabc");
    assert_eq!(word("$12x", &["12=twelve"]).unwrap(), "twelvex");
    assert_eq!(word("$한국", &["한국=k"]).unwrap(), "k");
    assert_eq!(word("${#}", &[]).unwrap(), "");
    assert!(word("${#X}", &["X=abc"]).is_err());
    assert_eq!(word("\"$\"", &[]).unwrap(), "$");
}

#[test]
fn modifier_words_are_expanded_even_when_unused() {
    let processed = Lexer::default()
        .process_word_with_matches("${A:-$B}${A:+$C}", &env(&["A=a"]))
        .unwrap();
    assert_eq!(processed.result, "a");
    assert_eq!(processed.matched, BTreeSet::from(["A".to_owned()]));
    assert_eq!(
        processed.unmatched,
        BTreeSet::from(["B".to_owned(), "C".to_owned()])
    );
}

#[test]
fn quoted_words_inside_modifiers() {
    assert_eq!(word("${X:-\"a}b\"}", &[]).unwrap(), "a}b");
    assert_eq!(word("${X:-'a b'}", &[]).unwrap(), "a b");
    assert_eq!(word("${X:-a\\}b}", &[]).unwrap(), "a}b");
}

#[test]
fn patterns() {
    let e = &["V=a/b/c.tar.gz"];
    assert_eq!(word("${V#*/}", e).unwrap(), "b/c.tar.gz");
    assert_eq!(word("${V##*/}", e).unwrap(), "c.tar.gz");
    assert_eq!(word("${V%.*}", e).unwrap(), "a/b/c.tar");
    assert_eq!(word("${V%%.*}", e).unwrap(), "a/b/c");
    assert_eq!(word("${V/\\//-}", e).unwrap(), "a-b/c.tar.gz");
    assert_eq!(word("${V//\\//-}", e).unwrap(), "a-b-c.tar.gz");
    assert_eq!(word("${V//?/x}", &["V=한국"]).unwrap(), "xx");
    assert_eq!(word("${V%국}", &["V=한국"]).unwrap(), "한");
    // The doubled character is looked for after expansion.
    assert_eq!(word("${V#$H}", &["V=aab", "H=#*a"]).unwrap(), "b");
    assert_eq!(word("${V#*a}", &["V=aab"]).unwrap(), "ab");
    // `$0` in a replace-all replacement is the match (Go's template expansion).
    assert_eq!(word("${V//b/<$R>}", &["V=abc", "R=$0"]).unwrap(), "a<b>c");
    assert_eq!(word("${V/b/<$R>}", &["V=abc", "R=$0"]).unwrap(), "a<$0>c");
    // Unset variables are empty values.
    assert_eq!(word("${V%x}${V/a/b}", &[]).unwrap(), "");
}

#[test]
fn escape_token_backtick() {
    let lexer = Lexer::new('`');
    let e = env(&["PWD=/home"]);
    assert_eq!(lexer.process_word("a`$PWD", &e).unwrap(), "a$PWD");
    assert_eq!(
        lexer.process_word("C:\\dir\\$PWD", &e).unwrap(),
        "C:\\dir\\/home"
    );
    assert_eq!(lexer.process_word("\"a`\"b\\\"", &e).unwrap(), "a\"b\\");
    assert_eq!(lexer.process_word("a``", &e).unwrap(), "a`");
    assert_eq!(
        lexer.process_words("a` b c", &e).unwrap(),
        vec!["a b".to_owned(), "c".to_owned()]
    );
}

#[test]
fn word_splitting() {
    assert_eq!(words("a  b\t\nc ", &[]), ["a", "b", "c"]);
    assert_eq!(words("\"\" a ''", &[]), ["a"]);
    assert_eq!(words("a\\ b", &[]), ["a b"]);
    assert_eq!(words("$V", &["V= x  y "]), ["x", "y"]);
    assert_eq!(words("\"$V\"", &["V= x "]), [" x "]);
    assert!(words("", &[]).is_empty());
    // Whitespace from a variable splits; the \u{a0} no-break space is whitespace too.
    assert_eq!(words("a${V}b", &["V=1\u{a0}2"]), ["a1", "2b"]);
}

#[test]
fn heredoc_markers_keep_their_blanks() {
    assert_eq!(words("cat << EOF", &[]), ["cat", "<< EOF"]);
    assert_eq!(words("a < b", &[]), ["a", "<", "b"]);
    assert_eq!(word("cat <<\tEOF", &[]).unwrap(), "cat <<\tEOF");
}

#[test]
fn words_lose_their_start_before_a_nested_modifier_as_in_buildkit() {
    // BuildKit shares one word buffer between nested scans, so the text gathered before
    // `${X:-...}` is dropped from the split words (not from the result).
    assert_eq!(words("hello${X:-a}", &[]), ["a"]);
    assert_eq!(words("x a\"${X:-b}\"c", &[]), ["x", "bc"]);
    assert_eq!(word("hello${X:-a}", &[]).unwrap(), "helloa");
    // A plain ${X} does not scan a nested word and keeps the prefix.
    assert_eq!(words("hello${X}", &["X=a"]), ["helloa"]);
}

#[test]
fn raw_quotes_and_escapes() {
    let e = env(&["A=1"]);
    let raw_quotes = Lexer::with_options(
        '\\',
        Options {
            raw_quotes: true,
            ..Options::default()
        },
    );
    assert_eq!(
        raw_quotes.process_word("'a b'\"$A\"", &e).unwrap(),
        "'a b'\"1\""
    );
    assert_eq!(
        raw_quotes.process_words("x 'a b' \"c\"", &e).unwrap(),
        ["x", "'a b'", "\"c\""]
    );

    let raw_escapes = Lexer::with_options(
        '\\',
        Options {
            raw_escapes: true,
            ..Options::default()
        },
    );
    assert_eq!(raw_escapes.process_word("a\\ b\\", &e).unwrap(), "a\\ b\\");
    assert_eq!(raw_escapes.process_words("a\\ b", &e).unwrap(), ["a\\ b"]);
    assert_eq!(raw_escapes.process_word("\"\\$A\"", &e).unwrap(), "\\$A");
    // An escape that escapes nothing inside double quotes is written twice (BuildKit).
    assert_eq!(raw_escapes.process_word("\"\\a\"", &e).unwrap(), "\\\\a");
    // Patterns always see their escapes, whatever the option says.
    assert_eq!(word("${V#\\*}", &["V=*x"]).unwrap(), "x");
}

#[test]
fn skip_process_quotes() {
    let lexer = Lexer::with_options(
        '\\',
        Options {
            skip_process_quotes: true,
            ..Options::default()
        },
    );
    let e = env(&["A=1"]);
    assert_eq!(lexer.process_word("'$A' \"$A\"", &e).unwrap(), "'1' \"1\"");
    assert_eq!(lexer.process_words("'a b'", &e).unwrap(), ["'a", "b'"]);
    assert_eq!(
        lexer.process_word("'unterminated", &e).unwrap(),
        "'unterminated"
    );
}

#[test]
fn skip_unset_env() {
    let lexer = Lexer::with_options(
        '\\',
        Options {
            skip_unset_env: true,
            ..Options::default()
        },
    );
    let e = env(&["A=1"]);
    let cases = [
        ("$A $B", "1 $B"),
        ("${A} ${B}", "1 ${B}"),
        ("${B:-$A}", "${B:-1}"),
        ("${B-x}", "${B-x}"),
        ("${B:=x}", "${B:=x}"),
        ("${B:?x}", "${B:?x}"),
        ("${B##x}", "${B##x}"),
        ("${B//x/y}", "${B/x/y}"),
        ("${A//1/y}", "y"),
    ];
    for (input, expected) in cases {
        assert_eq!(lexer.process_word(input, &e).unwrap(), expected, "{input}");
    }
    assert!(lexer.process_word("${A:=x}", &e).is_err());
}

#[test]
fn byte_order_mark_at_the_start_is_dropped() {
    assert_eq!(word("\u{feff}a$A", &["A=1"]).unwrap(), "a1");
    assert_eq!(word("a\u{feff}", &[]).unwrap(), "a\u{feff}");
}

#[test]
fn lookups_through_maps() {
    let map = std::collections::BTreeMap::from([("A".to_owned(), "1".to_owned())]);
    assert_eq!(Lexer::default().process_word("$A$B", &map).unwrap(), "1");
    let hash = std::collections::HashMap::from([("A".to_owned(), String::new())]);
    assert_eq!(
        Lexer::default()
            .process_word("${A-x}${A:-y}", &hash)
            .unwrap(),
        "y"
    );
}

/// Feeds every prefix of tricky words, and short words over a small alphabet of special
/// characters, under every option combination: nothing may panic, and errors must name the
/// word.
#[test]
fn malformed_input_never_panics() {
    let seeds = [
        "${A:-${B:+'x\"y'}}\\",
        "${V//\\//\\}}${V%%\\**\\*}${V#?\\?}",
        "\"a\\\"$A'${A:?m$A}'\"<< x",
        "${A/${B:-/}/${C}}${:}${{}${!}$@$001",
        "안'녕$KOREAN${KOREAN%어}\\",
    ];
    let alphabet = [
        '$', '{', '}', ':', '-', '+', '?', '#', '%', '/', '\\', '\'', '"', '*', 'A', ' ', '<', '`',
    ];
    let e = env(&["A=a*b/c", "B=", "KOREAN=한국어", "V=x\\y}"]);
    let mut inputs: Vec<String> = Vec::new();
    for seed in seeds {
        for (i, _) in seed.char_indices() {
            inputs.push(seed[..i].to_owned());
            inputs.push(seed[i..].to_owned());
        }
        inputs.push(seed.to_owned());
    }
    // All words of up to three characters over the alphabet.
    let mut short = vec![String::new()];
    for _ in 0..3 {
        let mut longer = Vec::new();
        for prefix in &short {
            for ch in alphabet {
                longer.push(format!("{prefix}{ch}"));
            }
        }
        inputs.extend(longer.iter().cloned());
        short = longer;
    }
    for escape in ['\\', '`', '$', '"'] {
        for bits in 0..16u8 {
            let options = Options {
                raw_quotes: bits & 1 != 0,
                raw_escapes: bits & 2 != 0,
                skip_process_quotes: bits & 4 != 0,
                skip_unset_env: bits & 8 != 0,
            };
            let lexer = Lexer::with_options(escape, options);
            for input in &inputs {
                if let Err(e) = lexer.process_word_with_matches(input, &e) {
                    assert!(e.to_string().starts_with("failed to process \""), "{e}");
                }
            }
        }
    }
}

fn json_tables() -> Option<serde_json::Value> {
    let dir = hoist_testkit::conformance_dir("buildkit-shell-lexer")?;
    let text = std::fs::read_to_string(dir.join("process-word-with-matches.json")).unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

/// `internal_pattern_to_regex` and `internal_reverse_pattern`: BuildKit's unexported helpers,
/// which our `pattern` module mirrors (same regex text, Go and Rust syntax agree here).
#[test]
fn internal_pattern_helpers_conformance() {
    let Some(tables) = json_tables() else {
        return;
    };
    let mut total = 0;
    let mut failures = Vec::new();
    let table = &tables["internal_pattern_to_regex"];
    for case in table["valid"].as_array().unwrap() {
        total += 1;
        let pattern = case["pattern"].as_str().unwrap();
        let got = glob_to_regex(pattern, true, true);
        if got.as_deref().ok() != case["regex"].as_str() {
            failures.push(format!("  pattern_to_regex {pattern:?}: got {got:?}"));
        }
    }
    for case in table["invalid"].as_array().unwrap() {
        total += 1;
        let pattern = case.as_str().unwrap();
        let got = glob_to_regex(pattern, true, true);
        if got.is_ok() {
            failures.push(format!(
                "  pattern_to_regex {pattern:?}: expected an error, got {got:?}"
            ));
        }
    }
    for case in tables["internal_reverse_pattern"]["cases"]
        .as_array()
        .unwrap()
    {
        total += 1;
        let pattern = case["pattern"].as_str().unwrap();
        let got = reverse_pattern(pattern);
        if Some(got.as_str()) != case["reversed"].as_str() {
            failures.push(format!("  reverse_pattern {pattern:?}: got {got:?}"));
        }
    }
    eprintln!(
        "internal pattern helpers: {}/{total} passed",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
