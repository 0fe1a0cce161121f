//! A small subset of Go templates for `imagetools inspect --format`: literal text and
//! `{{ PATH }}` / `{{ json PATH }}` actions, where PATH is `.` or `.Field.Field...`. Field
//! names match JSON keys case-insensitively (`.Manifest.MediaType` reads `manifest.mediaType`),
//! which is how buildx's Go struct fields map to its JSON. Strings print bare, other values
//! as compact JSON; `json` prints indented JSON as buildx's `json` function does.
//!
//! Written by hand: the only Go-template crates on crates.io implement far more than this
//! needs and are little used.

use anyhow::{anyhow, bail};
use serde_json::Value;

use crate::manifest_json::to_go_json;

/// Renders `template` against `input`.
pub fn render_template(template: &str, input: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| anyhow!("template: unclosed action in {template:?}"))?;
        let action = after[..end].trim_matches('-').trim();
        out.push_str(&eval(action, input)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(action: &str, input: &Value) -> anyhow::Result<String> {
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        [path] if path.starts_with('.') => {
            let value = lookup(input, path)?;
            Ok(match value {
                Value::String(s) => s.clone(),
                Value::Null => "<no value>".to_owned(),
                other => other.to_string(),
            })
        }
        ["json", path] if path.starts_with('.') => {
            let value = lookup(input, path)?;
            Ok(String::from_utf8(to_go_json(value, "  ")?)?)
        }
        _ => bail!("template: unsupported action {{{{{action}}}}} (supported: {{{{.Field}}}} and {{{{json .Field}}}})"),
    }
}

fn lookup<'a>(input: &'a Value, path: &str) -> anyhow::Result<&'a Value> {
    let mut value = input;
    for field in path.split('.').filter(|f| !f.is_empty()) {
        value = match value {
            Value::Object(map) => map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                .map(|(_, v)| v)
                .unwrap_or(&Value::Null),
            Value::Null => &Value::Null,
            _ => bail!("template: can't evaluate field {field} in {path}"),
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_json() {
        let input = serde_json::json!({
            "name": "x",
            "manifest": {"mediaType": "m", "size": 3, "platform": {"os": "linux"}},
        });
        assert_eq!(
            render_template(
                "{{.Name}} {{ .Manifest.MediaType }} {{.Manifest.Size}}",
                &input
            )
            .unwrap(),
            "x m 3"
        );
        assert_eq!(
            render_template("{{json .Manifest.Platform}}", &input).unwrap(),
            "{\n  \"os\": \"linux\"\n}"
        );
        assert_eq!(render_template("{{.Image}}", &input).unwrap(), "<no value>");
        assert!(render_template("{{range .}}", &input).is_err());
        assert!(render_template("{{.Name", &input).is_err());
    }
}
