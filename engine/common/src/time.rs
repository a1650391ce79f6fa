//! Times as Docker writes and reads them: RFC 3339 in UTC (with nanoseconds, trimmed as Go's
//! `RFC3339Nano` or fixed at nine digits as Docker's log lines), Unix times as the API passes
//! them (`SECONDS[.NANOSECONDS]`), and the `--since`/`--until` forms the docker CLI accepts
//! (durations back from now, RFC 3339 with or without a zone, dates), turned into the API's
//! form as moby's `timetypes.GetTimestamp` does. Pure: "now" is always a parameter, but for
//! [`now_rfc3339_nano`].

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Timelike as _, Utc,
};

/// A `--since`/`--until` value that is no time Docker reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {0:?}: valid are a duration back from now (10m, 1h30m, 1.5h), an RFC 3339 time \
     (2026-12-02T16:00:00Z, 2026-12-02T16:00:00.5+01:00, 2026-12-02T16:00, 2026-12-02) or a Unix \
     time (1700000000, 1700000000.5)"
)]
pub struct TimeError(pub String);

fn utc(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos.min(999_999_999)).unwrap_or_default()
}

/// Seconds and nanoseconds since the epoch of `t` (0 for times before it).
pub fn unix(t: SystemTime) -> (i64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

/// `2026-12-02T16:00:00Z`: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(secs: i64) -> String {
    utc(secs, 0).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Go's `RFC3339Nano` in UTC: the fraction's trailing zeros dropped, none when it is zero
/// (`2026-12-02T16:00:00.5Z`, `2026-12-02T16:00:00Z`), as Docker's inspect JSON has it.
pub fn rfc3339_nano(secs: i64, nanos: u32) -> String {
    let base = rfc3339(secs);
    let nanos = nanos.min(999_999_999);
    if nanos == 0 {
        return base;
    }
    let frac = format!("{nanos:09}");
    format!(
        "{}.{}Z",
        base.trim_end_matches('Z'),
        frac.trim_end_matches('0')
    )
}

/// RFC 3339 in UTC with all nine digits of the fraction (`2026-12-02T16:00:00.120000000Z`), as
/// Docker stamps log lines and stats samples.
pub fn rfc3339_nano_fixed(secs: i64, nanos: u32) -> String {
    utc(secs, nanos).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Now, as Docker stamps a log line.
pub fn now_rfc3339_nano() -> String {
    let (s, n) = unix(SystemTime::now());
    rfc3339_nano_fixed(s, n)
}

/// A Unix time as the API passes it, `SECONDS[.NANOSECONDS]` (`1700000000`, `1.5` is a second
/// and a half), as moby's `ParseTimestamps`; `None` when it is not one (a fraction of more
/// than nine digits included).
pub fn parse_unix(s: &str) -> Option<(i64, u32)> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let unsigned = secs.strip_prefix('-').unwrap_or(secs);
    if unsigned.is_empty() || !digits(unsigned) || frac.len() > 9 || !digits(frac) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    Some((secs, nanos))
}

/// A time as Docker's records hold it (RFC 3339, any zone) or as the API passes one (a Unix
/// time): seconds and nanoseconds since the epoch.
pub fn parse(s: &str) -> Option<(i64, u32)> {
    if let Some(t) = parse_unix(s) {
        return Some(t);
    }
    let t = DateTime::parse_from_rfc3339(s).ok()?;
    seconds(&t)
}

/// Seconds and nanoseconds of `t`; `None` for a leap second (`:60`, which chrono keeps as
/// nanoseconds past a billion), which Go's parser refuses.
fn seconds(t: &DateTime<FixedOffset>) -> Option<(i64, u32)> {
    let nanos = t.timestamp_subsec_nanos();
    (nanos < 1_000_000_000).then(|| (t.timestamp(), nanos))
}

/// Go's `time.ParseDuration` in nanoseconds (`10m`, `1h30m`, `1.5h`, `-2s`, `300ms`); `None`
/// when `s` is not one or does not fit.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() || num.matches('.').count() > 1 {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac_part: i128 = if frac.is_empty() {
            0
        } else {
            let f = &frac[..frac.len().min(18)];
            f.parse::<i128>().ok()? * scale / 10i128.pow(f.len() as u32)
        };
        total = total.checked_add(int.checked_mul(scale)?.checked_add(frac_part)?)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
        rest = next;
    }
    i64::try_from(if neg { -total } else { total }).ok()
}

/// Splits a zone off the end of `s`: `Z`/`z` or `+HH:MM`/`-HH:MM`.
fn split_zone(s: &str) -> Option<(&str, FixedOffset)> {
    if let Some(rest) = s.strip_suffix(['Z', 'z']) {
        return Some((rest, FixedOffset::east_opt(0)?));
    }
    let at = s.len().checked_sub(6)?;
    let (rest, zone) = (s.get(..at)?, s.get(at..)?);
    let b = zone.as_bytes();
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if b[3] != b':' || ![1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (zone[1..3].parse().ok()?, zone[4..6].parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    Some((rest, FixedOffset::east_opt(sign * (h * 3600 + m * 60))?))
}

/// `YYYY-MM-DD`, optionally followed by `THH`, `THH:MM`, `THH:MM:SS` or `THH:MM:SS.F...`, the
/// forms of moby's layouts.
fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    let (date, time) = match s.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    if date.len() != 10 {
        return None;
    }
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let time = match time {
        None => NaiveTime::MIN,
        Some(t) => {
            let (hms, frac) = match t.split_once('.') {
                Some((hms, f)) if hms.len() == 8 && !f.is_empty() && f.len() <= 9 => (hms, f),
                Some(_) => return None,
                None => (t, ""),
            };
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let full = match hms.len() {
                2 => format!("{hms}:00:00"),
                5 => format!("{hms}:00"),
                8 => hms.to_string(),
                _ => return None,
            };
            let t = NaiveTime::parse_from_str(&full, "%H:%M:%S").ok()?;
            let nanos: u32 = if frac.is_empty() {
                0
            } else {
                frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
            };
            // A leap second (`:60`) keeps its billion in the nanoseconds: refused after.
            t.with_nanosecond(nanos + t.nanosecond() / 1_000_000_000 * 1_000_000_000)?
        }
    };
    Some(date.and_time(time))
}

/// A `--since`/`--until` value as the docker CLI sends it to the API (moby's
/// `timetypes.GetTimestamp`): a duration is counted back from `now` (whole seconds), a time
/// without a zone is in `now`'s zone, a Unix time passes as it is; the result is
/// `SECONDS[.NANOSECONDS]`.
pub fn docker_timestamp(value: &str, now: DateTime<FixedOffset>) -> Result<String, TimeError> {
    let bad = || TimeError(value.to_string());
    if value != "0" {
        if let Some(d) = parse_go_duration(value) {
            let t = now
                .checked_sub_signed(chrono::TimeDelta::nanoseconds(d))
                .ok_or_else(bad)?;
            return Ok(t.timestamp().to_string());
        }
    }
    let in_location = !value.contains(['z', 'Z', '+']) && value.matches('-').count() != 3;
    let parsed = if in_location {
        parse_naive(value).and_then(|n| n.and_local_timezone(*now.offset()).single())
    } else {
        split_zone(value).and_then(|(rest, zone)| {
            parse_naive(rest).and_then(|n| n.and_local_timezone(zone).single())
        })
    };
    match parsed {
        Some(t) => {
            let (secs, nanos) = seconds(&t).ok_or_else(bad)?;
            Ok(format!("{secs}.{nanos:09}"))
        }
        // With a dash it was meant as a date: no Unix time has one.
        None if value.contains('-') => Err(bad()),
        None => parse_unix(value).map(|_| value.to_string()).ok_or_else(bad),
    }
}

/// [`docker_timestamp`] counted from the clock, in the host's zone, as the docker CLI does.
pub fn docker_timestamp_from_now(value: &str) -> Result<String, TimeError> {
    docker_timestamp(value, chrono::Local::now().fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn formats_as_docker_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_227_200), "2026-12-02T16:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_nano(1_796_227_200, 0), "2026-12-02T16:00:00Z");
        assert_eq!(
            rfc3339_nano(1_796_227_200, 120_000_000),
            "2026-12-02T16:00:00.12Z"
        );
        assert_eq!(
            rfc3339_nano_fixed(1_796_227_200, 120_000_000),
            "2026-12-02T16:00:00.120000000Z"
        );
        assert_eq!(now_rfc3339_nano().len(), 30);
        assert_eq!(unix(UNIX_EPOCH + std::time::Duration::new(5, 7)), (5, 7));
    }

    #[test]
    fn reads_records_and_api_times() {
        assert_eq!(
            parse("2026-12-02T16:00:00.5Z"),
            Some((1_796_227_200, 500_000_000))
        );
        assert_eq!(parse("2026-12-02T17:00:00+01:00"), Some((1_796_227_200, 0)));
        assert_eq!(parse("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse("1.5"), Some((1, 500_000_000)));
        assert_eq!(parse_unix("1.0000000001"), None);
        assert_eq!(parse_unix("-3"), Some((-3, 0)));
        assert_eq!(
            parse("2026-11-23T16:43:20.000000001Z"),
            Some((1_795_452_200, 1))
        );
        // Found by fuzzing: a leap second gave nanoseconds past a billion; Go refuses it.
        assert_eq!(parse("2826-12-02T16:00:60.5Z"), None);
        // Found by fuzzing the hand-written parser this replaced: out-of-range fields.
        for bad in [
            "",
            ".5",
            "1.x",
            "yesterday",
            "2026-13-02T16:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-02",
            "20026-12022200222022212-02T12:00:00.526-12-02:00.5Z",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m"), Some(600_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("-2s"), Some(-2_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        for bad in ["", "10", "m", "1x", "1..5s", "+", "99999999999h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn since_forms_as_the_docker_cli_sends_them() {
        let now = at("2026-12-02T16:00:00+01:00");
        let ts = |v: &str| docker_timestamp(v, now);
        assert_eq!(ts("10m").unwrap(), "1796223000");
        assert_eq!(ts("1h30m").unwrap(), "1796218200");
        assert_eq!(ts("1700000000").unwrap(), "1700000000");
        assert_eq!(ts("1700000000.5").unwrap(), "1700000000.5");
        assert_eq!(ts("0").unwrap(), "0");
        assert_eq!(ts("2026-12-02T16:00:00Z").unwrap(), "1796227200.000000000");
        assert_eq!(
            ts("2026-12-02T16:00:00.25Z").unwrap(),
            "1796227200.250000000"
        );
        assert_eq!(
            ts("2026-12-02T17:00:00+01:00").unwrap(),
            "1796227200.000000000"
        );
        assert_eq!(
            ts("2026-12-02T10:00:00-06:00").unwrap(),
            "1796227200.000000000"
        );
        // Without a zone: in now's zone (+01:00).
        assert_eq!(ts("2026-12-02T17:00:00").unwrap(), "1796227200.000000000");
        assert_eq!(ts("2026-12-02T17:00").unwrap(), "1796227200.000000000");
        assert_eq!(ts("2026-12-02T17").unwrap(), "1796227200.000000000");
        assert_eq!(ts("2026-12-03").unwrap(), "1796252400.000000000");
        assert_eq!(ts("2026-12-02Z").unwrap(), "1796169600.000000000");
        assert!(ts("2026-12-02T16:00:60Z").is_err(), "Go refuses second 60");
        for bad in [
            "",
            "10x",
            "m",
            "yesterday",
            "2026-12-32",
            "2026-12-02T25:00",
            "1.2.3",
        ] {
            let e = ts(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("valid are"),
                "{e}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_never_panics(s in ".{0,40}") {
            if let Some((_, nanos)) = parse(&s) {
                proptest::prop_assert!(nanos < 1_000_000_000);
            }
            let _ = parse_go_duration(&s);
            if let Ok(t) = docker_timestamp(&s, at("2026-12-02T16:00:00Z")) {
                proptest::prop_assert!(parse_unix(&t).is_some(), "{}", t);
            }
        }

        #[test]
        fn nano_times_read_back(secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000) {
            proptest::prop_assert_eq!(parse(&rfc3339_nano(secs, nanos)), Some((secs, nanos)));
            proptest::prop_assert_eq!(parse(&rfc3339_nano_fixed(secs, nanos)), Some((secs, nanos)));
        }
    }
}
