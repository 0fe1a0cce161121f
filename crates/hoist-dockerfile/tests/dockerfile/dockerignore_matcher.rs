//! Behaviour of `dockerignore::PatternMatcher` beyond the upstream tables: anchoring,
//! directory and exclusion rules, error reporting, and robustness against garbage.

use hoist_dockerfile::dockerignore::{MatchInfo, PatternMatcher};
use hoist_dockerfile::Error;

fn ignored(patterns: &[&str], path: &str) -> bool {
    PatternMatcher::new(patterns)
        .unwrap()
        .matches_or_parent_matches(path)
        .unwrap()
}

#[test]
fn patterns_are_anchored_at_the_context_root_unlike_gitignore() {
    assert!(ignored(&["foo"], "foo"));
    assert!(!ignored(&["foo"], "a/foo"));
    assert!(ignored(&["**/foo"], "a/b/foo"));
    // The matcher keeps a leading `/` (only `read_ignore_file` removes it).
    assert!(!ignored(&["/foo"], "foo"));
    assert!(ignored(&["/foo"], "/foo"));
}

#[test]
fn a_matching_directory_ignores_everything_below_it() {
    assert!(ignored(&["node_modules"], "node_modules/a/b/c.js"));
    assert!(ignored(&["docs/"], "docs/guide/intro.md"));
    assert!(!ignored(&["docs"], "documents/x"));
}

#[test]
fn docker_documentation_examples() {
    let patterns = ["*/temp*", "*/*/temp*", "temp?"];
    assert!(ignored(&patterns, "somedir/temporary.txt"));
    assert!(ignored(&patterns, "somedir/temp"));
    assert!(ignored(&patterns, "somedir/subdir/temporary.txt"));
    assert!(ignored(&patterns, "tempa"));
    assert!(ignored(&patterns, "tempb/inside"));
    assert!(!ignored(&patterns, "temporary.txt"));
    assert!(!ignored(&patterns, "a/b/c/temp"));
}

#[test]
fn the_last_matching_pattern_decides() {
    let patterns = ["*.md", "!README*.md", "README-secret.md"];
    assert!(ignored(&patterns, "CHANGES.md"));
    assert!(!ignored(&patterns, "README.md"));
    assert!(ignored(&patterns, "README-secret.md"));
    // An exclusion before any inclusion changes nothing.
    assert!(ignored(&["!a.go", "*.go"], "a.go"));
}

#[test]
fn exclusions_reinclude_below_an_ignored_directory() {
    let patterns = ["**", "!src", "src/*.tmp"];
    assert!(!ignored(&patterns, "src/main.rs"));
    assert!(ignored(&patterns, "src/x.tmp"));
    assert!(ignored(&patterns, "target/debug"));
}

#[test]
fn exclusions_flag_and_patterns_are_reported() {
    let pm = PatternMatcher::new(["  docs/ ", "", "!docs//README.md", "\t"]).unwrap();
    assert!(pm.exclusions());
    let shown: Vec<String> = pm.patterns().iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["docs", "!docs/README.md"]);
    assert_eq!(pm.patterns()[1].as_str(), "docs/README.md");
    assert!(pm.patterns()[1].is_exclusion());
    assert!(!PatternMatcher::new(["a", "b"]).unwrap().exclusions());
}

#[test]
fn regexp_metacharacters_are_literal() {
    assert!(ignored(&["a(b)c/def"], "a(b)c/def"));
    assert!(ignored(&["a.|)$(}+{bc"], "a.|)$(}+{bc"));
    assert!(!ignored(&["abc.def"], "abcXdef"));
    assert!(ignored(&["v1.2+build/*.whl"], "v1.2+build/x-1.0.whl"));
}

#[test]
fn classes_escapes_and_unicode() {
    assert!(ignored(&["file[0-9].txt"], "file7.txt"));
    // `!` does not negate a class (only `^` does): `[!0-9]` holds `!` and the digits.
    assert!(ignored(&["file[!0-9].txt"], "file7.txt"));
    assert!(ignored(&["file[!0-9].txt"], "file!.txt"));
    assert!(ignored(&["file[^0-9].txt"], "fileA.txt"));
    assert!(ignored(&[r"star\*"], "star*"));
    assert!(!ignored(&[r"star\*"], "starry"));
    assert!(ignored(&["?é?"], "aéb"));
    assert!(ignored(&["日本/*"], "日本/語"));
}

#[test]
fn a_bare_exclamation_mark_is_an_error_naming_it() {
    let err = PatternMatcher::new(["ok", "  !  "]).unwrap_err();
    match &err {
        Error::Pattern { pattern, message } => {
            assert_eq!(pattern, "!");
            assert!(message.contains("exclusion"), "{message}");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn malformed_globs_are_rejected_up_front_with_the_pattern_named() {
    for bad in ["[", "a[", "[^bc", "[]a]", "[-]", "[a-b-c]", "dir/x\\"] {
        let err = PatternMatcher::new(["fine", bad]).unwrap_err();
        let text = err.to_string();
        match err {
            Error::Pattern { pattern, .. } => assert_eq!(pattern, bad),
            other => panic!("{bad:?}: unexpected error {other:?}"),
        }
        assert!(text.contains(&format!("{bad:?}")), "{text}");
    }
}

#[test]
fn a_class_the_regex_engine_refuses_errors_each_time_it_is_consulted() {
    let pm = PatternMatcher::new(["[Local-Only]/"]).unwrap();
    for _ in 0..3 {
        let err = pm.matches_or_parent_matches("x").unwrap_err();
        match &err {
            Error::Pattern { pattern, message } => {
                assert_eq!(pattern, "[Local-Only]/");
                assert!(message.contains("l-O"), "{message}");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }
    assert!(pm.matches("x").is_err());
    assert!(pm
        .matches_using_parent_results("x", &MatchInfo::default())
        .is_err());
}

#[test]
fn a_malformed_pattern_never_consulted_never_errors() {
    // An exclusion is only consulted once something is ignored.
    let pm = PatternMatcher::new(["!x[Local-Only]"]).unwrap();
    assert!(!pm.matches_or_parent_matches("anything").unwrap());
}

#[test]
fn match_info_from_another_matcher_is_refused() {
    let one = PatternMatcher::new(["a"]).unwrap();
    let two = PatternMatcher::new(["a", "b"]).unwrap();
    let (_, info) = one
        .matches_using_parent_results("a", &MatchInfo::default())
        .unwrap();
    let err = two.matches_using_parent_results("a/x", &info).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MatchInfoMismatch {
                expected: 2,
                found: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn walking_with_match_info_agrees_with_matching_each_path() {
    let patterns = [
        "**/*.log",
        "build",
        "!build/keep",
        "docs/*/draft*",
        "!docs/a/draft-ok",
    ];
    let pm = PatternMatcher::new(patterns).unwrap();
    let tree = [
        "app.log",
        "src/x.log",
        "src/main.rs",
        "build",
        "build/out",
        "build/keep",
        "build/keep/file",
        "docs",
        "docs/a",
        "docs/a/draft1",
        "docs/a/draft-ok",
        "docs/a/final",
    ];
    for path in tree {
        let mut info = MatchInfo::default();
        let elements: Vec<&str> = path.split('/').collect();
        for n in 1..elements.len() {
            let parent = elements[..n].join("/");
            info = pm.matches_using_parent_results(&parent, &info).unwrap().1;
        }
        let (walked, _) = pm.matches_using_parent_results(path, &info).unwrap();
        let direct = pm.matches_or_parent_matches(path).unwrap();
        assert_eq!(walked, direct, "{path}");
    }
    assert!(pm.matches_or_parent_matches("build/out").unwrap());
    assert!(!pm.matches_or_parent_matches("build/keep/file").unwrap());
    assert!(pm.matches_or_parent_matches("docs/a/draft1").unwrap());
    assert!(!pm.matches_or_parent_matches("docs/a/draft-ok").unwrap());
}

/// A small deterministic generator, so the garbage is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[(self.next() as usize) % from.len()]
    }
}

fn exercise(pm: &PatternMatcher) {
    for path in ["", ".", "/", "a", "a/b", "a/b/", "[x]/y", "é/\\/*", "a\nb"] {
        for result in [
            pm.matches(path),
            pm.matches_or_parent_matches(path),
            pm.matches_using_parent_result(path, true),
            pm.matches_using_parent_results(path, &MatchInfo::default())
                .map(|(m, _)| m),
        ] {
            if let Err(err) = result {
                assert!(matches!(err, Error::Pattern { .. }), "{err:?}");
            }
        }
    }
}

#[test]
fn garbage_and_truncated_patterns_error_cleanly_and_never_panic() {
    let seeds = [
        "**/dir2/**",
        "a[b-d]e",
        "a[^b-d]e/**/x?y",
        r"[\]a]",
        r"[x\-]",
        r"a\*b",
        "[[:alpha:]][[:^digit:]]",
        r"\Qa.b\E",
        r"x\d\w\s\pL\PN",
        r"\101\x41\n\t",
        "[a&&b][--/][[]",
        "!**/*.txt**",
        "a.|)$(}+{bc",
        "[Local-Only]/",
    ];
    // Every prefix of every seed, cut at each character boundary.
    for seed in seeds {
        for (at, _) in seed.char_indices().chain([(seed.len(), ' ')]) {
            let cut = &seed[..at];
            match PatternMatcher::new([cut]) {
                Ok(pm) => exercise(&pm),
                Err(err) => assert!(matches!(err, Error::Pattern { .. }), "{cut:?}: {err:?}"),
            }
        }
    }
    // Random concatenations of pattern syntax.
    let atoms = [
        "*", "**", "?", "[", "]", "^", "!", "-", "\\", "/", "a", "é", "[:", ":]", "\\Q", "\\E",
        "\\x", "\\p", "\\1", "(", ")", "{", "}", "$", ".", "|", "+", "&&", "--", "~~", " ", "\n",
    ];
    let mut rng = Lcg(0x5eed);
    for _ in 0..3000 {
        let len = 1 + (rng.next() % 8) as usize;
        let pattern: String = (0..len).map(|_| rng.pick(&atoms)).collect();
        match PatternMatcher::new([pattern.as_str()]) {
            Ok(pm) => exercise(&pm),
            Err(err) => assert!(matches!(err, Error::Pattern { .. }), "{pattern:?}: {err:?}"),
        }
    }
}

#[test]
fn a_byte_order_mark_before_a_pattern_is_treated_as_upstream_does() {
    // Go's text/scanner skips a leading BOM when writing the regular expression...
    assert!(ignored(&["\u{feff}*.go"], "main.go"));
    // ...but an exact pattern keeps it, and a `**` suffix is cut two bytes in.
    assert!(!ignored(&["\u{feff}abc"], "abc"));
    assert!(ignored(&["\u{feff}abc"], "\u{feff}abc"));
    assert!(ignored(&["\u{feff}**x"], "dir/\u{feff}**x"));
}
