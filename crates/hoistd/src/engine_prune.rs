//! `POST /build/prune` of the Engine API front door (`docker builder prune`): the query as
//! dockerd reads it, turned into the Control service's `Prune`, answered as dockerd does
//! with `{"CachesDeleted":[ids…],"SpaceReclaimed":bytes}`.
//!
//! Query: `all` (also shared and internal records: everything unused), `keep-storage`
//! (bytes to keep; BuildKit's `keepBytes`, now `reservedSpace`), `reserved-space`,
//! `max-used-space`, `min-free-space` (newer APIs), `filters` (JSON, dockerd's
//! `{"key":{"value":true}}` or `{"key":["value"]}` form): `until`/`unused-for` (a Go
//! duration: keep what was used more recently) and `id`; other keys are refused by name.

use hoist_proto::control::PruneRequest;
use serde_json::Value;

/// `query` as a `PruneRequest`, or why not (a `400` for the client).
pub fn prune_request(query: &[(String, String)]) -> Result<PruneRequest, String> {
    let mut request = PruneRequest::default();
    let bytes = |key: &str, value: &str| {
        value
            .parse::<i64>()
            .map_err(|_| format!("invalid {key}={value:?}: expected a number of bytes"))
    };
    for (key, value) in query {
        match key.as_str() {
            "all" => request.all = matches!(value.as_str(), "1" | "true" | "True" | "TRUE"),
            "keep-storage" | "reserved-space" => request.reserved_space = bytes(key, value)?,
            "max-used-space" => request.max_used_space = bytes(key, value)?,
            "min-free-space" => request.min_free_space = bytes(key, value)?,
            "filters" if !value.is_empty() => filters(value, &mut request)?,
            _ => {}
        }
    }
    Ok(request)
}

/// dockerd's filters JSON: each key with a map of values to `true`, or a list of values.
fn filters(text: &str, request: &mut PruneRequest) -> Result<(), String> {
    let parsed: Value =
        serde_json::from_str(text).map_err(|err| format!("invalid filters {text:?}: {err}"))?;
    let Value::Object(keys) = parsed else {
        return Err(format!("invalid filters {text:?}: expected a JSON object"));
    };
    for (key, values) in keys {
        let values: Vec<String> = match values {
            Value::Object(map) => map.into_iter().map(|(v, _)| v).collect(),
            Value::Array(list) => list
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            other => return Err(format!("invalid filter {key}: {other}")),
        };
        for value in values {
            match key.as_str() {
                "until" | "unused-for" => {
                    let nanos = hoist_dockerfile::go_duration::parse(&value)
                        .map_err(|err| format!("invalid filter {key}={value:?}: {err}"))?;
                    request.keep_duration = nanos;
                }
                "id" => request.filter.push(format!("id=={value}")),
                other => {
                    return Err(format!(
                        "unsupported filter {other:?}: hoistd prunes by until, unused-for and id"
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prune_request;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_clis_prune_query_becomes_a_prune_request() {
        let request = prune_request(&q(&[
            ("all", "1"),
            ("keep-storage", "1000"),
            ("filters", r#"{"until":{"24h":true},"id":{"abc":true}}"#),
        ]))
        .unwrap();
        assert!(request.all);
        assert_eq!(request.reserved_space, 1000);
        assert_eq!(request.keep_duration, 24 * 3600 * 1_000_000_000);
        assert_eq!(request.filter, ["id==abc"]);
        let list = prune_request(&q(&[("filters", r#"{"unused-for":["90m"]}"#)])).unwrap();
        assert_eq!(list.keep_duration, 90 * 60 * 1_000_000_000);
        assert!(!list.all);
    }

    #[test]
    fn bad_prune_queries_are_refused_by_name() {
        let err = prune_request(&q(&[("filters", r#"{"label":{"a":true}}"#)])).unwrap_err();
        assert!(err.contains("\"label\""), "{err}");
        let err = prune_request(&q(&[("keep-storage", "lots")])).unwrap_err();
        assert!(err.contains("keep-storage"), "{err}");
        let err = prune_request(&q(&[("filters", r#"{"until":{"soon":true}}"#)])).unwrap_err();
        assert!(err.contains("until"), "{err}");
    }
}
