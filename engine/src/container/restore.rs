//! Restoring after a daemon restart: every record is brought in line with the machine. What
//! to do with each container is decided by [`plan`], a pure function of what was recorded and
//! what the engine finds (a live shim, one the record does not name); live shims are adopted,
//! containers whose shim ended meanwhile are finished as any exit, half-removed ones removed,
//! restart policies applied ([`restarts_at_start`]), and whatever the records do not account
//! for (endpoints, namespaces, bundles, the proxy's publications) cleaned up.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::engine::Engine;
use super::exit::is_shim_of;
use super::lifecycle::now_ms;
use super::model::State;
use super::restart::{RestartPolicy, next_delay};
use super::state::Status;
use crate::runtime::oci::OciRuntime;
use crate::runtime::shim;

/// What an engine finds of a recorded container when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Found {
    /// The recorded status.
    pub status: Status,
    /// The shim the record names is alive (and is this container's).
    pub recorded_shim_alive: bool,
    /// A shim the record does not name is alive and its process has not exited.
    pub unrecorded_shim: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// A removal in progress was to take the anonymous volumes (`rm -v`).
    pub remove_volumes: bool,
}

/// What becomes of a recorded container when an engine starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Restore {
    /// Its run goes on: adopted, and thawed if a copy cut short left it frozen (`thaw`: it
    /// was recorded running, not paused).
    Adopt { thaw: bool },
    /// Its run ended while no engine watched: finished as any exit (its exit code, its
    /// restart policy, `--rm`).
    FinishExit,
    /// A removal was cut short: finished.
    FinishRemoval { volumes: bool },
    /// It was started but the start not recorded: recorded running, never torn down.
    AdoptUnrecorded,
    /// A restart's back-off was cut short: exited (the restart policy decides again).
    Exited,
    /// It has `--rm` and exited: removed with its anonymous volumes.
    AutoRemove,
    /// Nothing to do.
    Keep,
}

/// What becomes of a container recorded and found as `f` says.
pub(super) fn plan(f: Found) -> Restore {
    match f.status {
        Status::Running | Status::Paused if f.recorded_shim_alive => Restore::Adopt {
            thaw: f.status == Status::Running,
        },
        Status::Running | Status::Paused => Restore::FinishExit,
        Status::Removing | Status::Dead => Restore::FinishRemoval {
            volumes: f.remove_volumes,
        },
        _ if f.unrecorded_shim => Restore::AdoptUnrecorded,
        Status::Restarting => Restore::Exited,
        Status::Exited if f.auto_remove => Restore::AutoRemove,
        Status::Created | Status::Exited => Restore::Keep,
    }
}

/// Whether a container in state `s` (after [`plan`]'s step) starts again as the engine starts,
/// as dockerd's restart manager decides at daemon start.
pub(super) fn restarts_at_start(s: &State, policy: RestartPolicy) -> bool {
    match s.status {
        Status::Exited => {
            policy.restarts_at_daemon_start(s.exit_code, s.restart_count, s.stopped_by_user)
        }
        Status::Restarting => true,
        _ => false,
    }
}

impl Engine {
    /// Brings every record in line with the machine after the engine (re)starts: live shims
    /// are adopted, containers whose shim ended meanwhile are finished (exit code from
    /// `exit.json`), half-removed ones are removed, restart policies apply, and anything the
    /// records do not account for (endpoints, namespaces, bundles) is cleaned up.
    pub(super) async fn restore(&mut self) {
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        for id in &ids {
            let c = &self.containers[id];
            let s = &c.state;
            let unrecorded = self.unrecorded_shim(id);
            let found = Found {
                status: s.status,
                recorded_shim_alive: s.shim_pid > 0 && is_shim_of(s.shim_pid, id),
                unrecorded_shim: unrecorded.is_some(),
                auto_remove: c.options.auto_remove,
                remove_volumes: s.remove_volumes,
            };
            let shim_pid = s.shim_pid;
            match plan(found) {
                Restore::Adopt { thaw } => {
                    tracing::info!(container = id, shim = shim_pid, "adopted");
                    if thaw {
                        self.thaw_if_frozen(id).await;
                    }
                }
                Restore::FinishExit => {
                    if let Err(e) = self.on_exit(id, None).await {
                        tracing::warn!(container = id, error = %e, "finishing an exited container");
                    }
                }
                Restore::FinishRemoval { volumes } => {
                    if let Err(e) = self.remove(id, true, volumes).await {
                        tracing::warn!(container = id, error = %e, "finishing a removal");
                    }
                }
                Restore::AdoptUnrecorded => {
                    if let Some((shim, init)) = unrecorded {
                        self.adopt_started(id, shim, init);
                    }
                }
                Restore::Exited => {
                    let _ = self.set_state(id, |s| s.status = Status::Exited);
                }
                Restore::AutoRemove => {
                    // Exited while no engine ran, or its removal was cut short: --rm still applies.
                    if let Err(e) = self.remove(id, true, true).await {
                        tracing::warn!(container = id, error = %e, "--rm after a restart");
                    }
                }
                Restore::Keep => {}
            }
        }
        self.sweep().await;
        // The proxy outlives engines: its publications of live containers are adopted (their
        // connections never dropped), those of containers gone meanwhile withdrawn.
        // None runs (first start, reboot): one is started once a port is to be served.
        {
            let mut w = self.wiring.lock().await;
            for c in self
                .containers
                .values()
                .filter(|c| c.state.status.is_live())
            {
                if let (super::model::NetworkMode::Network(n), false) =
                    (&c.network_mode, c.primary_disconnected)
                {
                    let specs = super::wiring::published_specs(c);
                    if !specs.is_empty() {
                        w.serving.insert(
                            c.id.clone(),
                            super::wiring::Serving {
                                network: n.clone(),
                                specs,
                            },
                        );
                    }
                }
            }
            match w.proxy.call_live(&portproxy::control::Request::List).await {
                Ok(live) => {
                    w.reconciled = true;
                    w.restore_publications(live.map(|r| r.published).unwrap_or_default(), None)
                        .await;
                }
                Err(e) => {
                    // Tried again before the next call to the proxy.
                    tracing::error!(error = %e, "listing the port proxy's publications")
                }
            }
        }
        for id in &ids {
            let Some(c) = self.containers.get(id) else {
                continue;
            };
            let due = restarts_at_start(&c.state, c.restart_policy);
            if due {
                if let Err(e) = self.start_id(id, None).await {
                    // Left restarting with a back-off: a supervisor keeps trying.
                    let delay = next_delay(None, Duration::ZERO);
                    let _ = self.set_state(id, |s| {
                        s.status = Status::Restarting;
                        s.backoff_ms = delay.as_millis() as u64;
                    });
                    tracing::warn!(container = id, error = %e, "restart policy: start failed; retrying");
                }
            }
        }
        self.wiring.lock().await.refresh_resolver().await;
    }

    /// A shim the record of container `id` does not name, alive and not yet exited: its PID
    /// and its process's (0 when unknown). An engine died between spawning it and recording
    /// the start.
    fn unrecorded_shim(&self, id: &str) -> Option<(i32, i32)> {
        let bundle = self.bundle(id);
        let read = |f: &str| {
            fs::read_to_string(bundle.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
        };
        let shim_pid = read("shim.pid")?;
        if !is_shim_of(shim_pid, id) || shim::read_exit(&bundle).is_some() {
            return None;
        }
        Some((shim_pid, read("init.pid").unwrap_or(0)))
    }

    /// A container recorded as not running whose shim is alive: its process runs, so it is
    /// recorded running (its start time is when this engine found it) rather than torn down.
    fn adopt_started(&mut self, id: &str, shim_pid: i32, pid: i32) {
        let checked = self
            .containers
            .get(id)
            .is_some_and(|c| c.health_probe().is_some());
        let adopted = self.set_state(id, |s| {
            s.running(
                pid,
                shim_pid,
                berth_common::time::now_rfc3339_nano(),
                now_ms(),
                checked,
            )
        });
        if adopted.is_ok() {
            tracing::info!(
                container = id,
                shim = shim_pid,
                "adopted a start an earlier engine did not record"
            );
        }
    }

    /// A daemon that died during a `docker cp` left the container frozen: thawed.
    async fn thaw_if_frozen(&self, id: &str) {
        let rt = self.runtime_of(id);
        let cid = id.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            if rt.state(&cid).is_ok_and(|st| st.status == "paused") {
                tracing::warn!(container = %cid, "thawing a container a copy left frozen");
                let _ = rt.pause(&cid, false);
            }
        })
        .await;
    }

    /// Removes endpoints, namespace files and bundles of containers that are not live (a crash
    /// between two steps of a start or a removal).
    async fn sweep(&mut self) {
        let live = |e: &Engine, id: &str| {
            e.containers
                .get(id)
                .is_some_and(|c| c.state.status.is_live())
        };
        let mut stale: Vec<String> = self
            .network_state()
            .endpoints
            .values()
            .map(|e| e.container.clone())
            .filter(|c| !live(self, c))
            .collect();
        for dir in [
            self.cfg.exec_root.join("netns"),
            self.cfg.exec_root.join("containers"),
        ] {
            if let Ok(rd) = fs::read_dir(&dir) {
                stale.extend(
                    rd.flatten()
                        .filter_map(|e| e.file_name().to_str().map(String::from))
                        .filter(|id| !live(self, id)),
                );
            }
        }
        stale.sort();
        stale.dedup();
        for id in stale {
            tracing::info!(container = %id, "cleaning up after an interrupted run");
            self.teardown_run(&id).await;
        }
        let data = self.cfg.data_root.join("containers");
        if let Ok(rd) = fs::read_dir(&data) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !self.containers.contains_key(&name)
                    && !Path::new(&e.path()).join("config.v2.json").exists()
                {
                    let _ = crate::tree::remove_tree(&e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(status: Status) -> Found {
        Found {
            status,
            ..Found::default()
        }
    }

    #[test]
    fn a_live_shim_is_adopted_and_a_dead_one_finished_as_an_exit() {
        let live = |status| Found {
            recorded_shim_alive: true,
            ..found(status)
        };
        assert_eq!(plan(live(Status::Running)), Restore::Adopt { thaw: true });
        assert_eq!(
            plan(live(Status::Paused)),
            Restore::Adopt { thaw: false },
            "a container the user paused stays paused"
        );
        assert_eq!(plan(found(Status::Running)), Restore::FinishExit);
        assert_eq!(plan(found(Status::Paused)), Restore::FinishExit);
        // A shim the record does not name changes nothing for a recorded run.
        let stray = Found {
            unrecorded_shim: true,
            ..found(Status::Running)
        };
        assert_eq!(plan(stray), Restore::FinishExit);
    }

    #[test]
    fn a_start_the_engine_did_not_record_is_adopted_never_torn_down() {
        for status in [Status::Created, Status::Exited, Status::Restarting] {
            let f = Found {
                unrecorded_shim: true,
                auto_remove: true,
                ..found(status)
            };
            assert_eq!(plan(f), Restore::AdoptUnrecorded, "{status:?}");
        }
    }

    #[test]
    fn cut_short_removals_and_rm_containers_are_finished() {
        for status in [Status::Removing, Status::Dead] {
            let f = Found {
                remove_volumes: true,
                recorded_shim_alive: true,
                unrecorded_shim: true,
                ..found(status)
            };
            assert_eq!(plan(f), Restore::FinishRemoval { volumes: true });
            assert_eq!(
                plan(found(status)),
                Restore::FinishRemoval { volumes: false }
            );
        }
        let rm = Found {
            auto_remove: true,
            ..found(Status::Exited)
        };
        assert_eq!(plan(rm), Restore::AutoRemove);
        assert_eq!(
            plan(Found {
                auto_remove: true,
                ..found(Status::Created)
            }),
            Restore::Keep,
            "--rm applies to containers that ran"
        );
        assert_eq!(plan(found(Status::Restarting)), Restore::Exited);
        assert_eq!(plan(found(Status::Exited)), Restore::Keep);
        assert_eq!(plan(found(Status::Created)), Restore::Keep);
    }

    #[test]
    fn restart_policies_decide_at_start_as_dockerd_does() {
        let exited = |code: i32, by_user: bool| State {
            status: Status::Exited,
            exit_code: code,
            stopped_by_user: by_user,
            ..State::default()
        };
        let p = |s: &str| RestartPolicy::parse(s).unwrap();
        assert!(restarts_at_start(&exited(0, false), p("always")));
        assert!(restarts_at_start(&exited(0, true), p("always")));
        assert!(!restarts_at_start(&exited(0, true), p("unless-stopped")));
        assert!(restarts_at_start(&exited(0, false), p("unless-stopped")));
        assert!(!restarts_at_start(&exited(0, false), p("on-failure")));
        assert!(restarts_at_start(&exited(1, false), p("on-failure:3")));
        let mut spent = exited(1, false);
        spent.restart_count = 3;
        assert!(!restarts_at_start(&spent, p("on-failure:3")));
        assert!(!restarts_at_start(&exited(1, false), p("no")));
        let restarting = State {
            status: Status::Restarting,
            ..State::default()
        };
        assert!(restarts_at_start(&restarting, p("no")));
        let running = State {
            status: Status::Running,
            ..State::default()
        };
        assert!(!restarts_at_start(&running, p("always")));
    }
}
