//! The `filters` query parameter of Docker's list and prune requests: JSON mapping a key to
//! its values, in the current form (`{"status":["running"]}`) or the old one
//! (`{"status":{"running":true}}`), and Docker's matching rules for objects (networks,
//! volumes) as their API JSON shows them. Pure.

use std::collections::BTreeMap;

/// Parsed filters: each key's accepted values (an object must match every key, any value).
pub type Filters = BTreeMap<String, Vec<String>>;

/// A `filters` parameter that cannot be used, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// Parses `filters` (absent or empty: no filter); the keys must be among `valid`.
pub fn parse(raw: Option<&str>, valid: &[&str]) -> Result<Filters, FilterError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Filters::new());
    };
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| FilterError(format!("invalid filters {raw:?}: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| FilterError(format!("invalid filters {raw:?}: expected a JSON object")))?;
    let mut out = Filters::new();
    for (k, vals) in obj {
        if !valid.contains(&k.as_str()) {
            return Err(FilterError(format!(
                "invalid filter '{k}' (valid: {})",
                valid.join(", ")
            )));
        }
        let list: Vec<String> = match vals {
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or_else(|| FilterError(format!("invalid filter '{k}': values are strings")))?,
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(x, _)| x.clone())
                .collect(),
            _ => {
                return Err(FilterError(format!(
                    "invalid filter '{k}': expected a list"
                )));
            }
        };
        out.entry(k.clone()).or_default().extend(list);
    }
    Ok(out)
}

/// The keys of `GET /networks`.
pub const NETWORK_KEYS: &[&str] = &["id", "name", "driver", "label", "type", "scope"];
/// The keys of `GET /volumes`.
pub const VOLUME_KEYS: &[&str] = &["name", "driver", "label", "dangling"];

/// Whether the values of filter `key` pass: every one for `label` (Docker matches all the
/// labels asked), any one for the other keys.
pub fn each_or_any(key: &str, vals: &[String], pass: impl Fn(&String) -> bool) -> bool {
    if key == "label" {
        vals.iter().all(pass)
    } else {
        vals.iter().any(pass)
    }
}

/// `label=key` or `label=key=value` against an object's `Labels`.
fn label_matches(labels: &serde_json::Value, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => labels.get(want).is_some(),
    }
}

/// Whether a network or volume, as its API JSON, matches every key (any of its values): `id`
/// (a prefix), `name` (a substring, as Docker), `driver`, `label`; `extra` judges the keys of
/// its own kind (`type`, `scope`, `dangling`).
pub fn object_matches(
    f: &Filters,
    v: &serde_json::Value,
    extra: impl Fn(&str, &str) -> bool,
) -> bool {
    f.iter().all(|(k, vals)| {
        each_or_any(k, vals, |want| match k.as_str() {
            "id" => v["Id"]
                .as_str()
                .is_some_and(|id| id.starts_with(want.as_str())),
            "name" => v["Name"]
                .as_str()
                .is_some_and(|n| n.contains(want.as_str())),
            "driver" => v["Driver"].as_str() == Some(want.as_str()),
            "label" => label_matches(&v["Labels"], want),
            other => extra(other, want),
        })
    })
}

/// Whether `f` asks for `key` to be one of the words Docker reads as true (`true`, `1`).
pub fn is_true(f: &Filters, key: &str) -> bool {
    f.get(key)
        .is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_volumes_filter_as_docker() {
        let v = serde_json::json!({"Id": "abc123", "Name": "app-net", "Driver": "bridge",
            "Labels": {"team": "a", "flag": ""}});
        let f = |raw: &str, valid: &[&str]| parse(Some(raw), valid).unwrap();
        let none = |_: &str, _: &str| false;
        assert!(object_matches(
            &f(r#"{"name":["app"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        assert!(!object_matches(
            &f(r#"{"name":["db"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        assert!(object_matches(
            &f(r#"{"id":["abc"],"driver":["bridge"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        assert!(object_matches(
            &f(r#"{"label":["team=a"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        assert!(object_matches(
            &f(r#"{"label":["flag"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        assert!(!object_matches(
            &f(r#"{"label":["team=b"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        // Every label asked must match (compose asks for its project's and `oneoff=False`).
        assert!(object_matches(
            &f(r#"{"label":["team=a","flag"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        assert!(!object_matches(
            &f(r#"{"label":["team=a","oneoff=True"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        // Other keys match any of their values.
        assert!(object_matches(
            &f(r#"{"name":["db","app"]}"#, NETWORK_KEYS),
            &v,
            none
        ));
        let custom = |k: &str, want: &str| k == "type" && want == "custom";
        assert!(object_matches(
            &f(r#"{"type":["custom"]}"#, NETWORK_KEYS),
            &v,
            custom
        ));
        assert!(
            parse(Some(r#"{"bogus":["x"]}"#), VOLUME_KEYS)
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
    }
}
