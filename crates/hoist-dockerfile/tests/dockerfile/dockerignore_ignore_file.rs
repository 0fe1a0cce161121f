//! Reading `.dockerignore` text (`read_ignore_file`) and choosing the ignore file for a
//! Dockerfile (`ignore_file_candidates`).

use hoist_dockerfile::dockerignore::{
    ignore_file_candidates, read_ignore_file, IgnoreFileCandidate, IgnoreFileLocation,
    PatternMatcher,
};
use hoist_dockerfile::Error;

#[test]
fn comments_blank_lines_and_trimming() {
    let text =
        "# comment\n\n   \nnode_modules\n  spaced  \n  # not a comment once indented\n#\tcomment\n";
    assert_eq!(
        read_ignore_file(text).unwrap(),
        ["node_modules", "spaced", "# not a comment once indented"]
    );
}

#[test]
fn crlf_line_endings_and_a_bom_are_dropped() {
    let text = "\u{feff}first\r\n/second\r\n!third\r\nlast";
    assert_eq!(
        read_ignore_file(text).unwrap(),
        ["first", "second", "!third", "last"]
    );
    // A BOM only counts at the very start.
    assert_eq!(
        read_ignore_file("a\n\u{feff}b").unwrap(),
        ["a", "\u{feff}b"]
    );
}

#[test]
fn patterns_are_cleaned_and_made_relative() {
    let text = "/abs/path/\n./here\na//b/./c/..\n../up\n/\n!  /neg/./x/\n!\n! \n/**/*.tmp\n";
    assert_eq!(
        read_ignore_file(text).unwrap(),
        ["abs/path", "here", "a/b", "../up", "/", "!neg/x", "!", "!", "**/*.tmp"]
    );
}

#[test]
fn empty_text_gives_no_patterns() {
    assert!(read_ignore_file("").unwrap().is_empty());
    assert!(read_ignore_file("\n\n# only comments\n")
        .unwrap()
        .is_empty());
}

#[test]
fn read_patterns_feed_the_matcher() {
    let patterns = read_ignore_file("*\n!/src\n/src/**/*.snap\n").unwrap();
    let pm = PatternMatcher::new(&patterns).unwrap();
    assert!(pm.matches_or_parent_matches("README.md").unwrap());
    assert!(!pm.matches_or_parent_matches("src/lib.rs").unwrap());
    assert!(pm.matches_or_parent_matches("src/a/b.snap").unwrap());
}

#[test]
fn a_bare_exclamation_mark_is_read_then_refused_by_the_matcher() {
    let patterns = read_ignore_file("ok\n!\n").unwrap();
    assert_eq!(patterns, ["ok", "!"]);
    assert!(matches!(
        PatternMatcher::new(&patterns),
        Err(Error::Pattern { .. })
    ));
}

#[test]
fn a_line_of_64_kib_is_refused_as_upstream_scanner_does() {
    let longest = "a".repeat(65_535);
    assert_eq!(read_ignore_file(&longest).unwrap(), vec![longest.clone()]);
    assert_eq!(read_ignore_file(&format!("{longest}\n")).unwrap().len(), 1);

    let too_long = format!("ok\n{}\n", "b".repeat(65_536));
    let err = read_ignore_file(&too_long).unwrap_err();
    assert!(matches!(err, Error::IgnoreFile { line: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("line 2"), "{err}");

    // The `\r` of a CRLF line and a leading BOM count towards the limit.
    let with_cr = format!("{longest}\r\n");
    assert!(read_ignore_file(&with_cr).is_err());
    let with_bom = format!("\u{feff}{}", "c".repeat(65_533));
    assert!(read_ignore_file(&with_bom).is_err());
}

fn paths(candidates: &[IgnoreFileCandidate]) -> Vec<(&str, IgnoreFileLocation)> {
    candidates
        .iter()
        .map(|c| (c.path.as_str(), c.location))
        .collect()
}

#[test]
fn the_dockerfiles_own_ignore_file_comes_before_the_contexts() {
    use IgnoreFileLocation::{BesideDockerfile, ContextRoot};
    assert_eq!(
        paths(&ignore_file_candidates("Dockerfile")),
        [
            ("Dockerfile.dockerignore", BesideDockerfile),
            (".dockerignore", ContextRoot)
        ]
    );
    assert_eq!(
        paths(&ignore_file_candidates("")),
        [
            ("Dockerfile.dockerignore", BesideDockerfile),
            (".dockerignore", ContextRoot)
        ]
    );
    assert_eq!(
        paths(&ignore_file_candidates("./build//app.Dockerfile")),
        [
            ("build/app.Dockerfile.dockerignore", BesideDockerfile),
            (".dockerignore", ContextRoot)
        ]
    );
    assert_eq!(
        paths(&ignore_file_candidates("/elsewhere/Containerfile")),
        [
            ("/elsewhere/Containerfile.dockerignore", BesideDockerfile),
            (".dockerignore", ContextRoot)
        ]
    );
}

#[test]
fn a_dockerfile_from_stdin_only_has_the_contexts_ignore_file() {
    assert_eq!(
        paths(&ignore_file_candidates("-")),
        [(".dockerignore", IgnoreFileLocation::ContextRoot)]
    );
}
