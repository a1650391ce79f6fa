//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`) and Docker's back-off:
//! 100 ms doubling on each restart up to a minute, back to 100 ms once a run lasted 10 s.
//! Pure: time comes in as arguments.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ContainerError;

/// A restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (Docker's default).
    #[default]
    No,
    /// When it exits non-zero, at most `max` times (0: no limit).
    OnFailure {
        /// `:N`.
        max: u32,
    },
    /// Whenever it exits, and when the daemon starts.
    Always,
    /// As `always`, except after the user stopped it.
    UnlessStopped,
}

/// First back-off delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Longest back-off delay.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

impl RestartPolicy {
    /// Parses `--restart` (`NAME[:MAX]`).
    pub fn parse(s: &str) -> Result<RestartPolicy, ContainerError> {
        let (name, max) = match s.split_once(':') {
            None => (s, 0),
            Some((name, n)) => (
                name,
                n.parse().map_err(|_| {
                    ContainerError::Invalid(format!(
                        "invalid restart policy {s:?}: maximum retry count {n:?} is not a number"
                    ))
                })?,
            ),
        };
        if name != "on-failure" && s.contains(':') {
            return Err(ContainerError::Invalid(format!(
                "invalid restart policy {s:?}: maximum retry count can only be used with on-failure"
            )));
        }
        Self::from_parts(name, i64::from(max))
    }

    /// The policy of the API's `RestartPolicy` (`Name`, `MaximumRetryCount`), by moby's
    /// rules: an empty name is `no` whatever the count (kept for old clients); a count is
    /// refused with the other names and when negative.
    pub fn from_parts(name: &str, max: i64) -> Result<RestartPolicy, ContainerError> {
        let count_refused = || {
            ContainerError::Invalid(format!(
                "invalid restart policy {name:?} with maximum retry count {max}: a count can only be used with on-failure"
            ))
        };
        match name {
            "" => Ok(RestartPolicy::No),
            "no" | "always" | "unless-stopped" if max != 0 => Err(count_refused()),
            "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure {
                max: u32::try_from(max).map_err(|_| {
                    ContainerError::Invalid(format!(
                        "invalid restart policy on-failure with maximum retry count {max}: give 0 (no limit) or more"
                    ))
                })?,
            }),
            _ => Err(ContainerError::Invalid(format!(
                "invalid restart policy {name:?}: expected no, always, unless-stopped or on-failure[:N]"
            ))),
        }
    }

    /// Docker's text form.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// Whether a container that just exited with `exit_code`, after `restarts` restarts so far,
    /// is started again. `stopped_by_user`: it ended through `stop`/`kill`/`rm`.
    pub fn restarts_after_exit(self, exit_code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max } => exit_code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Whether a daemon starting up starts this stopped container again (`on-failure:N` counts
    /// the restarts already made).
    pub fn restarts_at_daemon_start(
        self,
        exit_code: i32,
        restarts: u32,
        stopped_by_user: bool,
    ) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !stopped_by_user,
            RestartPolicy::OnFailure { max } => {
                exit_code != 0 && !stopped_by_user && (max == 0 || restarts < max)
            }
        }
    }
}

/// The delay before the next restart, given the previous delay (None: first restart) and how
/// long the run that just ended lasted.
pub fn next_delay(previous: Option<Duration>, ran_for: Duration) -> Duration {
    match previous {
        _ if ran_for >= RESET_AFTER => FIRST_DELAY,
        None => FIRST_DELAY,
        Some(d) => (d * 2).min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockers_forms() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(RestartPolicy::parse("").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max: 3 }
        );
        assert_eq!(
            RestartPolicy::parse("on-failure").unwrap(),
            RestartPolicy::OnFailure { max: 0 }
        );
        let e = RestartPolicy::parse("sometimes").unwrap_err().to_string();
        assert!(
            e.contains("\"sometimes\"") && e.contains("on-failure[:N]"),
            "{e}"
        );
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        assert!(
            RestartPolicy::parse("always:2")
                .unwrap_err()
                .to_string()
                .contains("on-failure")
        );
        // The API's RestartPolicy, as docker-py and compose send it.
        assert_eq!(
            RestartPolicy::from_parts("on-failure", 2).unwrap(),
            RestartPolicy::OnFailure { max: 2 }
        );
        assert_eq!(RestartPolicy::from_parts("", 0).unwrap(), RestartPolicy::No);
        let e = RestartPolicy::from_parts("always", 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"always\"") && e.contains("count 3"), "{e}");
        assert!(RestartPolicy::from_parts("sometimes", 0).is_err());
        // An empty name with a count, as old clients send it, is "no" (moby's rule).
        assert_eq!(RestartPolicy::from_parts("", 5).unwrap(), RestartPolicy::No);
        let e = RestartPolicy::from_parts("on-failure", -1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("-1"), "{e}");
    }

    #[test]
    fn which_exits_restart() {
        use RestartPolicy::*;
        assert!(!No.restarts_after_exit(1, 0, false));
        assert!(Always.restarts_after_exit(0, 100, false));
        assert!(!Always.restarts_after_exit(137, 0, true));
        assert!(OnFailure { max: 2 }.restarts_after_exit(1, 1, false));
        assert!(!OnFailure { max: 2 }.restarts_after_exit(1, 2, false));
        assert!(!OnFailure { max: 0 }.restarts_after_exit(0, 0, false));
        assert!(OnFailure { max: 0 }.restarts_after_exit(3, 1000, false));
        assert!(Always.restarts_at_daemon_start(0, 0, true));
        assert!(!UnlessStopped.restarts_at_daemon_start(0, 0, true));
        assert!(UnlessStopped.restarts_at_daemon_start(0, 0, false));
        assert!(!No.restarts_at_daemon_start(1, 0, false));
        assert!(OnFailure { max: 3 }.restarts_at_daemon_start(1, 2, false));
        assert!(
            !OnFailure { max: 3 }.restarts_at_daemon_start(1, 3, false),
            "retries used up"
        );
    }

    #[test]
    fn back_off_doubles_caps_and_resets() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..12 {
            let n = next_delay(d, Duration::from_millis(5));
            seen.push(n);
            d = Some(n);
        }
        assert_eq!(seen[0], FIRST_DELAY);
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(seen[4], Duration::from_millis(1600));
        assert_eq!(*seen.last().unwrap(), MAX_DELAY);
        assert_eq!(
            next_delay(Some(MAX_DELAY), Duration::from_secs(11)),
            FIRST_DELAY
        );
    }
}
