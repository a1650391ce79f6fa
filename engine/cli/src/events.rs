//! `events` lines from berthd's event JSON. Pure.

use serde_json::Value;

/// An event as `docker events` prints it by default:
/// `2026-12-02T16:18:35.234785429Z container die ID (exitCode=3, image=bb, name=x)`.
pub fn event_line(e: &Value) -> String {
    let nanos = e["timeNano"]
        .as_i64()
        .unwrap_or_else(|| e["time"].as_i64().unwrap_or(0) * 1_000_000_000);
    let stamp = berth_common::time::rfc3339_nano_fixed(
        nanos.div_euclid(1_000_000_000),
        u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    );
    let mut attrs: Vec<(String, String)> = e["Actor"]["Attributes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    attrs.sort();
    let attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut line = format!(
        "{stamp} {} {} {}",
        e["Type"].as_str().unwrap_or(""),
        e["Action"].as_str().unwrap_or(""),
        e["Actor"]["ID"].as_str().unwrap_or("")
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_lines_as_docker() {
        let e = json!({"Type": "container", "Action": "die", "Actor": {"ID": "0a17",
            "Attributes": {"name": "brief", "exitCode": "3", "image": "bb"}},
            "time": 1_796_227_200, "timeNano": 1_796_227_200_234_785_429i64});
        assert_eq!(
            event_line(&e),
            "2026-12-02T16:00:00.234785429Z container die 0a17 (exitCode=3, image=bb, name=brief)"
        );
    }
}
