//! `GET /events`: the `since`/`until` timestamps, the `filters` and how they match (Docker's
//! rules: every key must match, any of its values), and an event as Docker's JSON. Pure.

use engine::events::{Event, Kind};
use serde_json::{Value, json};

use super::error::ApiError;
use super::filters::{self, Filters};

/// The filter keys `GET /events` takes (`action` is accepted as a synonym of `event`).
const KEYS: [&str; 9] = [
    "action",
    "container",
    "event",
    "image",
    "label",
    "network",
    "scope",
    "type",
    "volume",
];

/// `since`/`until` as the docker CLI sends them (`SECONDS[.NANOSECONDS]` since the epoch) in
/// nanoseconds; `None` when absent or empty. `what` names the parameter in the error.
pub fn parse_timestamp(raw: Option<&str>, what: &str) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad(format!(
            "invalid {what} {raw:?}: expected seconds since the epoch (SECONDS[.NANOSECONDS])"
        ))
    };
    let (secs, nanos) = berth_common::time::parse_unix(raw).ok_or_else(bad)?;
    let nanos = i64::from(nanos);
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(if secs < 0 { -nanos } else { nanos }))
        .map(Some)
        .ok_or_else(bad)
}

/// The parsed `filters` of `GET /events`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter(Filters);

/// Docker's `FuzzyMatch`: no such filter, or a value equal to or a prefix of `source`.
fn fuzzy(f: &Filters, key: &str, source: &str) -> bool {
    f.get(key).is_none_or(|vals| {
        vals.iter()
            .any(|v| source == v || source.starts_with(v.as_str()))
    })
}

/// Docker's `ExactMatch`: no such filter, or a value equal to `source`.
fn exact(f: &Filters, key: &str, source: &str) -> bool {
    f.get(key)
        .is_none_or(|vals| vals.iter().any(|v| v == source))
}

/// A reference without its tag (`busybox:1` → `busybox`; a registry port is not a tag).
fn strip_tag(r: &str) -> &str {
    match r.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') && !name.contains('@') && name != "sha256" => name,
        _ => r,
    }
}

impl EventFilter {
    /// Parses `filters` (absent or empty: everything passes); unknown keys are refused.
    pub fn parse(raw: Option<&str>) -> Result<EventFilter, ApiError> {
        let mut f = filters::parse(raw, &KEYS)?;
        if let Some(actions) = f.remove("action") {
            f.entry("event".into()).or_default().extend(actions);
        }
        Ok(EventFilter(f))
    }

    /// Whether `ev` passes.
    pub fn matches(&self, ev: &Event) -> bool {
        let f = &self.0;
        let attr = |k: &str| ev.attributes.get(k).map_or("", String::as_str);
        // `exec_create: sh` and `health_status: healthy` carry their detail in the action:
        // Docker matches them by prefix when the filter names them bare.
        let event_ok = if f.get("event").is_some_and(|v| {
            v.iter()
                .any(|a| matches!(a.as_str(), "exec_create" | "exec_start" | "health_status"))
        }) {
            fuzzy(f, "event", &ev.action)
        } else {
            exact(f, "event", &ev.action)
        };
        let by_name = |key: &str, kind: Kind| {
            !f.contains_key(key)
                || (ev.kind == kind && (fuzzy(f, key, &ev.actor_id) || fuzzy(f, key, attr("name"))))
        };
        let image_ok = {
            let name = if ev.kind == Kind::Image {
                attr("name")
            } else {
                attr("image")
            };
            let id = if matches!(ev.kind, Kind::Container | Kind::Image) {
                ev.actor_id.as_str()
            } else {
                ""
            };
            !f.contains_key("image")
                || [id, name, strip_tag(id), strip_tag(name)]
                    .iter()
                    .any(|s| !s.is_empty() && exact(f, "image", s))
        };
        let labels_ok = f.get("label").is_none_or(|wanted| {
            wanted.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => ev.attributes.get(k).is_some_and(|x| x == v),
                None => ev.attributes.contains_key(l),
            })
        });
        event_ok
            && exact(f, "type", ev.kind.as_str())
            && exact(f, "scope", "local")
            && by_name("container", Kind::Container)
            && by_name("network", Kind::Network)
            && by_name("volume", Kind::Volume)
            && image_ok
            && labels_ok
    }
}

/// An event as Docker sends it: `Type`, `Action`, `Actor`, `scope`, `time`, `timeNano`, and
/// for containers and images the older `status`, `id` (and `from`) fields.
pub fn to_json(ev: &Event) -> Value {
    let mut v = json!({
        "Type": ev.kind.as_str(),
        "Action": ev.action,
        "Actor": {"ID": ev.actor_id, "Attributes": ev.attributes},
        "scope": "local",
        "time": ev.time_nano.div_euclid(1_000_000_000),
        "timeNano": ev.time_nano,
    });
    if matches!(ev.kind, Kind::Container | Kind::Image) {
        v["status"] = json!(ev.action);
        v["id"] = json!(ev.actor_id);
    }
    if ev.kind == Kind::Container {
        if let Some(image) = ev.attributes.get("image") {
            v["from"] = json!(image);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ev(kind: Kind, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        let attributes: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Event {
            kind,
            action: action.into(),
            actor_id: id.into(),
            attributes,
            time_nano: 1_700_000_000_123_456_789,
        }
    }

    fn web(action: &str) -> Event {
        ev(
            Kind::Container,
            action,
            "abcdef0123",
            &[("image", "busybox:1"), ("name", "web"), ("team", "a")],
        )
    }

    fn f(raw: &str) -> EventFilter {
        EventFilter::parse(Some(raw)).unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp(None, "since").unwrap(), None);
        assert_eq!(parse_timestamp(Some(""), "since").unwrap(), None);
        assert_eq!(parse_timestamp(Some("0"), "since").unwrap(), Some(0));
        assert_eq!(
            parse_timestamp(Some("1700000000.000000001"), "since").unwrap(),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_timestamp(Some("2.5"), "until").unwrap(),
            Some(2_500_000_000)
        );
        let e = parse_timestamp(Some("yesterday"), "since").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("invalid since \"yesterday\""), "{e}");
        assert!(parse_timestamp(Some("1.x"), "until").is_err());
        assert!(parse_timestamp(Some("1.0000000001"), "until").is_err());
        assert!(parse_timestamp(Some("99999999999999999"), "until").is_err());
    }

    #[test]
    fn docker_json() {
        let v = to_json(&web("die"));
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["status"], "die");
        assert_eq!(v["id"], "abcdef0123");
        assert_eq!(v["from"], "busybox:1");
        assert_eq!(v["Actor"]["ID"], "abcdef0123");
        assert_eq!(v["Actor"]["Attributes"]["name"], "web");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["timeNano"], 1_700_000_000_123_456_789i64);
        let n = to_json(&ev(
            Kind::Network,
            "connect",
            "n1",
            &[("name", "front"), ("type", "bridge"), ("container", "abc")],
        ));
        assert!(n.get("status").is_none() && n.get("from").is_none());
        assert_eq!(n["Actor"]["Attributes"]["container"], "abc");
        let i = to_json(&ev(
            Kind::Image,
            "pull",
            "busybox:1",
            &[("name", "busybox:1")],
        ));
        assert_eq!(
            (i["status"].as_str(), i["id"].as_str()),
            (Some("pull"), Some("busybox:1"))
        );
        assert!(i.get("from").is_none());
    }

    #[test]
    fn filters_as_docker() {
        let all = EventFilter::parse(None).unwrap();
        assert!(all.matches(&web("start")));
        assert!(f(r#"{"type":["container"]}"#).matches(&web("start")));
        assert!(!f(r#"{"type":["network"]}"#).matches(&web("start")));
        assert!(f(r#"{"event":["start","die"]}"#).matches(&web("die")));
        assert!(!f(r#"{"event":["start"]}"#).matches(&web("die")));
        assert!(f(r#"{"action":["die"]}"#).matches(&web("die")));
        assert!(
            f(r#"{"event":["exec_create"]}"#).matches(&web("exec_create: sh -c true")),
            "bare exec_create matches by prefix"
        );
        // container by name or ID prefix; other kinds do not pass a container filter.
        assert!(f(r#"{"container":["web"]}"#).matches(&web("start")));
        assert!(f(r#"{"container":["abc"]}"#).matches(&web("start")));
        assert!(!f(r#"{"container":["db"]}"#).matches(&web("start")));
        let net = ev(
            Kind::Network,
            "create",
            "0123net",
            &[("name", "front"), ("type", "bridge")],
        );
        assert!(!f(r#"{"container":["web"]}"#).matches(&net));
        assert!(f(r#"{"network":["front"]}"#).matches(&net));
        assert!(f(r#"{"network":["0123"]}"#).matches(&net));
        assert!(!f(r#"{"network":["back"]}"#).matches(&net));
        let vol = ev(Kind::Volume, "destroy", "vol1", &[("driver", "local")]);
        assert!(f(r#"{"volume":["vol1"]}"#).matches(&vol));
        assert!(!f(r#"{"volume":["vol2"]}"#).matches(&vol));
        // image: a container's image with or without its tag, an image event's name.
        assert!(f(r#"{"image":["busybox:1"]}"#).matches(&web("start")));
        assert!(f(r#"{"image":["busybox"]}"#).matches(&web("start")));
        assert!(!f(r#"{"image":["alpine"]}"#).matches(&web("start")));
        let pulled = ev(
            Kind::Image,
            "pull",
            "localhost:5000/app:1",
            &[("name", "localhost:5000/app:1")],
        );
        assert!(f(r#"{"image":["localhost:5000/app"]}"#).matches(&pulled));
        assert!(!f(r#"{"image":["localhost"]}"#).matches(&pulled));
        // labels: every one must match, by key or key=value.
        assert!(f(r#"{"label":["team"]}"#).matches(&web("start")));
        assert!(f(r#"{"label":["team=a","name=web"]}"#).matches(&web("start")));
        assert!(!f(r#"{"label":["team=b"]}"#).matches(&web("start")));
        assert!(!f(r#"{"label":["team","owner"]}"#).matches(&web("start")));
        assert!(f(r#"{"scope":["local"]}"#).matches(&web("start")));
        assert!(!f(r#"{"scope":["swarm"]}"#).matches(&web("start")));
        // keys combine with AND.
        assert!(
            f(r#"{"type":["container"],"event":["start"],"container":["web"]}"#)
                .matches(&web("start"))
        );
        assert!(
            !f(r#"{"type":["container"],"event":["stop"],"container":["web"]}"#)
                .matches(&web("start"))
        );
    }

    #[test]
    fn bad_filters_name_the_value() {
        let e = EventFilter::parse(Some("{not json")).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("{not json"), "{e}");
        let e = EventFilter::parse(Some(r#"{"colour":["red"]}"#)).unwrap_err();
        assert!(e.message.contains("invalid filter 'colour'"), "{e}");
        assert!(e.message.contains("container"), "lists the valid keys: {e}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_never_panics(s in ".{0,60}") {
            let _ = parse_timestamp(Some(&s), "since");
            if let Ok(f) = EventFilter::parse(Some(&s)) {
                let _ = f.matches(&web("start"));
            }
        }
    }
}
