//! Lexical path cleaning with Go's `path/filepath` rules (Unix separators), which
//! patternmatcher applies to every pattern and the ignore-file reader to every line.
//!
//! - [`clean`] is Go's `filepath.Clean`: collapse `//`, drop `.` elements, resolve `..`
//!   lexically (a rooted path cannot climb above `/`), drop a trailing `/`, and turn an
//!   empty result into `.`.
//! - [`dir`] is Go's `filepath.Dir`: everything before the last `/`, cleaned.
//!
//! Both work on text only and never touch the file system.

/// Go's `filepath.Clean` for `/`-separated paths.
///
/// `"a//b/./c/.."` → `"a/b"`, `"/../x"` → `"/x"`, `"../x/"` → `"../x"`, `""` → `"."`.
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut kept: Vec<&str> = Vec::new();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => match kept.last() {
                // `..` elements only ever sit at the bottom of the stack, so a top that is
                // not `..` can be removed.
                Some(&last) if last != ".." => {
                    kept.pop();
                }
                // A rooted path cannot climb above `/`: the `..` is dropped.
                _ if rooted => {}
                _ => kept.push(".."),
            },
            name => kept.push(name),
        }
    }
    let joined = kept.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir` for `/`-separated paths: the path without its last element,
/// cleaned. `"a/b"` → `"a"`, `"a/b/"` → `"a/b"`, `"a"` → `"."`, `"/a"` → `"/"`.
pub(crate) fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(slash) => clean(&path[..=slash]),
        None => ".".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{clean, dir};

    #[test]
    fn clean_follows_go_filepath_clean() {
        let cases = [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/..", "/"),
            ("/../abc", "/abc"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("abc/./def", "abc/def"),
            ("./abc/def", "abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
            ("**/", "**"),
            ("!/", "!"),
            ("!/foo", "!/foo"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn dir_follows_go_filepath_dir() {
        let cases = [
            ("", "."),
            ("file", "."),
            ("dir/file", "dir"),
            ("dir/file/", "dir/file"),
            ("/", "/"),
            ("/a", "/"),
            ("a/b/c", "a/b"),
            ("a//b", "a"),
        ];
        for (input, want) in cases {
            assert_eq!(dir(input), want, "dir({input:?})");
        }
    }
}
