//! The filters of `GET /containers/json` and whether a container matches them (the parameter's
//! form and the rules for other objects are berth-api's, re-exported here). Pure.

use engine::container::Container;

use super::error::ApiError;

pub use berth_api::filters::{
    FilterError, Filters, NETWORK_KEYS, VOLUME_KEYS, each_or_any, is_true, object_matches, parse,
};

const CONTAINER_KEYS: [&str; 8] = [
    "id", "name", "status", "label", "ancestor", "network", "exited", "health",
];

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
