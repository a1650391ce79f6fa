//! The engine as an [`ops::Machine`]: each lifecycle step planned and recorded under the
//! engine's lock and carried out without it (the rootfs, the network, the shim, the OCI
//! runtime, a process's exit and the undoing of its run), so requests on other containers go
//! on meanwhile.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};

use super::ops::{Call, Facts, Machine};
use super::{ContainerError, Engine, ExitStep};
use crate::runtime::attach::AttachRequest;

/// The engine behind its lock, as the container backend's machine.
#[derive(Debug, Clone)]
pub struct EngineMachine {
    engine: Arc<Mutex<Engine>>,
}

impl EngineMachine {
    /// The machine over `engine`.
    pub fn new(engine: Arc<Mutex<Engine>>) -> EngineMachine {
        EngineMachine { engine }
    }

    /// The engine's lock.
    pub fn engine(&self) -> &Arc<Mutex<Engine>> {
        &self.engine
    }

    /// The engine, once container `id` is not busy: between the steps of a start (a restart by
    /// its policy, which does not take the container's request lock) or while the supervisor
    /// undoes the run of an exit. Start, stop, removal, connect and `cp` wait for it, as they
    /// would behind Docker's container lock, instead of being refused. Waits on the
    /// container's state channel, never polls.
    pub async fn engine_unless_busy(&self, id: &str) -> MutexGuard<'_, Engine> {
        loop {
            let e = self.engine.lock().await;
            let Some(mut rx) = e.starting_watch(id) else {
                return e;
            };
            drop(e);
            // A change is the start recorded; a closed channel is the container removed.
            let _ = rx.changed().await;
        }
    }
}

impl Machine for EngineMachine {
    type Stream = UnixStream;

    async fn facts(&self, id: &str) -> Result<Facts, ContainerError> {
        let e = self.engine.lock().await;
        let c = e.get(id)?;
        Ok(Facts {
            status: c.state.status,
            name: c.name.clone(),
            auto_remove: c.options.auto_remove,
        })
    }

    async fn start(
        &self,
        id: &str,
        attach: Option<AttachRequest>,
    ) -> Result<Option<UnixStream>, ContainerError> {
        let Some(plan) = self
            .engine_unless_busy(id)
            .await
            .start_prepare(id, attach)?
        else {
            return Ok(None);
        };
        let outcome = plan.run().await;
        super::start::finish_start(&self.engine, outcome).await
    }

    async fn attach(&self, id: &str, req: AttachRequest) -> Result<UnixStream, ContainerError> {
        let (dir, name) = self.engine.lock().await.shim_dir(id, false)?;
        tokio::task::spawn_blocking(move || {
            crate::runtime::shim::connect(&dir, &crate::runtime::attach::Request::Attach(req))
                .map_err(super::io_err(format!("attaching to container {name}")))
        })
        .await
        .map_err(|e| ContainerError::Invalid(format!("attaching to container {id}: {e}")))?
    }

    async fn stop(&self, id: &str, timeout: Option<Duration>) -> Result<(), ContainerError> {
        let plan = self.engine.lock().await.stop_begin(id, timeout)?;
        if let Some(plan) = plan {
            plan.wait().await?;
            let step = self.engine.lock().await.stop_record(&plan)?;
            if let ExitStep::Teardown(exit) = step {
                exit.undo().run().await;
                super::lifecycle::finish_exit(&self.engine, *exit).await?;
            }
            // The supervisor may have recorded the exit first and still be undoing the run
            // (or removing a --rm container): the stop is done once that is done too.
            drop(self.engine_unless_busy(id).await);
        }
        Ok(())
    }

    async fn stop_for_restart(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<(), ContainerError> {
        self.engine.lock().await.restarting.insert(id.to_string());
        let stopped = self.stop(id, timeout).await;
        self.engine.lock().await.restarting.remove(id);
        stopped
    }

    async fn remove(&self, id: &str, force: bool, volumes: bool) -> Result<(), ContainerError> {
        let plan = self
            .engine_unless_busy(id)
            .await
            .remove_begin(id, force, volumes)?;
        if let Some(stop) = plan.stop() {
            stop.wait().await?;
        }
        // The supervisor may be recording the SIGKILLed process's exit and undoing its run:
        // the removal goes on once that is done.
        let undo = self.engine_unless_busy(id).await.remove_mark(&plan)?;
        let removed = undo.run_and_remove().await;
        let trash = self.engine.lock().await.remove_finish(plan, removed)?;
        super::remove::delete(trash);
        Ok(())
    }

    async fn call(&self, id: &str, call: Call) -> Result<(), ContainerError> {
        let planned = {
            let mut e = self.engine.lock().await;
            match &call {
                Call::Kill(signal) => e.kill_begin(id, signal),
                Call::Pause => e.pause_begin(id, true),
                Call::Unpause => e.pause_begin(id, false),
            }
        }?;
        let done = planned.run().await;
        self.engine.lock().await.runtime_call_finish(&planned, done)
    }

    async fn update(
        &self,
        id: &str,
        u: crate::container::update::UpdateOptions,
    ) -> Result<(), ContainerError> {
        let plan = self.engine.lock().await.update_begin(id, &u)?;
        // The runtime is a process: off the engine's lock, on the blocking pool.
        let plan = tokio::task::spawn_blocking(move || plan.apply().map(|()| plan))
            .await
            .map_err(|e| ContainerError::Invalid(format!("updating: {e}")))??;
        self.engine.lock().await.update_finish(plan)
    }

    async fn emit(&self, id: &str, action: &str) {
        self.engine.lock().await.emit_container(id, action, &[]);
    }

    async fn pruned(&self, reclaimed: u64) {
        self.engine.lock().await.emit(|| {
            crate::events::Event::new(
                crate::events::Kind::Container,
                "prune",
                "",
                [("reclaimed".to_string(), reclaimed.to_string())].into(),
            )
        });
    }

    async fn stopped(&self) -> Vec<String> {
        let e = self.engine.lock().await;
        e.containers()
            .filter(|c| {
                matches!(
                    c.state.status,
                    super::Status::Exited | super::Status::Created | super::Status::Dead
                )
            })
            .map(|c| c.id.clone())
            // One being started or stopped is left alone (and the removal would refuse it).
            .filter(|id| !e.is_starting(id))
            .collect()
    }
}
