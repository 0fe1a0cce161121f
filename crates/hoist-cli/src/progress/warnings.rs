//! The warnings a build reported, summed up after its progress as buildx does
//! (`printWarnings`): a blank line, `1 warning found (use docker --debug to expand):` (or
//! `N warnings found …`), then ` - <short>` for each, in the order they came.

use hoist_engine::progress::Warning;

/// buildx's summary of `warnings`; empty when there are none. `color`: the count line in
/// yellow, as buildx writes it (hoist only on a terminal that takes colors).
pub fn summary(warnings: &[Warning], color: bool) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let count = match warnings.len() {
        1 => "1 warning found".to_owned(),
        n => format!("{n} warnings found"),
    };
    let head = format!("{count} (use docker --debug to expand):\n");
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
    }
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
        );
        assert_eq!(
            text,
            "\n 1 warning found (use docker --debug to expand):\n \
             - NoEmptyContinuation: Empty continuation line (line 6)\n"
        );
    }

    #[test]
    fn several_warnings_are_counted_and_listed_in_order() {
        let text = summary(&[warning("a"), warning("b")], false);
        assert_eq!(
            text,
            "\n 2 warnings found (use docker --debug to expand):\n - a\n - b\n"
        );
        assert_eq!(summary(&[], false), "");
        let colored = summary(&[warning("a")], true);
        assert!(colored.contains("\u{1b}[33m1 warning found"), "{colored:?}");
    }
}
