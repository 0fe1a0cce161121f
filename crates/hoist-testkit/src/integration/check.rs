//! Checking a run's expectations against what a build exported: shared by the runners that
//! build the cases through different paths (the embedded engine, hoistd, a remote BuildKit).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::Run;

impl Run {
    /// Checks the file expectations (`expect_files`, `expect_entries`, `expect_absent`, ...)
    /// against a `type=local` export at `root`; the first one that does not hold, in words.
    pub fn check_local(&self, root: &Path) -> Result<(), String> {
        let run = self;
        for (path, want) in &run.expect_files {
            let full = root.join(path);
            let meta = std::fs::symlink_metadata(&full).map_err(|_| format!("{path}: missing"))?;
            if !meta.is_file() {
                return Err(format!(
                    "{path}: not a regular file ({:?})",
                    meta.file_type()
                ));
            }
            let got = std::fs::read(&full).map_err(|err| format!("{path}: {err}"))?;
            if got != want.as_bytes() {
                return Err(format!(
                    "{path}: content {:?}, want {want:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        for (path, want) in &run.expect_files_following_symlinks {
            let got = std::fs::read(root.join(path))
                .map_err(|err| format!("{path} (followed): {err}"))?;
            if got != want.as_bytes() {
                return Err(format!(
                    "{path} (followed): content {:?}, want {want:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        // Entries: a symlink's link text, or a regular file's content (case 16 has both).
        for (path, want) in &run.expect_entries {
            let full = root.join(path);
            let meta = std::fs::symlink_metadata(&full).map_err(|_| format!("{path}: missing"))?;
            if meta.file_type().is_symlink() {
                let got = std::fs::read_link(&full).map_err(|err| format!("{path}: {err}"))?;
                if got != Path::new(want) {
                    return Err(format!("{path}: links to {got:?}, want {want:?}"));
                }
            } else {
                let got = std::fs::read(&full).map_err(|err| format!("{path}: {err}"))?;
                if got != want.as_bytes() {
                    return Err(format!(
                        "{path}: content {:?}, want {want:?} (a link's target or a file's content)",
                        String::from_utf8_lossy(&got)
                    ));
                }
            }
        }
        for (path, wants) in &run.expect_file_contains {
            let got = std::fs::read(root.join(path)).map_err(|err| format!("{path}: {err}"))?;
            let got = String::from_utf8_lossy(&got);
            for want in wants {
                if !got.contains(want.as_str()) {
                    return Err(format!("{path}: lacks {want:?} (content {got:?})"));
                }
            }
        }
        for (path, wants) in &run.expect_file_not_contains {
            let got = std::fs::read(root.join(path)).map_err(|err| format!("{path}: {err}"))?;
            let got = String::from_utf8_lossy(&got);
            for want in wants {
                if got.contains(want.as_str()) {
                    return Err(format!("{path}: holds {want:?} (content {got:?})"));
                }
            }
        }
        for path in &run.expect_absent {
            if std::fs::symlink_metadata(root.join(path)).is_ok() {
                return Err(format!("{path}: present, want absent"));
            }
        }
        for path in &run.expect_dirs {
            if !std::fs::symlink_metadata(root.join(path)).is_ok_and(|m| m.is_dir()) {
                return Err(format!("{path}: not a directory"));
            }
        }
        for path in &run.expect_empty_dirs {
            let entries = std::fs::read_dir(root.join(path))
                .map_err(|err| format!("{path}: not a directory ({err})"))?;
            let names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !names.is_empty() {
                return Err(format!("{path}: holds {names:?}, want empty"));
            }
        }
        Ok(())
    }

    /// Checks [`Run::expect_image_config`] against an image config JSON; the first check that
    /// does not hold, in words.
    pub fn check_image_config(&self, config: &Value) -> Result<(), String> {
        for check in self.image_config_checks()? {
            check
                .check(config)
                .map_err(|err| format!("image config {}: {err}", check.key))?;
        }
        Ok(())
    }
}

/// A runner's known-failures list (`CASE  reason` lines, `#` comments, blank lines): case id
/// → reason (empty when none is given).
pub fn known_failures(list: &str) -> BTreeMap<String, String> {
    list.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once(char::is_whitespace) {
            Some((id, reason)) => (id.to_owned(), reason.trim().to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect()
}

/// Held against the `known` list, a run's `failing` cases (id, reasons): those failing but
/// not listed, and those listed but passing. A runner passes when both are empty.
pub fn unexpected_and_fixed<'a>(
    failing: &'a [(String, Vec<String>)],
    known: &'a BTreeMap<String, String>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let unexpected = failing
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !known.contains_key(*id))
        .collect();
    let fixed = known
        .keys()
        .map(String::as_str)
        .filter(|id| !failing.iter().any(|(f, _)| f == id))
        .collect();
    (unexpected, fixed)
}
