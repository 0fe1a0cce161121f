//! Image config helpers: the empty image, history entries and the Go formatting BuildKit's
//! `created_by` texts use, and POSIX path normalisation for WORKDIR and COPY destinations.

use hoist_dockerfile::shell::go_quote;
use hoist_oci::{History, ImageConfig, Platform};

/// The comment BuildKit puts on every history entry it writes.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// BuildKit's default `PATH` for Linux (and every non-Windows OS).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The config of `FROM scratch` (BuildKit's `emptyImage`).
pub(crate) fn empty_image(platform: &Platform) -> ImageConfig {
    let mut config = ImageConfig::new(platform);
    config.rootfs.kind = "layers".to_string();
    config.config.working_dir = "/".to_string();
    if platform.os != "windows" {
        config.config.env = vec![format!("PATH={DEFAULT_PATH}")];
    }
    config
}

/// The shell of shell-form commands when no `SHELL` was given.
pub(crate) fn default_shell(os: &str) -> Vec<String> {
    if os == "windows" {
        vec!["cmd".into(), "/S".into(), "/C".into()]
    } else {
        vec!["/bin/sh".into(), "-c".into()]
    }
}

/// `args` run through the image's shell (BuildKit's `withShell`).
pub(crate) fn with_shell(config: &ImageConfig, args: &[String]) -> Vec<String> {
    let mut shell = if config.config.shell.is_empty() {
        default_shell(&config.os)
    } else {
        config.config.shell.clone()
    };
    shell.push(args.join(" "));
    shell
}

/// Appends a history entry; `with_buildkit_suffix` adds ` # buildkit` as BuildKit does for
/// steps that change the filesystem state (RUN, COPY, ADD).
pub(crate) fn commit(
    config: &mut ImageConfig,
    created_by: String,
    created: Option<String>,
    with_layer: bool,
    with_buildkit_suffix: bool,
) {
    let created_by = if with_buildkit_suffix {
        format!("{created_by} # buildkit")
    } else {
        created_by
    };
    config.history.push(History {
        created,
        created_by: Some(created_by),
        author: None,
        comment: Some(HISTORY_COMMENT.to_string()),
        empty_layer: !with_layer,
    });
}

/// Sets `key=value` in an env list, replacing an existing entry in place.
pub(crate) fn add_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// Go's `fmt.Sprintf("%q", []string{...})`: `["a" "b"]`.
pub(crate) fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `fmt.Sprintf("%v", []string{...})`: `[a b]`.
pub(crate) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration.String()`, as the history texts print healthcheck timings.
pub(crate) use hoist_dockerfile::go_duration::format as go_duration;

/// Unix seconds as RFC 3339 in UTC (`2024-01-02T03:04:05Z`), as Go's `time.Time` marshals.
pub(crate) fn rfc3339(secs: i64) -> String {
    hoist_oci::format_rfc3339(secs, 0)
}

/// Go's `path.Clean`.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Join` of two parts.
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => clean(&format!("{a}/{b}")),
    }
}

/// BuildKit's `system.NormalizePath` for Unix paths: `new` resolved against `parent` and
/// cleaned; with `keep_slash` a trailing `/` (or `/.`) of `new` is kept.
pub(crate) fn normalize_path(parent: &str, new: &str, keep_slash: bool) -> String {
    let parent = if parent.is_empty() { "/" } else { parent };
    let mut out = if new.starts_with('/') {
        clean(new)
    } else {
        join(parent, new)
    };
    if keep_slash {
        if new.ends_with("/.") {
            out.push_str(if out == "/" { "." } else { "/." });
        } else if new.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        }
    }
    out
}

/// BuildKit's `pathRelativeToWorkingDir`: a COPY destination resolved against the working
/// directory, trailing slash kept.
pub(crate) fn relative_to_workdir(dir: &str, dest: &str) -> String {
    if dest.starts_with('/') {
        return normalize_path("/", dest, true);
    }
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    normalize_path(dir, dest, true)
}

/// BuildKit's `NormalizeWorkdir` for Unix: an absolute path is kept as written (a trailing
/// `/` and `..` included: they show in the image config), a relative one is joined to the
/// current directory and cleaned, and an empty one is the current directory.
pub(crate) fn normalize_workdir(current: &str, requested: &str) -> String {
    let parent = if current.starts_with('/') {
        current.to_string()
    } else {
        join("/", current)
    };
    if requested.is_empty() {
        parent
    } else if requested.starts_with('/') {
        requested.to_string()
    } else {
        join(&parent, requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn paths() {
        assert_eq!(clean("/a/../b/./c/"), "/b/c");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(relative_to_workdir("/work", "."), "/work/");
        assert_eq!(relative_to_workdir("/work", "sub/"), "/work/sub/");
        assert_eq!(relative_to_workdir("/work", "/abs/x"), "/abs/x");
        assert_eq!(relative_to_workdir("/", "/."), "/.");
        assert_eq!(normalize_workdir("/a", "b/../c"), "/a/c");
        assert_eq!(normalize_workdir("", "x"), "/x");
        assert_eq!(normalize_workdir("/a", ""), "/a");
        assert_eq!(normalize_workdir("/a", "/x/../y/"), "/x/../y/");
        assert_eq!(normalize_workdir("/a/b/", "c/"), "/a/b/c");
    }

    #[test]
    fn go_lists() {
        assert_eq!(
            go_quoted_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(go_list(&["/a".into(), "/b".into()]), "[/a /b]");
    }
}
