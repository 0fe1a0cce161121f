//! Go's `strconv.ParseBool`, as BuildKit reads boolean `--mount` options and build
//! arguments such as `BUILDKIT_INLINE_CACHE` and `BUILDKIT_CONTEXT_KEEP_GIT_DIR`.

/// `Some(true)` for `1`, `t`, `T`, `TRUE`, `true`, `True`; `Some(false)` for their false
/// counterparts; `None` for anything else.
pub fn parse(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_what_go_reads() {
        assert_eq!(parse("T"), Some(true));
        assert_eq!(parse("False"), Some(false));
        assert_eq!(parse("yes"), None);
        assert_eq!(parse("tRue"), None);
    }
}
