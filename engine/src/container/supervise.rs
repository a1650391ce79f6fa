//! The daemon's supervisor: waits for every live container's shim (by pidfd, adopted ones
//! included), records each exit, and brings containers back by their restart policy after
//! Docker's back-off. It holds the engine's lock only to record and to plan a restart, never to
//! wait or to prepare and spawn a run,
//! and looks for new containers to watch when the engine wakes it (a start, a container left
//! restarting), never on a timer.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinSet;

use super::engine::Engine;
use super::lifecycle::{AfterExit, ExitStep, RestartStep};

/// Runs until `shutdown` resolves. Containers keep running when it stops.
pub async fn supervise(engine: Arc<Mutex<Engine>>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut watching: HashSet<(String, i32)> = HashSet::new();
    let mut watches: JoinSet<(String, i32)> = JoinSet::new();
    let mut restarts: JoinSet<String> = JoinSet::new();
    // Exits being recorded and their runs undone, each in a task of its own: one container's
    // teardown (an --rm container's millions of files) never delays another's exit.
    type Ended = ((String, i32), Result<AfterExit, super::ContainerError>);
    let mut exits: JoinSet<Ended> = JoinSet::new();
    // Containers with a restart loop running.
    let mut restarting: HashSet<String> = HashSet::new();
    // The health check of each watched run that has one, ended with the run.
    let mut probes: HashMap<(String, i32), tokio::task::AbortHandle> = HashMap::new();
    let mut probe_tasks: JoinSet<()> = JoinSet::new();
    let wake = engine.lock().await.supervise_wake();
    loop {
        {
            let e = engine.lock().await;
            for c in e.containers() {
                // Left restarting by an engine that started without a supervisor, or whose
                // start at daemon start failed: keep trying with its back-off.
                if c.state.status == super::state::Status::Restarting
                    && !c.state.stopped_by_user
                    && restarting.insert(c.id.clone())
                {
                    let delay = Duration::from_millis(c.state.backoff_ms);
                    restarts.spawn(restart_loop(engine.clone(), c.id.clone(), delay));
                }
                let key = (c.id.clone(), c.state.shim_pid);
                if !c.state.status.is_live() || c.state.shim_pid <= 0 || watching.contains(&key) {
                    continue;
                }
                match e.exit_watch(&c.id) {
                    Ok(Some(w)) => {
                        watching.insert(key.clone());
                        if let Some(probe) = c.health_probe() {
                            let h = probe_tasks.spawn(super::health::monitor(
                                engine.clone(),
                                c.id.clone(),
                                c.state.shim_pid,
                                probe,
                            ));
                            probes.insert(key.clone(), h);
                        }
                        watches.spawn(async move {
                            w.wait().await;
                            key
                        });
                    }
                    Ok(None) => {
                        // Gone before we looked: record it below on the next pass.
                        let key2 = key.clone();
                        watching.insert(key);
                        watches.spawn(async move { key2 });
                    }
                    Err(err) => {
                        // Not watched, so looked at again: after a pause, not in a spin.
                        tracing::warn!(container = %c.id, error = %err, "cannot watch; retrying in 1 s");
                        let wake = wake.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            wake.notify_one();
                        });
                    }
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            Some(Ok(key)) = watches.join_next() => {
                if let Some(h) = probes.remove(&key) {
                    h.abort();
                }
                // Still in `watching` until recorded, so it is not watched again meanwhile.
                let engine = engine.clone();
                exits.spawn(async move {
                    // Recorded and finished with the engine; the run undone without it.
                    let step = engine.lock().await.exit_begin(&key.0, Some(key.1));
                    let after = match step {
                        Ok(ExitStep::Done(after)) => Ok(after),
                        Ok(ExitStep::Teardown(plan)) => {
                            plan.undo().run().await;
                            super::lifecycle::finish_exit(&engine, *plan).await
                        }
                        Err(e) => Err(e),
                    };
                    (key, after)
                });
            }
            Some(Ok((key, after))) = exits.join_next(), if !exits.is_empty() => {
                watching.remove(&key);
                match after {
                    Ok(AfterExit::Restart(delay)) => {
                        if restarting.insert(key.0.clone()) {
                            restarts.spawn(restart_loop(engine.clone(), key.0.clone(), delay));
                        }
                    }
                    // Removed meanwhile (rm -f): nothing left to record.
                    Ok(_) | Err(super::ContainerError::NotFound(_)) => {}
                    Err(e) => tracing::warn!(container = %key.0, error = %e, "recording an exit"),
                }
            }
            Some(done) = restarts.join_next(), if !restarts.is_empty() => {
                if let Ok(id) = done {
                    restarting.remove(&id);
                }
            }
            Some(_) = probe_tasks.join_next(), if !probe_tasks.is_empty() => {}
            () = wake.notified() => {}
        }
    }
}

/// Starts `id` after `delay`, and again after each back-off while its start fails and its
/// policy still says so. Returns the ID when it runs or is given up.
async fn restart_loop(engine: Arc<Mutex<Engine>>, id: String, delay: Duration) -> String {
    let mut delay = delay;
    loop {
        tokio::time::sleep(delay).await;
        // The engine is held to plan and to record, not while the run is prepared and spawned.
        let step = engine.lock().await.restart_begin(&id);
        let ended = match step {
            Ok(RestartStep::NotDue) => Ok(None),
            Ok(RestartStep::Retry(next)) => Ok(Some(next)),
            Ok(RestartStep::Run(plan)) => {
                let outcome = plan.run().await;
                let started = super::start::finish_start(&engine, outcome).await;
                engine.lock().await.restart_ended(&id, started.map(drop))
            }
            Err(e) => Err(e),
        };
        match ended {
            Ok(Some(next)) => delay = next,
            Ok(None) => return id,
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "restart policy: start failed; given up");
                return id;
            }
        }
    }
}
