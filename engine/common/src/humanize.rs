//! Numbers as Docker prints them for people: `3 minutes` (go-units' HumanDuration) and
//! `4.194MB` (decimal sizes). berthd's `Status` column and the berth CLI's tables share them.

/// Sizes as Docker prints them: decimal units, four significant digits (Go's `%.4g`).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    let decimals = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[u])
}

/// Docker's (go-units) human duration: `Less than a second`, `5 seconds`, `About a minute`,
/// `3 hours`, `2 weeks`.
pub fn human_duration(secs: u64) -> String {
    let (m, h) = (secs / 60, (secs as f64 / 3600.0).round() as u64);
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

/// Go's `%.{prec}g` of a non-negative `v` as go-units prints sizes: `prec` significant digits,
/// trailing zeros dropped (`548`, `1.39`, `64`).
fn g(v: f64, prec: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    let decimals = (prec - 1 - exp).max(0) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s
}

fn scaled(n: f64, base: f64, units: &[&str], prec: i32) -> String {
    let mut v = n;
    let mut u = 0;
    while v >= base && u + 1 < units.len() {
        v /= base;
        u += 1;
    }
    format!("{}{}", g(v, prec), units[u])
}

/// go-units' `BytesSize`: binary units, four significant digits (`548KiB`, `64MiB`), what
/// `docker stats` shows memory in.
pub fn bytes_size(n: u64) -> String {
    scaled(
        n as f64,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
        4,
    )
}

/// go-units' `HumanSizeWithPrecision(n, 3)`: decimal units, three significant digits
/// (`1.39kB`), what `docker stats` shows network and block I/O in.
pub fn human_size3(n: u64) -> String {
    scaled(
        n as f64,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB"],
        3,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(2_500_000_000), "2.5GB");
    }

    #[test]
    fn dockers_human_durations() {
        for (s, want) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (45, "45 seconds"),
            (90, "About a minute"),
            (600, "10 minutes"),
            (3600, "About an hour"),
            (3 * 3600, "3 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (100 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn stats_sizes_as_go_units() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(548 * 1024), "548KiB");
        assert_eq!(bytes_size(64 << 20), "64MiB");
        assert_eq!(bytes_size(1536 << 20), "1.5GiB");
        assert_eq!(human_size3(890), "890B");
        assert_eq!(human_size3(1390), "1.39kB");
        assert_eq!(human_size3(12_345_678), "12.3MB");
    }
}

/// `d` as Go's `time.Duration.String()` writes it: `1s`, `1.5s`, `500ms`, `1m30s`, `2h0m0s`.
pub fn go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128, suffix: &str| {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let digits = unit.ilog10() as usize;
            let f = format!("{rest:0digits$}");
            format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
        }
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return frac(ns, 1_000, "µs");
    }
    if ns < 1_000_000_000 {
        return frac(ns, 1_000_000, "ms");
    }
    let secs = frac(ns % 60_000_000_000, 1_000_000_000, "s");
    let mins = ns / 60_000_000_000;
    match (mins / 60, mins % 60) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

#[cfg(test)]
mod go_duration_tests {
    use std::time::Duration;

    #[test]
    fn as_go_writes_them() {
        let f = super::go_duration;
        assert_eq!(f(Duration::from_secs(1)), "1s");
        assert_eq!(f(Duration::from_millis(1500)), "1.5s");
        assert_eq!(f(Duration::from_millis(500)), "500ms");
        assert_eq!(f(Duration::from_secs(90)), "1m30s");
        assert_eq!(f(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(f(Duration::ZERO), "0s");
    }
}
