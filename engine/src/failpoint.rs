//! Failpoints: named steps at which a test can have the process killed, as `kill -9` would,
//! to prove that every crash window leaves records consistent and nothing leaked, or held up
//! for a while, to open a race window on purpose (the `fail` crate's idea, reduced to the two
//! actions berth's tests need).
//!
//! `BERTH_FAILPOINTS=start:after-spawn,rm:after-teardown` names the steps (every one is a
//! `failpoint::hit` or `failpoint::pause` call: create, start, stop, rm, `commit:frozen` and
//! `image:before-record` for pulls, loads, commits and builds); when the process
//! reaches one it logs the name and raises SIGKILL on itself: no destructor, no cleanup, no
//! flush, exactly what a crash leaves. `NAME=sleep(MS)` instead makes an asynchronous step
//! ([`pause`]) wait MS milliseconds there; `NAME=panic` panics there (a bug's way out of a
//! step). Unset (always, outside tests) a failpoint costs one
//! load of a cached empty list.

use std::sync::OnceLock;
use std::time::Duration;

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL the process.
    Kill,
    /// Wait this long (asynchronous steps only).
    Sleep(Duration),
    /// Panic.
    Panic,
}

/// The steps named by `BERTH_FAILPOINTS`, read once.
fn armed() -> &'static [(String, Action)] {
    static ARMED: OnceLock<Vec<(String, Action)>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("BERTH_FAILPOINTS")
            .map(|v| parse(&v))
            .unwrap_or_default()
    })
}

/// The entries of a `BERTH_FAILPOINTS` value: comma-separated `NAME` (kill) or
/// `NAME=sleep(MS)`, blanks ignored. An action that does not parse is a kill: a test that
/// misspells one fails loudly rather than silently not arming it.
pub fn parse(value: &str) -> Vec<(String, Action)> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((name, action)) => {
                let ms = action
                    .trim()
                    .strip_prefix("sleep(")
                    .and_then(|a| a.strip_suffix(')'))
                    .and_then(|n| n.parse().ok());
                let action = match ms {
                    Some(ms) => Action::Sleep(Duration::from_millis(ms)),
                    None if action.trim() == "panic" => Action::Panic,
                    None => Action::Kill,
                };
                (name.trim().to_string(), action)
            }
            None => (entry.to_string(), Action::Kill),
        })
        .collect()
}

fn action(name: &str) -> Option<Action> {
    armed().iter().find(|(n, _)| n == name).map(|(_, a)| *a)
}

fn kill(name: &str) {
    tracing::error!(failpoint = name, "failpoint: killing the process");
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
}

/// Kills this process with SIGKILL when `BERTH_FAILPOINTS` names `name` (or panics, with
/// `NAME=panic`).
pub fn hit(name: &str) {
    match action(name) {
        None => {}
        Some(Action::Panic) => panic!("failpoint {name}"),
        Some(_) => kill(name),
    }
}

/// [`hit`] for an asynchronous step, which `NAME=sleep(MS)` can also hold up.
pub async fn pause(name: &str) {
    match action(name) {
        None => {}
        Some(Action::Kill) => kill(name),
        Some(Action::Panic) => panic!("failpoint {name}"),
        Some(Action::Sleep(d)) => {
            tracing::warn!(failpoint = name, ?d, "failpoint: waiting");
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_comma_separated_with_optional_sleeps() {
        assert_eq!(
            parse(" start:after-spawn, ,rm:after-teardown, start:after-network = sleep(250)"),
            [
                ("start:after-spawn".to_string(), Action::Kill),
                ("rm:after-teardown".to_string(), Action::Kill),
                (
                    "start:after-network".to_string(),
                    Action::Sleep(Duration::from_millis(250))
                ),
            ]
        );
        assert_eq!(parse("a=snooze(1)"), [("a".to_string(), Action::Kill)]);
        assert_eq!(parse("a = panic"), [("a".to_string(), Action::Panic)]);
        assert!(parse("").is_empty());
    }
}
