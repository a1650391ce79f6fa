//! Health checks, as Docker runs them: the image's `HEALTHCHECK` under the container's
//! `--health-*` settings, probed by an exec every interval while the container runs; the last
//! five results kept, `starting` until a probe passes, `unhealthy` after `retries` failures in a
//! row (failures within the start period do not count while it is still starting), a
//! `health_status: ...` event at each change.
//!
//! Pure: [`merge`], [`Probe::from_config`], [`Health::record`], [`probe_output`]. The effect is
//! [`monitor`], one task per run, started and stopped by the supervisor: it holds the engine's
//! lock only to plan a probe and to record its result, never while the probe runs.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use berth_api::container_create::HealthConfig;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

use super::ContainerError;
use super::engine::Engine;
use super::exec::ExecOptions;
use crate::events::Event;

/// Results kept in `State.Health.Log` (Docker's).
pub const MAX_LOG: usize = 5;
/// Bytes of a probe's output kept (Docker's).
pub const MAX_OUTPUT: usize = 4096;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;

/// `State.Health.Status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No probe has passed yet in this run.
    #[default]
    Starting,
    /// The last probe passed.
    Healthy,
    /// `retries` probes failed in a row.
    Unhealthy,
}

impl HealthStatus {
    /// Docker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (`State.Health.Log` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthResult {
    /// RFC 3339 with nanoseconds.
    pub start: String,
    /// RFC 3339 with nanoseconds.
    pub end: String,
    /// 0 passed; -1 when the probe could not run or timed out.
    pub exit_code: i64,
    /// Its output, stdout and stderr as they came, at most [`MAX_OUTPUT`] bytes.
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    /// Where it stands.
    pub status: HealthStatus,
    /// Failures in a row that counted.
    pub failing_streak: u32,
    /// The last [`MAX_LOG`] results, oldest first.
    pub log: Vec<HealthResult>,
}

impl Health {
    /// Records `result`; `in_start_period` is whether it began within the start period of
    /// the run. Returns the new status when it changed.
    pub fn record(
        &mut self,
        result: HealthResult,
        in_start_period: bool,
        retries: u32,
    ) -> Option<HealthStatus> {
        let before = self.status;
        let passed = result.exit_code == 0;
        self.log.push(result);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
        if passed {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak = self.failing_streak.saturating_add(1);
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        (self.status != before).then_some(self.status)
    }
}

/// The check a container runs: the container's settings over the image's, field by field (an
/// empty test or a zero duration takes the image's), as Docker merges them at create.
pub fn merge(user: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(mut u) = user else {
        return image;
    };
    if let Some(i) = image {
        if u.test.as_ref().is_none_or(Vec::is_empty) {
            u.test = i.test;
        }
        if u.interval == 0 {
            u.interval = i.interval;
        }
        if u.timeout == 0 {
            u.timeout = i.timeout;
        }
        if u.start_period == 0 {
            u.start_period = i.start_period;
        }
        if u.retries == 0 {
            u.retries = i.retries;
        }
    }
    Some(u)
}

/// Docker's checks of the health config a client sends, with its messages (the image's is
/// taken as it is; a test type Docker does not know runs no probe, as in Docker).
pub fn validate(c: &HealthConfig) -> Result<(), ContainerError> {
    const MIN: i64 = 1_000_000;
    for (name, v) in [
        ("Interval", c.interval),
        ("Timeout", c.timeout),
        ("StartPeriod", c.start_period),
    ] {
        if v != 0 && v < MIN {
            return Err(ContainerError::Invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms (got {v}ns)"
            )));
        }
    }
    if c.retries < 0 {
        return Err(ContainerError::Invalid(format!(
            "Retries in Healthcheck cannot be negative (got {})",
            c.retries
        )));
    }
    Ok(())
}

/// A check as it runs: the command and Docker's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What the exec runs.
    pub cmd: Vec<String>,
    /// Between probes.
    pub interval: Duration,
    /// A probe's limit.
    pub timeout: Duration,
    /// Failures in it do not count while starting.
    pub start_period: Duration,
    /// Failures in a row that make it unhealthy.
    pub retries: u32,
}

fn nanos_or(v: i64, default: Duration) -> Duration {
    u64::try_from(v)
        .ok()
        .filter(|n| *n > 0)
        .map_or(default, Duration::from_nanos)
}

impl Probe {
    /// The probe of `cfg` (`None`: no check, or `NONE`); `CMD-SHELL` runs under `shell`
    /// (the image's `SHELL`, `/bin/sh -c` when empty).
    pub fn from_config(cfg: Option<&HealthConfig>, shell: &[String]) -> Option<Probe> {
        let cfg = cfg?;
        let test = cfg.test.as_deref()?;
        let cmd = match test {
            [k, rest @ ..] if k == "CMD" && !rest.is_empty() => rest.to_vec(),
            // Docker joins what follows CMD-SHELL into one command line.
            [k, rest @ ..] if k == "CMD-SHELL" && !rest.is_empty() => {
                let mut c = if shell.is_empty() {
                    vec!["/bin/sh".to_string(), "-c".to_string()]
                } else {
                    shell.to_vec()
                };
                c.push(rest.join(" "));
                c
            }
            _ => return None,
        };
        Some(Probe {
            cmd,
            interval: nanos_or(cfg.interval, DEFAULT_INTERVAL),
            timeout: nanos_or(cfg.timeout, DEFAULT_TIMEOUT),
            start_period: nanos_or(cfg.start_period, Duration::ZERO),
            retries: u32::try_from(cfg.retries)
                .ok()
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_RETRIES),
        })
    }
}

/// A probe's output from the framed stream its exec wrote: stdout and stderr in the order
/// they came, at most [`MAX_OUTPUT`] bytes; a frame cut short at the end is taken as far as
/// it goes.
pub fn probe_output(mut raw: &[u8]) -> String {
    let mut out = Vec::new();
    while raw.len() >= 8 && out.len() < MAX_OUTPUT {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let body = &raw[8..];
        let take = len.min(body.len()).min(MAX_OUTPUT - out.len());
        out.extend_from_slice(&body[..take]);
        if len > body.len() {
            break;
        }
        raw = &body[len..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `id`'s probes while its run under shim `shim_pid` lasts (the supervisor aborts it at
/// the exit; it also ends by itself when it finds the run gone).
pub async fn monitor(engine: Arc<Mutex<Engine>>, id: String, shim_pid: i32, probe: Probe) {
    loop {
        tokio::time::sleep(probe.interval).await;
        let plan = {
            let e = engine.lock().await;
            let Some(c) = e.containers.get(&id) else {
                return;
            };
            if c.state.shim_pid != shim_pid || !c.state.status.is_live() {
                return;
            }
            // Docker does not probe a paused container (nothing is recorded meanwhile).
            if c.state.status == super::state::Status::Paused {
                continue;
            }
            e.exec_plan(
                &id,
                &ExecOptions {
                    cmd: probe.cmd.clone(),
                    ..ExecOptions::default()
                },
            )
        };
        let start = berth_common::time::now_rfc3339_nano();
        let started = std::time::SystemTime::now();
        let (exit_code, output) = match plan {
            Ok(plan) => run(plan, probe.timeout).await,
            Err(e) => (-1, e.to_string()),
        };
        let result = HealthResult {
            start,
            end: berth_common::time::now_rfc3339_nano(),
            exit_code,
            output,
        };
        let mut e = engine.lock().await;
        match e.health_record(&id, shim_pid, result, started, &probe) {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(container = %id, error = %err, "recording a health check");
                return;
            }
        }
    }
}

/// Runs one probe to its end or its timeout (its process killed then).
async fn run(plan: super::exec::ExecPlan, timeout: Duration) -> (i64, String) {
    let req = crate::runtime::attach::AttachRequest {
        stdin: false,
        stdout: true,
        stderr: true,
        detach_keys: Vec::new(),
    };
    let spawned = tokio::task::spawn_blocking(move || plan.spawn(Some(req))).await;
    let mut session = match spawned {
        Ok(Ok(s)) => s,
        Ok(Err(ContainerError::Exec { code, message })) => return (i64::from(code), message),
        Ok(Err(e)) => return (-1, e.to_string()),
        Err(e) => return (-1, e.to_string()),
    };
    // The probe's process, by pidfd: the timeout's SIGKILL can only reach that process, never
    // one that took its PID after it was reaped.
    let pidfd = pidfd_open(session.pid);
    let stream = session.stream.take();
    let work = async {
        // What is kept is bounded; the rest is read and dropped, so a chatty probe never
        // blocks on a full pipe.
        let mut kept = Vec::new();
        if let Some(s) = stream {
            if s.set_nonblocking(true).is_ok() {
                if let Ok(mut s) = tokio::net::UnixStream::from_std(s) {
                    let mut buf = [0u8; 8192];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let room = (MAX_OUTPUT * 4).saturating_sub(kept.len());
                                kept.extend_from_slice(&buf[..n.min(room)]);
                            }
                        }
                    }
                }
            }
        }
        let code = session.wait().await;
        (i64::from(code), probe_output(&kept))
    };
    tokio::pin!(work);
    tokio::select! {
        r = &mut work => r,
        () = tokio::time::sleep(timeout) => {
            if let Some(fd) = &pidfd {
                // SAFETY: a pidfd we own, a signal number, no siginfo, no flags.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    );
                }
            }
            // Its exit is still collected and its state directory removed (bounded: a
            // process the kernel cannot reap does not hold the monitor).
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut work).await;
            (
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    berth_common::humanize::go_duration(timeout)
                ),
            )
        }
    }
}

/// A pidfd for `pid` (`None` when it is gone or cannot be had).
fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if pid <= 0 {
        return None;
    }
    // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a descriptor the kernel just returned, owned by nothing else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

impl Engine {
    /// Records a probe of `id`'s run under `shim_pid` that began at `started`; `false` when
    /// that run is over (the monitor then ends).
    pub(super) fn health_record(
        &mut self,
        id: &str,
        shim_pid: i32,
        result: HealthResult,
        started: std::time::SystemTime,
        probe: &Probe,
    ) -> Result<bool, ContainerError> {
        let Some(c) = self.containers.get(id) else {
            return Ok(false);
        };
        if c.state.shim_pid != shim_pid || !c.state.status.is_live() {
            return Ok(false);
        }
        let started_ms = started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let in_start_period =
            started_ms.saturating_sub(c.state.started_ms) < probe.start_period.as_millis() as u64;
        let mut changed = None;
        self.set_state(id, |s| {
            let h = s.health.get_or_insert_with(Health::default);
            changed = h.record(result, in_start_period, probe.retries);
        })?;
        if let Some(status) = changed {
            let action = format!("health_status: {}", status.as_str());
            self.emit(|| Event::container(&self.containers[id], &action, &[]));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(code: i64) -> HealthResult {
        HealthResult {
            exit_code: code,
            ..HealthResult::default()
        }
    }

    #[test]
    fn status_follows_dockers_rules() {
        let mut h = Health::default();
        // Failures within the start period do not count while starting.
        assert_eq!(h.record(res(1), true, 3), None);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.record(res(0), true, 3), Some(HealthStatus::Healthy));
        // Once healthy, the start period no longer shelters failures.
        assert_eq!(h.record(res(1), true, 3), None);
        assert_eq!(h.record(res(1), false, 3), None);
        assert_eq!(h.failing_streak, 2);
        assert_eq!(h.record(res(-1), false, 3), Some(HealthStatus::Unhealthy));
        assert_eq!(h.failing_streak, 3);
        assert_eq!(h.record(res(2), false, 3), None);
        assert_eq!(h.record(res(0), false, 3), Some(HealthStatus::Healthy));
        assert_eq!(h.failing_streak, 0);
        // The log keeps the last five, oldest first.
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.log.last().unwrap().exit_code, 0);
        assert_eq!(h.log[0].exit_code, 1);
    }

    #[test]
    fn merges_over_the_image_and_fills_defaults() {
        let image = HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: 5_000_000_000,
            retries: 7,
            ..HealthConfig::default()
        };
        let user = HealthConfig {
            timeout: 2_000_000_000,
            ..HealthConfig::default()
        };
        let m = merge(Some(user), Some(image.clone())).unwrap();
        assert_eq!(m.test, image.test);
        assert_eq!(
            (m.interval, m.timeout, m.retries),
            (5_000_000_000, 2_000_000_000, 7)
        );
        let p = Probe::from_config(Some(&m), &[]).unwrap();
        assert_eq!(p.cmd, ["true"]);
        assert_eq!(p.interval, Duration::from_secs(5));
        assert_eq!(p.start_period, Duration::ZERO);
        // NONE disables the image's.
        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        };
        let m = merge(Some(none), Some(image)).unwrap();
        assert_eq!(Probe::from_config(Some(&m), &[]), None);
        let shell = HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), "exit 3".into()]),
            ..HealthConfig::default()
        };
        let p = Probe::from_config(Some(&shell), &[]).unwrap();
        assert_eq!(p.cmd, ["/bin/sh", "-c", "exit 3"]);
        assert_eq!(
            (p.interval, p.timeout, p.retries),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, 3)
        );
        assert!(validate(&shell).is_ok());
        // compose's ["CMD-SHELL", "pg_isready", "-U", "pg"]: one command line, as Docker.
        let split = HealthConfig {
            test: Some(vec![
                "CMD-SHELL".into(),
                "pg_isready".into(),
                "-U".into(),
                "pg".into(),
            ]),
            ..HealthConfig::default()
        };
        assert_eq!(
            Probe::from_config(Some(&split), &[]).unwrap().cmd,
            ["/bin/sh", "-c", "pg_isready -U pg"]
        );
        let bad = HealthConfig {
            interval: 10,
            ..HealthConfig::default()
        };
        assert!(validate(&bad).unwrap_err().to_string().contains("Interval"));
        // A test type Docker does not know: no probe, as Docker (it only warns).
        let unknown = HealthConfig {
            test: Some(vec!["RUN".into(), "x".into()]),
            ..HealthConfig::default()
        };
        assert!(validate(&unknown).is_ok());
        assert_eq!(Probe::from_config(Some(&unknown), &[]), None);
    }

    #[test]
    fn output_is_bounded_and_keeps_order() {
        let mut raw = Vec::new();
        for (stream, body) in [(1u8, &b"out "[..]), (2, b"err"), (1, &[b'x'; 5000][..])] {
            raw.extend_from_slice(&[stream, 0, 0, 0]);
            raw.extend_from_slice(&(body.len() as u32).to_be_bytes());
            raw.extend_from_slice(body);
        }
        let out = probe_output(&raw);
        assert!(out.starts_with("out errxx"));
        assert_eq!(out.len(), MAX_OUTPUT);
        // Cut short: taken as far as it goes.
        assert_eq!(probe_output(&raw[..22]), "out er");
        assert_eq!(probe_output(&raw[..5]), "");
    }
}
