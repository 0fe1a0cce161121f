//! The warnings a build reported, summed up after its progress as buildx does
//! (`printWarnings`): a blank line, `1 warning found (use docker --debug to expand):` (or
//! `N warnings found …`), then ` - <short>` for each, in the order they came. In debug
//! mode (docker's `DEBUG` variable, which `docker --debug` sets for its plugins) each is
//! expanded: its detail lines, `More info: <url>`, and the source lines it points at, as
//! buildx prints an error's.

use hoist_dockerfile::ast::LineSpan;
use hoist_dockerfile::instructions::source_excerpt;
use hoist_engine::progress::Warning;

/// Whether warnings are expanded: docker's `DEBUG` is set and not empty.
pub fn debug_from_env() -> bool {
    std::env::var_os("DEBUG").is_some_and(|v| !v.is_empty())
}

/// buildx's summary of `warnings`; empty when there are none. `color`: the count line in
/// yellow, as buildx writes it (hoist only on a terminal that takes colors); `debug`: each
/// warning expanded.
pub fn summary(warnings: &[Warning], color: bool, debug: bool) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let count = match warnings.len() {
        1 => "1 warning found".to_owned(),
        n => format!("{n} warnings found"),
    };
    let hint = if debug {
        ""
    } else {
        " (use docker --debug to expand)"
    };
    let head = format!("{count}{hint}:\n");
    let mut out = String::from("\n ");
    if color {
        out.push_str(
            &console::style(head)
                .yellow()
                .force_styling(true)
                .to_string(),
        );
    } else {
        out.push_str(&head);
    }
    for warning in warnings {
        out.push_str(&format!(" - {}\n", warning.short));
        if debug {
            out.push_str(&expanded(warning));
        }
    }
    out
}

/// A warning's detail lines, URL and source excerpt, then a blank line.
fn expanded(warning: &Warning) -> String {
    let mut out = String::new();
    for line in &warning.detail {
        out.push_str(line);
        out.push('\n');
    }
    if !warning.url.is_empty() {
        out.push_str(&format!("More info: {}\n", warning.url));
    }
    let start = warning.ranges.iter().map(|r| r.start).min();
    let end = warning.ranges.iter().map(|r| r.end.max(r.start)).max();
    if let (Some(source), Some(start), Some(end)) = (&warning.source, start, end) {
        let text = String::from_utf8_lossy(&source.data);
        out.push_str(&source_excerpt(
            &source.filename,
            &text,
            LineSpan { start, end },
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(short: &str) -> Warning {
        Warning {
            level: 1,
            short: short.to_owned(),
            ..Warning::default()
        }
    }

    #[test]
    fn one_warning_is_summed_up_as_buildx_does() {
        let text = summary(
            &[warning(
                "NoEmptyContinuation: Empty continuation line (line 6)",
            )],
            false,
            false,
        );
        assert_eq!(
            text,
            "\n 1 warning found (use docker --debug to expand):\n \
             - NoEmptyContinuation: Empty continuation line (line 6)\n"
        );
    }

    #[test]
    fn several_warnings_are_counted_and_listed_in_order() {
        let text = summary(&[warning("a"), warning("b")], false, false);
        assert_eq!(
            text,
            "\n 2 warnings found (use docker --debug to expand):\n - a\n - b\n"
        );
        assert_eq!(summary(&[], false, false), "");
        let colored = summary(&[warning("a")], true, false);
        assert!(colored.contains("\u{1b}[33m1 warning found"), "{colored:?}");
    }

    #[test]
    fn debug_expands_detail_url_and_the_source_lines() {
        let mut w = warning("NoEmptyContinuation: Empty continuation line (line 4)");
        w.detail = vec!["Empty continuation lines will become errors in a future release".into()];
        w.url = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/".into();
        w.source = Some(hoist_engine::progress::WarningSource {
            filename: "Dockerfile".into(),
            language: "Dockerfile".into(),
            data: b"FROM scratch\nCOPY a.txt \\\n\n /\n".as_slice().into(),
        });
        w.ranges = vec![hoist_engine::progress::SourceLines { start: 4, end: 4 }];
        assert_eq!(
            summary(&[w], false, true),
            "\n 1 warning found:\n \
             - NoEmptyContinuation: Empty continuation line (line 4)\n\
             Empty continuation lines will become errors in a future release\n\
             More info: https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/\n\
             Dockerfile:4\n\
             --------------------\n   \
             2 |     COPY a.txt \\\n   \
             3 |     \n   \
             4 | >>>  /\n   \
             5 |     \n\
             --------------------\n\
             \n"
        );
    }
}
