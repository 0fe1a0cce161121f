//! A small subset of Go templates for `imagetools inspect --format`: literal text and
//! `{{ PATH }}` / `{{ json PATH }}` actions, where PATH is `.` or `.Field.Field...`. Field
//! names match JSON keys case-insensitively (`.Manifest.MediaType` reads `manifest.mediaType`),
//! which is how buildx's Go struct fields map to its JSON. Strings print bare, other values
//! as compact JSON; `json` prints indented JSON as buildx's `json` function does.
//!
//! Written by hand: the only Go-template crates on crates.io implement far more than this
//! needs and are little used.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest_json::to_go_json_string;

/// Renders `template` against `input`.
pub fn render_template(template: &str, input: &Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| Error::UnclosedAction {
            template: template.to_owned(),
        })?;
        let action = after[..end].trim_matches('-').trim();
        out.push_str(&eval(action, input)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(action: &str, input: &Value) -> Result<String> {
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
            to_go_json_string(value, "  ")
        }
        _ => Err(Error::UnsupportedAction {
            action: action.to_owned(),
        }),
    }
}

fn lookup<'a>(input: &'a Value, path: &str) -> Result<&'a Value> {
    let mut value = input;
    for field in path.split('.').filter(|f| !f.is_empty()) {
        value = match value {
            Value::Object(map) => map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                .map(|(_, v)| v)
                .unwrap_or(&Value::Null),
            Value::Null => &Value::Null,
            _ => {
                return Err(Error::NotAnObject {
                    field: field.to_owned(),
                    path: path.to_owned(),
                })
            }
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
