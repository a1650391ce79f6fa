//! `events` lines from berthd's event JSON, and `--since`/`--until` as the API takes them.
//! Pure: `now` is a parameter.

use serde_json::Value;

/// An event as `docker events` prints it by default:
/// `2026-12-02T16:18:35.234785429Z container die ID (exitCode=3, image=bb, name=x)`.
pub fn event_line(e: &Value) -> String {
    let nanos = e["timeNano"]
        .as_i64()
        .unwrap_or_else(|| e["time"].as_i64().unwrap_or(0) * 1_000_000_000);
    let secs = nanos.div_euclid(1_000_000_000);
    let date = crate::rows::created_at(secs);
    // `2026-12-02 16:18:35 +0000 UTC` -> `2026-12-02T16:18:35.NNNNNNNNNZ`.
    let stamp = format!(
        "{}T{}.{:09}Z",
        &date[..10],
        &date[11..19],
        nanos.rem_euclid(1_000_000_000)
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

/// `--since`/`--until` as the API's seconds: a Unix time (`1700000000[.5]`), an RFC 3339 time,
/// or a duration back from `now` (`10m`, `1h30m`, `45s`).
pub fn timestamp(s: &str, now: i64) -> Result<String, String> {
    let bad = || {
        format!(
            "invalid time {s:?}: valid are a Unix time (1700000000), an RFC 3339 time (2026-12-02T16:00:00Z) or a duration (10m, 1h)"
        )
    };
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return s.parse::<f64>().map(|_| s.to_string()).map_err(|_| bad());
    }
    if let Some((secs, nanos)) = engine::container::logs::parse_time(s) {
        return Ok(format!("{secs}.{nanos:09}"));
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: i64 = num.parse().map_err(|_| bad())?;
        total = total
            .checked_add(n.checked_mul(mult).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() || total == 0 && s.is_empty() {
        return Err(bad());
    }
    Ok((now - total).to_string())
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

    #[test]
    fn since_and_until() {
        assert_eq!(timestamp("1700000000", 0).unwrap(), "1700000000");
        assert_eq!(timestamp("10m", 10_000).unwrap(), "9400");
        assert_eq!(timestamp("1h30m", 10_000).unwrap(), "4600");
        assert_eq!(
            timestamp("2026-12-02T16:00:00Z", 0).unwrap(),
            "1796227200.000000000"
        );
        for bad in ["", "10x", "m", "yesterday"] {
            assert!(timestamp(bad, 0).unwrap_err().contains("valid"), "{bad}");
        }
    }
}
