//! Failpoints: named steps at which a test can have the process killed, as `kill -9` would,
//! to prove that every crash window leaves records consistent and nothing leaked (the `fail`
//! crate's idea, reduced to the one action berth's tests need).
//!
//! `BERTH_FAILPOINTS=start:after-spawn,rm:after-teardown` names the steps; when the process
//! reaches one it logs the name and raises SIGKILL on itself: no destructor, no cleanup, no
//! flush, exactly what a crash leaves. Unset (always, outside tests) a failpoint costs one load
//! of a cached empty list.

use std::sync::OnceLock;

/// The steps named by `BERTH_FAILPOINTS`, read once.
fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("BERTH_FAILPOINTS")
            .map(|v| parse(&v))
            .unwrap_or_default()
    })
}

/// The names in a `BERTH_FAILPOINTS` value: comma-separated, blanks ignored.
pub fn parse(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Kills this process with SIGKILL when `BERTH_FAILPOINTS` names `name`.
pub fn hit(name: &str) {
    if armed().iter().any(|a| a == name) {
        tracing::error!(failpoint = name, "failpoint: killing the process");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_comma_separated() {
        assert_eq!(
            super::parse(" start:after-spawn, ,rm:after-teardown"),
            ["start:after-spawn", "rm:after-teardown"]
        );
        assert!(super::parse("").is_empty());
    }
}
