//! The `filters` query parameter: JSON mapping a key to its values, in the current form
//! (`{"status":["running"]}`) or the old one (`{"status":{"running":true}}`), and whether a
//! container matches. Pure.

use std::collections::BTreeMap;

use engine::container::Container;

use super::error::ApiError;

/// Parsed filters: each key's accepted values (a container must match every key, any value).
pub type Filters = BTreeMap<String, Vec<String>>;

const CONTAINER_KEYS: [&str; 8] = [
    "id", "name", "status", "label", "ancestor", "network", "exited", "health",
];

/// Parses `filters` (absent or empty: no filter); the keys must be among `valid`.
pub fn parse(raw: Option<&str>, valid: &[&str]) -> Result<Filters, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Filters::new());
    };
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad(format!("invalid filters {raw:?}: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad(format!("invalid filters {raw:?}: expected a JSON object")))?;
    let mut out = Filters::new();
    for (k, vals) in obj {
        if !valid.contains(&k.as_str()) {
            return Err(ApiError::bad(format!(
                "invalid filter '{k}' (valid: {})",
                valid.join(", ")
            )));
        }
        let list: Vec<String> = match vals {
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ApiError::bad(format!("invalid filter '{k}': values are strings"))
                })?,
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(x, _)| x.clone())
                .collect(),
            _ => {
                return Err(ApiError::bad(format!(
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
fn each_or_any(key: &str, vals: &[String], pass: impl Fn(&String) -> bool) -> bool {
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

/// Parses the filters of `GET /containers/json`.
pub fn parse_container_filters(raw: Option<&str>) -> Result<Filters, ApiError> {
    let f = parse(raw, &CONTAINER_KEYS)?;
    for h in f.get("health").into_iter().flatten() {
        if !matches!(h.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
            return Err(ApiError::bad(format!(
                "Unrecognised filter value for health: {h}"
            )));
        }
    }
    for s in f.get("status").into_iter().flatten() {
        if !matches!(
            s.as_str(),
            "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
        ) {
            return Err(ApiError::bad(format!(
                "invalid filter 'status={s}' (valid: created, restarting, running, removing, paused, exited, dead)"
            )));
        }
    }
    Ok(f)
}

/// Whether `c` (on `networks`, with image references `image_names`) passes `f`.
pub fn container_matches(c: &Container, networks: &[String], f: &Filters) -> bool {
    f.iter().all(|(key, vals)| {
        each_or_any(key, vals, |v| match key.as_str() {
            "id" => c.id.starts_with(v.as_str()),
            "name" => c.name.contains(v.trim_start_matches('/')),
            "status" => c.state.status.as_str() == v,
            "label" => match v.split_once('=') {
                Some((k, want)) => c.options.labels.get(k).is_some_and(|x| x == want),
                None => c.options.labels.contains_key(v),
            },
            "ancestor" => {
                c.options.image == *v
                    || c.image_id == *v
                    || c.image_id
                        .trim_start_matches("sha256:")
                        .starts_with(v.as_str())
            }
            "network" => networks.iter().any(|n| n == v),
            "health" => {
                // As Docker: no health until the first start.
                let status = match (&c.state.health, c.health_probe()) {
                    (Some(h), Some(_)) => h.status.as_str(),
                    _ => "none",
                };
                status == v
            }
            "exited" => {
                c.state.status.as_str() == "exited"
                    && v.parse::<i32>().is_ok_and(|x| x == c.state.exit_code)
            }
            _ => false,
        })
    })
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

    #[test]
    fn both_forms_and_bad_keys() {
        let f = parse_container_filters(Some(
            r#"{"status":["running","paused"],"label":{"a=b":true}}"#,
        ))
        .unwrap();
        assert_eq!(f["status"], vec!["running", "paused"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_container_filters(None).unwrap().is_empty());
        let e = parse_container_filters(Some(r#"{"colour":["red"]}"#)).unwrap_err();
        assert!(e.message.contains("invalid filter 'colour'"), "{e}");
        let e = parse_container_filters(Some(r#"{"status":["sleeping"]}"#)).unwrap_err();
        assert!(e.message.contains("status=sleeping"), "{e}");
        assert!(parse_container_filters(Some("[1]")).is_err());
        assert!(parse_container_filters(Some(r#"{"id":[1]}"#)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_never_panics(s in ".{0,100}") {
            let _ = parse_container_filters(Some(&s));
        }
    }
}
