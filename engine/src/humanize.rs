//! Numbers as Docker prints them for people: `3 minutes` (go-units' HumanDuration) and
//! `4.194MB` (decimal sizes). berthd's `Status` column and the berth CLI's tables share them.

pub use crate::image::registry::progress::human as human_size;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
