//! "did you mean X?" hints for unknown instructions, flags and mount keys, as BuildKit gives
//! them: the closest candidate within an edit distance of 2 is suggested.

/// `message` followed by ` (did you mean X?)` when a candidate is close to `value`.
pub(crate) fn with_suggestion(
    message: String,
    value: &str,
    candidates: &[&str],
    case_sensitive: bool,
) -> String {
    match closest(value, candidates, case_sensitive) {
        Some(found) => format!("{message} (did you mean {found}?)"),
        None => message,
    }
}

/// The candidate nearest to `value` (distance below 3), or `None` when there is none or when
/// `value` is itself a candidate (then the error was about something else).
fn closest(value: &str, candidates: &[&str], case_sensitive: bool) -> Option<String> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let wanted = fold(value);
    let mut best: Option<String> = None;
    let mut best_distance = 3;
    for candidate in candidates {
        let candidate = fold(candidate);
        if candidate == wanted {
            return None;
        }
        let distance = levenshtein(&wanted, &candidate);
        if distance < best_distance {
            best_distance = distance;
            best = Some(if case_sensitive {
                candidate
            } else {
                match_case(&candidate, value)
            });
        }
    }
    best
}

/// Writes `found` in the case `original` was written in (all lower, all upper, else as is).
fn match_case(found: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        found.to_lowercase()
    } else if original == original.to_uppercase() {
        found.to_uppercase()
    } else {
        found.to_string()
    }
}

/// Edit distance between two strings, counted in characters.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("run", "run"), 0);
    }

    #[test]
    fn suggests_close_names_in_the_case_written() {
        let names = ["RUN", "COPY", "FROM"];
        assert_eq!(closest("CPY", &names, false).as_deref(), Some("COPY"));
        assert_eq!(closest("cpy", &names, false).as_deref(), Some("copy"));
        assert_eq!(closest("copy", &names, false), None);
        assert_eq!(closest("xyz", &names, false), None);
        assert_eq!(closest("foo", &names, false).as_deref(), Some("from"));
    }
}
