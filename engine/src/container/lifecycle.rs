//! Start, stop, kill, pause, restart, wait and exit handling (removal is in `remove`,
//! restoring after a daemon restart in `restore`). Each operation asks [`check`] first, records
//! every state change atomically, and undoes a failed start with the same idempotent cleanup
//! that follows every exit.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::engine::Engine;
use super::exit::ExitWatch;
use super::remove::{RemovePlan, delete};
use super::restart::next_delay;
use super::state::{Op, Status, Verdict, check};
use super::{ContainerError, io_err, rootfs};
use crate::events::{Event, EventSink};
use crate::runtime::attach::{AttachRequest, Request};
use crate::runtime::oci::{OciRuntime, RuncLike};
use crate::runtime::shim;

/// What happened after a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// It stays exited with this code.
    Exited(i32),
    /// Its restart policy starts it again after this delay (the supervisor's restart loop).
    Restart(Duration),
    /// `--rm` removed it; it had exited with this code.
    Removed(i32),
}

/// `signal` as the runtime's `kill` takes it (`TERM`, `9`): a name with or without `SIG`, or a
/// number 1-64; anything else refused naming it.
pub fn signal_arg(signal: &str) -> Result<String, ContainerError> {
    let upper = signal.to_ascii_uppercase();
    let sig = upper.trim_start_matches("SIG");
    // Real-time signals by name, as Docker reads them (systemd images stop with RTMIN+3).
    let rt = |rest: &str, base: i32, sign: i32| -> Option<String> {
        let n: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let v = base + sign * n;
        (34..=64).contains(&v).then(|| v.to_string())
    };
    if let Some(rest) = sig.strip_prefix("RTMIN") {
        if let Some(v) = rt(rest.trim_start_matches('+'), 34, 1) {
            return Ok(v);
        }
    } else if let Some(rest) = sig.strip_prefix("RTMAX") {
        if let Some(v) = rt(rest.trim_start_matches('-'), 64, -1) {
            return Ok(v);
        }
    }
    let valid = sig.parse::<i32>().is_ok_and(|n| (1..=64).contains(&n))
        || format!("SIG{sig}")
            .parse::<nix::sys::signal::Signal>()
            .is_ok();
    if !valid {
        return Err(ContainerError::Invalid(format!(
            "invalid signal: {signal} (expected a name such as TERM, SIGKILL or RTMIN+3, or a number 1-64)"
        )));
    }
    Ok(sig.to_string())
}

/// How long `rm -f` and a timed-out `stop` wait for the process after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// A stop in progress, waited for without the engine (see [`Engine::stop_begin`]).
#[derive(Debug)]
pub struct StopPlan {
    /// The container.
    pub id: String,
    /// Its shim (pass the plan to [`Engine::stop_finish`] or [`Engine::stop_record`] once
    /// [`StopPlan::wait`] returns).
    pub shim_pid: i32,
    timeout: Duration,
    /// `--stop-signal` (`TERM` by default).
    signal: String,
    watch: Option<ExitWatch>,
    runtime: crate::runtime::oci::RuncLike,
    /// Where to report the signals and the stop, with the container's event to report them as.
    events: Option<(EventSink, Event)>,
}

impl StopPlan {
    /// SIGTERM, the timeout, SIGKILL to every process, and the exit.
    pub async fn wait(&self) -> Result<(), ContainerError> {
        let Some(watch) = &self.watch else {
            return Ok(());
        };
        if !self.timeout.is_zero() {
            self.signal(&self.signal, false).await;
            self.report(
                "kill",
                &[("signal", crate::events::signal_number(&self.signal))],
            );
            if tokio::time::timeout(self.timeout, watch.wait())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        self.signal("KILL", true).await;
        self.report("kill", &[("signal", "9".into())]);
        if tokio::time::timeout(KILL_WAIT, watch.wait()).await.is_err() {
            return Err(ContainerError::Conflict(format!(
                "container {} did not exit {}s after SIGKILL",
                self.id,
                KILL_WAIT.as_secs()
            )));
        }
        Ok(())
    }

    /// The runtime's `kill` (a process, as long as runc takes) on a blocking thread, so
    /// stops together do not hold the async workers; "already gone" is for the wait to see.
    async fn signal(&self, signal: &str, all: bool) {
        let (runtime, id, signal) = (self.runtime.clone(), self.id.clone(), signal.to_string());
        let _ = tokio::task::spawn_blocking(move || runtime.kill(&id, &signal, all)).await;
    }

    /// Reports `action` on the container, with `extra` attributes, as happening now.
    pub(super) fn report(&self, action: &str, extra: &[(&str, String)]) {
        if let Some((sink, ev)) = &self.events {
            let mut attributes = ev.attributes.clone();
            for (k, v) in extra {
                attributes.insert((*k).to_string(), v.clone());
            }
            sink.send(Event::new(ev.kind, action, ev.actor_id.clone(), attributes));
        }
    }
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Engine {
    /// The last exit code of a container removed lately (bounded memory of the last 256).
    pub fn removed_exit_code(&self, id: &str) -> Option<i32> {
        self.removed
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map(|(_, code)| *code)
    }

    /// `docker attach`: joins a running container's streams through its shim (blocking: for a
    /// caller that owns the engine; berthd connects without the lock, see
    /// [`Engine::shim_dir`]).
    pub fn attach(&self, what: &str, req: AttachRequest) -> Result<UnixStream, ContainerError> {
        let (dir, name) = self.shim_dir(what, false)?;
        shim::connect(&dir, &Request::Attach(req))
            .map_err(io_err(format!("attaching to container {name}")))
    }

    /// Sets the size of a running container's terminal (blocking: for a caller that owns the
    /// engine; berthd asks the shim without the lock).
    pub fn resize(&self, what: &str, rows: u16, cols: u16) -> Result<(), ContainerError> {
        let (dir, name) = self.shim_dir(what, true)?;
        super::exec::resize_terminal(&dir, rows, cols)
            .map_err(io_err(format!("resizing the terminal of container {name}")))
    }

    /// Where the shim of running container `what` answers, and the container's name, for an
    /// attachment or (`resize`) a resize of its terminal; the connection is the caller's,
    /// made without the engine's lock.
    pub fn shim_dir(&self, what: &str, resize: bool) -> Result<(PathBuf, String), ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        check(Op::Attach, c.state.status, &c.name)?;
        if resize && !c.options.tty {
            return Err(ContainerError::Conflict(format!(
                "container {} has no terminal to resize (it was not created with -t)",
                c.name
            )));
        }
        Ok((self.bundle(&id), c.name.clone()))
    }

    /// Removes what a run made: network, rootfs mount, the runtime's container, the bundle.
    /// Idempotent, best effort.
    pub(super) async fn teardown_run(&mut self, id: &str) {
        self.run_teardown(id).run().await;
        self.reindex(id);
    }

    /// How to remove what a run of `id` made, without the engine (see [`RunTeardown`]).
    pub(super) fn run_teardown(&self, id: &str) -> RunTeardown {
        RunTeardown {
            id: id.to_string(),
            container_dir: None,
            ns: self.netns_path(id),
            bundle: self.bundle(id),
            execs: self.execs_dir(id),
            cgroup: self.cgroups_path(id),
            runtime: self.runtime_of(id),
            wiring: self.wiring.clone(),
        }
    }

    /// A watch on the shim of a live container (for a daemon's supervisor: wait on it without
    /// holding the engine, then call [`Engine::on_exit`]). `None` when it is not live.
    pub fn exit_watch(&self, what: &str) -> Result<Option<ExitWatch>, ContainerError> {
        let id = self.resolve(what)?;
        let s = &self.containers[&id].state;
        if !s.status.is_live() || s.shim_pid <= 0 {
            return Ok(None);
        }
        ExitWatch::new(s.shim_pid).map_err(io_err(format!("watching the shim of {id}")))
    }

    /// Records the exit of container `id` (whose shim was `shim_pid`, when known: a later run
    /// is not mistaken for it), undoes its run and applies `--rm` or the restart policy. The
    /// engine is held throughout; a daemon takes the steps ([`Engine::exit_begin`],
    /// [`RunTeardown::run`], [`Engine::exit_finish`]) and lets it go while the run is undone.
    pub async fn on_exit(
        &mut self,
        id: &str,
        shim_pid: Option<i32>,
    ) -> Result<AfterExit, ContainerError> {
        match self.exit_begin(id, shim_pid)? {
            ExitStep::Done(after) => Ok(after),
            ExitStep::Teardown(plan) => {
                plan.undo.run().await;
                self.exit_finish(*plan).await
            }
        }
    }

    /// The first step of an exit: the exit code, OOM kill and end recorded (a crash from here
    /// on leaves an exited record whose leftovers the next engine's sweep removes), `die`
    /// reported, and the container marked busy until [`Engine::exit_finish`] (a start waits).
    pub fn exit_begin(
        &mut self,
        id: &str,
        shim_pid: Option<i32>,
    ) -> Result<ExitStep, ContainerError> {
        let id = self.resolve(id)?;
        let s = &self.containers[&id].state;
        if !s.status.is_live() || shim_pid.is_some_and(|p| p != s.shim_pid) {
            return Ok(ExitStep::Done(AfterExit::Exited(s.exit_code)));
        }
        let record = shim::read_exit(&self.bundle(&id));
        let (code, oom, finished) = match &record {
            Some(r) => (r.exit_code, r.oom_killed, r.finished_at.clone()),
            // The shim died without recording (killed itself): unknown, as Docker's 255.
            None => (255, false, berth_common::time::now_rfc3339_nano()),
        };
        let c = &self.containers[&id];
        let ran_for = Duration::from_millis(now_ms().saturating_sub(c.state.started_ms));
        let restart = c.restart_policy.restarts_after_exit(
            code,
            c.state.restart_count,
            c.state.stopped_by_user,
        );
        let auto_remove = c.options.auto_remove && !self.restarting.contains(&id);
        let prev = (c.state.backoff_ms > 0).then(|| Duration::from_millis(c.state.backoff_ms));
        let delay = next_delay(prev, ran_for);
        // Busy before the record is published: whoever the record wakes sees it busy.
        self.busy.insert(id.clone());
        let recorded = self.set_state(&id, |s| {
            s.exit_code = code;
            s.oom_killed = oom;
            s.finished_at = finished;
            s.pid = 0;
            s.shim_pid = 0;
            // As Docker when its health monitor stops: unhealthy until the next run proves
            // otherwise.
            if let Some(h) = &mut s.health {
                h.status = super::health::HealthStatus::Unhealthy;
            }
            if record.is_none() {
                s.error = "the shim ended without recording the exit".into();
            }
            if restart {
                s.status = Status::Restarting;
                s.backoff_ms = delay.as_millis() as u64;
            } else {
                s.status = Status::Exited;
            }
        });
        if let Err(e) = recorded {
            // Known in memory all the same: the run is undone; the next engine reads the record
            // it could not write as live and finds the shim gone.
            tracing::error!(container = %id, error = %e, "recording an exit");
        }
        let c = &self.containers[&id];
        if oom {
            self.emit(|| Event::container(c, "oom", &[]));
        }
        self.emit(|| {
            Event::container(
                c,
                "die",
                &[
                    ("exitCode", code.to_string()),
                    ("execDuration", ran_for.as_secs().to_string()),
                ],
            )
        });
        Ok(ExitStep::Teardown(Box::new(ExitPlan {
            undo: self.run_teardown(&id),
            id,
            code,
            auto_remove,
            after: if restart {
                AfterExit::Restart(delay)
            } else {
                AfterExit::Exited(code)
            },
        })))
    }

    /// The last step of an exit, once its run is undone, by a caller that owns the engine:
    /// [`Engine::exit_end`], and an `--rm` container's removal in a row. A daemon uses
    /// [`finish_exit`], which lets the engine go while the container's files are removed.
    pub async fn exit_finish(&mut self, plan: ExitPlan) -> Result<AfterExit, ContainerError> {
        match self.exit_end(plan)? {
            ExitEnd::Done(after) => Ok(after),
            ExitEnd::Remove { plan, undo, code } => {
                let removed = undo.run_and_remove().await;
                delete(self.remove_finish(*plan, removed)?);
                Ok(AfterExit::Removed(code))
            }
        }
    }

    /// The last step of an exit recorded: the container is no longer busy; an `--rm` one is
    /// marked for removal instead (still busy, so nothing starts or connects it) and what
    /// removes its files is returned, to run without the engine, then
    /// [`Engine::remove_finish`].
    pub fn exit_end(&mut self, plan: ExitPlan) -> Result<ExitEnd, ContainerError> {
        if !self.containers.contains_key(&plan.id) {
            self.end_busy(&plan.id);
            return Ok(ExitEnd::Done(plan.after));
        }
        if plan.auto_remove {
            // Not live any more: no SIGKILL to wait for.
            let rm = RemovePlan {
                id: plan.id.clone(),
                stop: None,
                volumes: true,
            };
            return match self.remove_mark(&rm) {
                Ok(undo) => Ok(ExitEnd::Remove {
                    plan: Box::new(rm),
                    undo: Box::new(undo),
                    code: plan.code,
                }),
                Err(e) => {
                    self.end_busy(&plan.id);
                    Err(e)
                }
            };
        }
        self.end_busy(&plan.id);
        self.reindex(&plan.id);
        Ok(ExitEnd::Done(plan.after))
    }

    /// The first step of a restart by policy: `None` when it is no longer due (the user
    /// stopped, started or removed the container meanwhile).
    pub fn restart_begin(&mut self, id: &str) -> Result<RestartStep, ContainerError> {
        let Some(c) = self.containers.get(id) else {
            return Ok(RestartStep::NotDue);
        };
        if c.state.status != Status::Restarting || c.state.stopped_by_user || self.is_starting(id) {
            return Ok(RestartStep::NotDue);
        }
        self.set_state(id, |s| s.restart_count += 1)?;
        match self.prepare_run(id, None) {
            Ok(plan) => Ok(RestartStep::Run(Box::new(plan))),
            Err(e) => Ok(match self.restart_failed(id, e)? {
                Some(delay) => RestartStep::Retry(delay),
                None => RestartStep::NotDue,
            }),
        }
    }

    /// The last step of a restart by policy, once its start is recorded (`started`, by
    /// [`super::start::finish_start`]): nothing more when it runs or the container is gone,
    /// else the policy decides: a start that failed counts as a run that failed at once (exit
    /// code 128), as Docker's restart manager does; `Some(delay)` says when to try next.
    pub fn restart_ended(
        &mut self,
        id: &str,
        started: Result<(), ContainerError>,
    ) -> Result<Option<Duration>, ContainerError> {
        match started {
            Ok(()) => Ok(None),
            Err(ContainerError::NotFound(_)) => Ok(None),
            Err(e) => self.restart_failed(id, e),
        }
    }

    /// A restart by policy failed with `e`: retried after a back-off while the policy says so.
    fn restart_failed(
        &mut self,
        id: &str,
        e: ContainerError,
    ) -> Result<Option<Duration>, ContainerError> {
        let Some(c) = self.containers.get(id) else {
            return Ok(None);
        };
        if !c.restart_policy.restarts_after_exit(
            128,
            c.state.restart_count,
            c.state.stopped_by_user,
        ) {
            return Err(e);
        }
        let prev = (c.state.backoff_ms > 0).then(|| Duration::from_millis(c.state.backoff_ms));
        let delay = next_delay(prev, Duration::ZERO);
        self.set_state(id, |s| {
            s.status = Status::Restarting;
            s.exit_code = 128;
            s.backoff_ms = delay.as_millis() as u64;
        })?;
        tracing::warn!(container = id, error = %e, ?delay, "restart policy: start failed; retrying");
        Ok(Some(delay))
    }

    /// `docker wait`: the exit code once the container's process ends (at once when it is not
    /// running). Exit handling (`--rm`, restart policy) runs as part of it.
    pub async fn wait(&mut self, what: &str) -> Result<(i32, AfterExit), ContainerError> {
        let id = self.resolve(what)?;
        if let Some(w) = self.exit_watch(&id)? {
            w.wait().await;
        }
        let after = self.on_exit(&id, None).await?;
        let code = match after {
            AfterExit::Exited(c) | AfterExit::Removed(c) => c,
            AfterExit::Restart(_) => self.containers[&id].state.exit_code,
        };
        Ok((code, after))
    }

    /// `docker kill -s SIGNAL` (the name with or without `SIG`, or its number), the engine
    /// held throughout; a daemon takes the steps ([`Engine::kill_begin`], [`RuntimeCall::run`],
    /// [`Engine::runtime_call_finish`]) and lets it go while the runtime runs.
    pub fn kill(&mut self, what: &str, signal: &str) -> Result<(), ContainerError> {
        let call = self.kill_begin(what, signal)?;
        let done = call.run_blocking();
        self.runtime_call_finish(&call, done)
    }

    /// The first step of a kill: Docker's checks, the signal checked, the stop recorded as the
    /// user's (restart policies hold off) and the kill reported.
    pub fn kill_begin(&mut self, what: &str, signal: &str) -> Result<RuntimeCall, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        check(Op::Kill, c.state.status, &c.name)?;
        let sig = signal_arg(signal)?;
        let sig = sig.as_str();
        self.set_state(&id, |s| s.stopped_by_user = true)?;
        self.emit(|| {
            Event::container(
                &self.containers[&id],
                "kill",
                &[("signal", crate::events::signal_number(sig))],
            )
        });
        // A frozen task acts on the signal only once thawed (Docker resumes it too).
        let thaw = self.containers[&id].state.status == Status::Paused;
        Ok(RuntimeCall {
            runtime: self.runtime_of(&id),
            op: CallOp::Kill {
                signal: sig.to_string(),
                thaw,
            },
            id,
        })
    }

    /// `docker pause` / `unpause` through the freezer, the engine held throughout (see
    /// [`Engine::kill`] for a daemon's steps).
    pub fn pause(&mut self, what: &str, paused: bool) -> Result<(), ContainerError> {
        let call = self.pause_begin(what, paused)?;
        let done = call.run_blocking();
        self.runtime_call_finish(&call, done)
    }

    /// The first step of a pause or unpause: Docker's checks.
    pub fn pause_begin(&mut self, what: &str, paused: bool) -> Result<RuntimeCall, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        check(
            if paused { Op::Pause } else { Op::Unpause },
            c.state.status,
            &c.name,
        )?;
        Ok(RuntimeCall {
            runtime: self.runtime_of(&id),
            op: CallOp::Pause(paused),
            id,
        })
    }

    /// The last step of a kill or a pause: what the runtime did recorded (a container that
    /// exited meanwhile stays as its exit left it).
    pub fn runtime_call_finish(
        &mut self,
        call: &RuntimeCall,
        done: Result<(), ContainerError>,
    ) -> Result<(), ContainerError> {
        done?;
        let id = &call.id;
        let Some(c) = self.containers.get(id) else {
            return Ok(());
        };
        if !c.state.status.is_live() {
            return Ok(());
        }
        match call.op {
            CallOp::Kill { thaw: true, .. } => {
                self.set_state(id, |s| s.status = Status::Running)?;
            }
            CallOp::Kill { .. } => {}
            CallOp::Pause(paused) => {
                self.set_state(id, |s| {
                    s.status = if paused {
                        Status::Paused
                    } else {
                        Status::Running
                    }
                })?;
                let action = if paused { "pause" } else { "unpause" };
                self.emit(|| Event::container(&self.containers[id], action, &[]));
            }
        }
        Ok(())
    }

    /// `docker stop`: SIGTERM, then SIGKILL after `timeout` (the container's `--stop-timeout`,
    /// else 10 s); returns the exit code (143 or 137 as Docker). A stopped container is left
    /// as it is. A daemon that must not hold the engine while it waits uses
    /// [`Engine::stop_begin`], [`StopPlan::wait`] and [`Engine::on_exit`] instead.
    pub async fn stop(
        &mut self,
        what: &str,
        timeout: Option<Duration>,
    ) -> Result<i32, ContainerError> {
        let id = self.resolve(what)?;
        if let Some(plan) = self.stop_begin(&id, timeout)? {
            plan.wait().await?;
            self.stop_finish(&plan).await?;
        }
        Ok(self.containers.get(&id).map_or(0, |c| c.state.exit_code))
    }

    /// The last step of a stop, once [`StopPlan::wait`] has returned: records the exit (as
    /// [`Engine::on_exit`]) and reports the stop.
    pub async fn stop_finish(&mut self, plan: &StopPlan) -> Result<AfterExit, ContainerError> {
        crate::failpoint::hit("stop:before-record");
        let after = self.on_exit(&plan.id, Some(plan.shim_pid)).await?;
        plan.report("stop", &[]);
        Ok(after)
    }

    /// [`Engine::stop_finish`]'s first step, for a daemon: the exit recorded and the stop
    /// reported; undo the run without the engine, then [`Engine::exit_finish`].
    pub fn stop_record(&mut self, plan: &StopPlan) -> Result<ExitStep, ContainerError> {
        crate::failpoint::hit("stop:before-record");
        let step = self.exit_begin(&plan.id, Some(plan.shim_pid))?;
        plan.report("stop", &[]);
        Ok(step)
    }

    /// The first step of a stop: records that the user stopped it (restart policies hold
    /// off), thaws a paused container, and returns what to wait for; `None` when there is
    /// nothing to stop.
    pub fn stop_begin(
        &mut self,
        what: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<StopPlan>, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        if check(Op::Stop, c.state.status, &c.name)? == Verdict::AlreadyDone {
            return Ok(None);
        }
        let timeout = timeout
            .or(c
                .options
                .stop_timeout
                .map(|s| Duration::from_secs(s.into())))
            .unwrap_or(Duration::from_secs(10));
        self.set_state(&id, |s| s.stopped_by_user = true)?;
        if self.containers[&id].state.status == Status::Restarting {
            self.set_state(&id, |s| s.status = Status::Exited)?;
            return Ok(None);
        }
        let watch = self.exit_watch(&id)?;
        if self.containers[&id].state.status == Status::Paused {
            // A frozen process cannot act on SIGTERM.
            let _ = self.runtime_of(&id).pause(&id, false);
        }
        let events = self
            .events
            .get()
            .map(|sink| (sink, Event::container(&self.containers[&id], "stop", &[])));
        let signal = self.containers[&id]
            .options
            .stop_signal
            .as_deref()
            .and_then(|s| signal_arg(s).ok())
            .unwrap_or_else(|| "TERM".into());
        let runtime = self.runtime_of(&id);
        Ok(Some(StopPlan {
            shim_pid: self.containers[&id].state.shim_pid,
            id,
            timeout,
            signal,
            watch,
            runtime,
            events,
        }))
    }

    /// `docker restart`: stop (as [`Engine::stop`], keeping an `--rm` container as Docker
    /// does) then start.
    pub async fn restart(
        &mut self,
        what: &str,
        timeout: Option<Duration>,
    ) -> Result<(), ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        check(Op::Restart, c.state.status, &c.name)?;
        self.restarting.insert(id.clone());
        let stopped = self.stop(&id, timeout).await;
        self.restarting.remove(&id);
        stopped?;
        self.start(&id).await
    }
}

/// What an exit leaves to do once recorded (see [`Engine::exit_begin`]).
#[derive(Debug)]
pub enum ExitStep {
    /// Nothing: it was recorded already (by the supervisor or a stop, whichever came first).
    Done(AfterExit),
    /// Undo the run without the engine ([`ExitPlan::undo`]), then [`Engine::exit_finish`].
    Teardown(Box<ExitPlan>),
}

/// An exit recorded, its run not yet undone.
#[derive(Debug)]
pub struct ExitPlan {
    id: String,
    code: i32,
    auto_remove: bool,
    after: AfterExit,
    undo: RunTeardown,
}

impl ExitPlan {
    /// What undoes the run.
    pub fn undo(&self) -> &RunTeardown {
        &self.undo
    }
}

/// What the last step of an exit leaves to do (see [`Engine::exit_end`]).
#[derive(Debug)]
pub enum ExitEnd {
    /// Nothing: this is how it ended.
    Done(AfterExit),
    /// An `--rm` container, marked for removal: remove its files with `undo` (without the
    /// engine), then [`Engine::remove_finish`]; it ended with `code`.
    Remove {
        /// The removal.
        plan: Box<RemovePlan>,
        /// What removes its run and files.
        undo: Box<RunTeardown>,
        /// Its exit code.
        code: i32,
    },
}

/// The last step of an exit for a daemon: [`Engine::exit_end`] under the engine's lock, and
/// an `--rm` container's files removed without it (the supervisor runs each exit in a task of
/// its own, so a container that wrote millions of files delays only its own removal).
pub async fn finish_exit(
    engine: &tokio::sync::Mutex<Engine>,
    plan: ExitPlan,
) -> Result<AfterExit, ContainerError> {
    let end = engine.lock().await.exit_end(plan)?;
    match end {
        ExitEnd::Done(after) => Ok(after),
        ExitEnd::Remove { plan, undo, code } => {
            let removed = undo.run_and_remove().await;
            let trash = engine.lock().await.remove_finish(*plan, removed)?;
            delete(trash);
            Ok(AfterExit::Removed(code))
        }
    }
}

/// A runtime call on one container (kill, pause, unpause), made without the engine.
#[derive(Debug, Clone)]
pub struct RuntimeCall {
    id: String,
    runtime: RuncLike,
    op: CallOp,
}

#[derive(Debug, Clone)]
enum CallOp {
    Kill { signal: String, thaw: bool },
    Pause(bool),
}

impl RuntimeCall {
    /// Runs it on the blocking pool (the runtime is a process).
    pub async fn run(&self) -> Result<(), ContainerError> {
        let call = self.clone();
        tokio::task::spawn_blocking(move || call.run_blocking())
            .await
            .map_err(|e| ContainerError::Invalid(format!("calling the runtime: {e}")))?
    }

    fn run_blocking(&self) -> Result<(), ContainerError> {
        match &self.op {
            CallOp::Kill { signal, thaw } => {
                self.runtime.kill(&self.id, signal, false)?;
                if *thaw {
                    self.runtime.pause(&self.id, false)?;
                }
            }
            CallOp::Pause(paused) => self.runtime.pause(&self.id, *paused)?,
        }
        Ok(())
    }
}

/// The first step of a restart by policy.
#[derive(Debug)]
pub enum RestartStep {
    /// Not due any more (stopped, started or removed by the user meanwhile).
    NotDue,
    /// Its start failed before anything ran: try again after this back-off.
    Retry(Duration),
    /// Run this plan without the engine, then [`super::start::finish_start`] and
    /// [`Engine::restart_ended`].
    Run(Box<super::start::StartPlan>),
}

/// What undoes a run of one container: its network (through the wiring's own lock), its
/// rootfs mount, the runtime's container, its cgroup and its run directories. Runs without the
/// engine; only the owner of the container's run (a start between its steps, the engine
/// holding itself) runs it.
#[derive(Debug)]
pub struct RunTeardown {
    id: String,
    /// With a removal: the container's own directory (record, logs, /etc files) goes too.
    pub(super) container_dir: Option<PathBuf>,
    ns: PathBuf,
    bundle: PathBuf,
    execs: PathBuf,
    cgroup: String,
    runtime: RuncLike,
    wiring: Arc<tokio::sync::Mutex<super::wiring::Wiring>>,
}

impl RunTeardown {
    /// [`RunTeardown::run`], then (for a removal) the container's directory; whether that
    /// could be removed.
    pub async fn run_and_remove(&self) -> std::io::Result<()> {
        self.run().await;
        let Some(dir) = self.container_dir.clone() else {
            return Ok(());
        };
        // Tests hold the removal of the files here, to see who waits for it.
        crate::failpoint::pause("rm:before-files").await;
        let name = self.id.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = rootfs::unmount(&dir) {
                tracing::warn!(container = %name, error = %e, "unmounting");
            }
            match crate::tree::remove_tree(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// Idempotent, best effort: keeps going past errors, "already gone" is done.
    pub async fn run(&self) {
        let links = self.wiring.lock().await.teardown(&self.id, &self.ns).await;
        // The interfaces are deleted without the wiring's lock: a veth's deletion waits on the
        // kernel for tens of milliseconds, and the teardowns of containers stopping together
        // (`compose down`) then overlap instead of queueing.
        if !links.is_empty() {
            let mut nl = netcore::link::RtNetlink::default();
            if let Err(errors) = netcore::link::apply_best_effort(&mut nl, &links).await {
                tracing::warn!(container = %self.id, %errors, "some links could not be deleted");
            }
        }
        let (id, bundle, execs, cgroup, runtime) = (
            self.id.clone(),
            self.bundle.clone(),
            self.execs.clone(),
            self.cgroup.clone(),
            self.runtime.clone(),
        );
        // Unmounting, the runtime's delete (a process) and removing directories block.
        let done = tokio::task::spawn_blocking(move || {
            if let Err(e) = rootfs::unmount(&bundle.join("rootfs")) {
                tracing::warn!(container = %id, error = %e, "unmounting the rootfs");
            }
            if let Err(e) = rootfs::unmount(&bundle.join(super::namespaces::SHM_DIR)) {
                tracing::warn!(container = %id, error = %e, "unmounting /dev/shm");
            }
            let _ = runtime.delete(&id, true);
            for e in crate::runtime::cgroup::remove(Path::new("/sys/fs/cgroup"), &cgroup) {
                tracing::warn!(container = %id, error = %e, "cgroup");
            }
            for dir in [bundle, execs] {
                match crate::tree::remove_tree(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(container = %id, error = %e, dir = %dir.display(), "removing run state");
                    }
                    _ => {}
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(container = %self.id, error = %e, "tearing a run down");
        }
    }
}
