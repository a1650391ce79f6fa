//! Requests on containers, ordered as Docker orders them, and the rules that decide what a
//! request does: [`Ops`] is the container backend berthd's routes call.
//!
//! - Requests on one container (start, stop, restart, kill, pause, unpause, rm, attach) hold
//!   its lock for their whole length, so an `rm -f` waits for a start to finish and a stop
//!   for a restart; requests on different containers never wait for each other. The lock is
//!   per container, taken before any engine lock (never the other way round).
//! - A `kill` does not wait for a stop under way (nor for a restart's stop): it signals at
//!   once, as Docker's kill does while a stop waits for the process to exit.
//! - Each request that changes a container runs in a task of its own (a prune: each removal):
//!   a client hanging up never leaves one half done.
//! - The rules: a start of a running container and a stop of a stopped one do nothing (Docker
//!   answers 304); an `--rm` container whose start failed is removed, volumes included;
//!   attachments made before a start get their streams from it (`docker run`); prune removes
//!   stopped containers only; `wait` conditions.
//!
//! The steps themselves (planning under the engine's lock, the runtime and the network
//! without it) are the engine's, behind the [`Machine`] trait, so these rules are unit-tested
//! with a fake machine ([`tests`]), without root.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard, oneshot, watch};

use super::state::Status;
use super::{ContainerError, Published};
use crate::runtime::attach::AttachRequest;

/// What a request needs to know of a container before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Its status now.
    pub status: Status,
    /// Its name (for messages).
    pub name: String,
    /// `--rm`.
    pub auto_remove: bool,
}

/// A runtime call on a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `kill -s SIGNAL`.
    Kill(String),
    /// `pause`.
    Pause,
    /// `unpause`.
    Unpause,
}

/// The steps of a container's lifecycle, each whole (planned, run, recorded, undone on
/// failure). The engine's implementation is [`super::EngineMachine`].
pub trait Machine: Send + Sync + 'static {
    /// An attached stream (the shim's attach socket).
    type Stream: Send + 'static;

    /// What `id` is now.
    fn facts(&self, id: &str) -> impl Future<Output = Result<Facts, ContainerError>> + Send;
    /// Starts `id`; with `attach`, joined before its process runs (`None` back when it ran
    /// already).
    fn start(
        &self,
        id: &str,
        attach: Option<AttachRequest>,
    ) -> impl Future<Output = Result<Option<Self::Stream>, ContainerError>> + Send;
    /// Attaches to running `id`.
    fn attach(
        &self,
        id: &str,
        req: AttachRequest,
    ) -> impl Future<Output = Result<Self::Stream, ContainerError>> + Send;
    /// Stops `id`, killing it after `timeout` (its own when `None`).
    fn stop(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), ContainerError>> + Send;
    /// Removes `id` (`force`: killing it first; `volumes`: its anonymous volumes too).
    fn remove(
        &self,
        id: &str,
        force: bool,
        volumes: bool,
    ) -> impl Future<Output = Result<(), ContainerError>> + Send;
    /// Stops `id` for `docker restart`: an `--rm` container is not removed by this stop.
    fn stop_for_restart(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), ContainerError>> + Send;
    /// Kill, pause or unpause.
    fn call(&self, id: &str, call: Call)
    -> impl Future<Output = Result<(), ContainerError>> + Send;
    /// `docker update`.
    fn update(
        &self,
        id: &str,
        u: crate::container::update::UpdateOptions,
    ) -> impl Future<Output = Result<(), ContainerError>> + Send;
    /// Reports `action` on `id` to `docker events`.
    fn emit(&self, id: &str, action: &str) -> impl Future<Output = ()> + Send;
    /// The containers that are not running (prune's candidates).
    fn stopped(&self) -> impl Future<Output = Vec<String>> + Send;
    /// Reports a finished `container prune` (Docker's `prune` event, with the bytes freed).
    fn pruned(&self, reclaimed: u64) -> impl Future<Output = ()> + Send;
}

/// What a start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// It was running already: nothing done (Docker's 304).
    AlreadyRunning,
    /// Started.
    Started,
}

/// What a stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running: nothing done (Docker's 304).
    NotRunning,
    /// Stopped.
    Stopped,
}

/// An attachment: at once to a running container, or when it starts.
#[derive(Debug)]
pub enum Attached<S> {
    /// Attached.
    Now(S),
    /// The next start hands the stream over; a drop (the container removed) ends the wait.
    OnStart(oneshot::Receiver<S>),
}

/// `docker wait`'s conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Returns at once for a container that does not run, else at its exit.
    NotRunning,
    /// At the first exit after the wait began.
    NextExit,
    /// When it is removed.
    Removed,
}

impl WaitCondition {
    /// Parses the API's `condition` (empty: `not-running`).
    pub fn parse(s: &str) -> Result<WaitCondition, ContainerError> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            _ => Err(ContainerError::Invalid(format!(
                "invalid condition {s:?} (valid: not-running, next-exit, removed)"
            ))),
        }
    }
}

/// Waits on a container's published state (the supervisor records every exit): no lock is
/// held and nothing polls. `next-exit` counts exits, so one whose exited state a restart
/// replaced before the wait looked still counts. The exit code, or `None` when the container
/// was removed first.
pub async fn wait_for(mut rx: watch::Receiver<Published>, condition: WaitCondition) -> Option<i32> {
    let first_exits = rx.borrow().exits;
    loop {
        {
            let p = rx.borrow_and_update();
            let exited = p.exits != first_exits;
            match condition {
                WaitCondition::NotRunning if !p.state.status.is_live() => {
                    return Some(p.state.exit_code);
                }
                WaitCondition::NotRunning | WaitCondition::NextExit if exited => {
                    return Some(p.last_exit_code);
                }
                _ => {}
            }
        }
        if rx.changed().await.is_err() {
            return None;
        }
    }
}

type Waiting<S> = HashMap<String, Vec<(AttachRequest, oneshot::Sender<S>)>>;

/// The container backend: requests ordered per container, Docker's rules, over a [`Machine`].
#[derive(Debug)]
pub struct Ops<M: Machine> {
    machine: Arc<M>,
    locks: Arc<std::sync::Mutex<HashMap<String, Weak<Mutex<()>>>>>,
    waiting: Arc<Mutex<Waiting<M::Stream>>>,
    /// The containers a stop is waiting on now (a kill then signals at once).
    stopping: Arc<watch::Sender<HashMap<String, usize>>>,
}

/// Container `id` counted as stopping while this lives (dropped on every path, a panic too).
struct Stopping {
    tx: Arc<watch::Sender<HashMap<String, usize>>>,
    id: String,
}

impl Stopping {
    fn new(tx: &Arc<watch::Sender<HashMap<String, usize>>>, id: &str) -> Stopping {
        tx.send_modify(|m| *m.entry(id.to_string()).or_default() += 1);
        Stopping {
            tx: tx.clone(),
            id: id.to_string(),
        }
    }
}

impl Drop for Stopping {
    fn drop(&mut self) {
        self.tx.send_modify(|m| {
            if let Some(n) = m.get_mut(&self.id) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.id);
                }
            }
        });
    }
}

impl<M: Machine> Clone for Ops<M> {
    fn clone(&self) -> Self {
        Ops {
            machine: self.machine.clone(),
            locks: self.locks.clone(),
            waiting: self.waiting.clone(),
            stopping: self.stopping.clone(),
        }
    }
}

/// Runs `f` in a task of its own, so the caller going away never stops it half-way.
async fn detached<T: Send + 'static>(
    what: &str,
    f: impl Future<Output = Result<T, ContainerError>> + Send + 'static,
) -> Result<T, ContainerError> {
    tokio::spawn(f).await.unwrap_or_else(|e| {
        Err(ContainerError::Io {
            what: format!("{what}: the task ended"),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

impl<M: Machine> Ops<M> {
    /// The backend over `machine`.
    pub fn new(machine: M) -> Ops<M> {
        Ops {
            machine: Arc::new(machine),
            locks: Default::default(),
            waiting: Default::default(),
            stopping: Arc::new(watch::Sender::new(HashMap::new())),
        }
    }

    /// The machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// Container `id`'s lock, held for a whole request on it.
    pub async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, w| w.strong_count() > 0);
            match locks.get(id).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(Mutex::new(()));
                    locks.insert(id.to_string(), Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }

    /// Runs `f` on container `id` in order with its other requests, in a task of its own (for
    /// requests whose steps are not the machine's: network connect and disconnect).
    pub async fn exclusive<T, F>(
        &self,
        id: &str,
        what: &str,
        f: impl FnOnce() -> F + Send + 'static,
    ) -> Result<T, ContainerError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ContainerError>> + Send + 'static,
    {
        let (this, id) = (self.clone(), id.to_string());
        detached(what, async move {
            let _held = this.lock(&id).await;
            f().await
        })
        .await
    }

    /// `docker start`: hands attachments made before it their streams. An `--rm` container
    /// whose start failed is removed, volumes included (as dockerd).
    pub async fn start(&self, id: &str) -> Result<Started, ContainerError> {
        let (this, id) = (self.clone(), id.to_string());
        detached("starting", async move {
            let _held = this.lock(&id).await;
            if this.machine.facts(&id).await?.status == Status::Running {
                return Ok(Started::AlreadyRunning);
            }
            match this.start_locked(&id).await {
                Ok(()) => Ok(Started::Started),
                Err(e) => {
                    this.remove_after_failed_start(&id).await;
                    Err(e)
                }
            }
        })
        .await
    }

    async fn start_locked(&self, id: &str) -> Result<(), ContainerError> {
        let waiting = self.waiting.lock().await.remove(id).unwrap_or_default();
        let mut waiting = waiting.into_iter().filter(|(_, tx)| !tx.is_closed());
        let Some((first, tx)) = waiting.next() else {
            self.machine.start(id, None).await?;
            return Ok(());
        };
        let stream = match self.machine.start(id, Some(first.clone())).await? {
            Some(s) => s,
            // Running already: attached to as it is.
            None => self.machine.attach(id, first).await?,
        };
        let _ = tx.send(stream);
        for (req, tx) in waiting {
            if let Ok(s) = self.machine.attach(id, req).await {
                let _ = tx.send(s);
            }
        }
        Ok(())
    }

    async fn remove_after_failed_start(&self, id: &str) {
        // Not one the start refused because it runs (paused): that one is left alone.
        let Ok(f) = self.machine.facts(id).await else {
            return;
        };
        if f.auto_remove && !f.status.is_live() {
            if let Err(e) = self.machine.remove(id, true, true).await {
                tracing::warn!(container = %id, error = %e, "removing the --rm container whose start failed");
            }
            self.waiting.lock().await.remove(id);
        }
    }

    /// `docker stop`.
    pub async fn stop(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Stopped, ContainerError> {
        let (this, id) = (self.clone(), id.to_string());
        detached("stopping", async move {
            let _held = this.lock(&id).await;
            let f = this.machine.facts(&id).await?;
            if !f.status.is_live() && f.status != Status::Restarting {
                return Ok(Stopped::NotRunning);
            }
            let _stopping = Stopping::new(&this.stopping, &id);
            this.machine.stop(&id, timeout).await?;
            Ok(Stopped::Stopped)
        })
        .await
    }

    /// `docker restart`: stopped (when running) and started, as one request; an `--rm`
    /// container survives it (as Docker, which turns AutoRemove off for the restart's stop).
    pub async fn restart(&self, id: &str, timeout: Option<Duration>) -> Result<(), ContainerError> {
        let (this, id) = (self.clone(), id.to_string());
        detached("restarting", async move {
            let _held = this.lock(&id).await;
            {
                let _stopping = Stopping::new(&this.stopping, &id);
                this.machine.stop_for_restart(&id, timeout).await?;
            }
            if let Err(e) = this.start_locked(&id).await {
                this.remove_after_failed_start(&id).await;
                return Err(e);
            }
            this.machine.emit(&id, "restart").await;
            Ok(())
        })
        .await
    }

    /// `docker kill`, `pause`, `unpause`, in order with the container's other requests; a
    /// kill while a stop waits for the process signals at once (Docker's kill of a stopping
    /// container), and the stop ends with the process.
    pub async fn call(&self, id: &str, call: Call) -> Result<(), ContainerError> {
        let (this, id) = (self.clone(), id.to_string());
        detached("calling the runtime", async move {
            let _held = if matches!(call, Call::Kill(_)) {
                let mut stopping = this.stopping.subscribe();
                tokio::select! {
                    held = this.lock(&id) => Some(held),
                    _ = stopping.wait_for(|m| m.contains_key(&id)) => None,
                }
            } else {
                Some(this.lock(&id).await)
            };
            this.machine.call(&id, call).await
        })
        .await
    }

    /// `docker update`, in order with the container's other requests.
    pub async fn update(
        &self,
        id: &str,
        u: crate::container::update::UpdateOptions,
    ) -> Result<(), ContainerError> {
        let (this, id) = (self.clone(), id.to_string());
        detached("updating", async move {
            let _held = this.lock(&id).await;
            this.machine.update(&id, u).await
        })
        .await
    }

    /// `docker rm`; attachments waiting for it to start end. One being removed already (an
    /// `--rm` container that exited) is a conflict, as Docker answers it.
    pub async fn remove(&self, id: &str, force: bool, volumes: bool) -> Result<(), ContainerError> {
        let (this, id) = (self.clone(), id.to_string());
        detached("removing", async move {
            let _held = this.lock(&id).await;
            let f = this.machine.facts(&id).await?;
            if f.status == Status::Removing {
                return Err(ContainerError::Conflict(format!(
                    "removal of container {} is already in progress",
                    f.name
                )));
            }
            this.machine.remove(&id, force, volumes).await?;
            this.waiting.lock().await.remove(&id);
            Ok(())
        })
        .await
    }

    /// `docker container prune`: every container that does not run, each removed in order
    /// with its other requests (one started meanwhile is refused by the removal and kept).
    pub async fn prune(&self) -> Vec<String> {
        let mut removed = Vec::new();
        for id in self.machine.stopped().await {
            if self.remove(&id, false, false).await.is_ok() {
                removed.push(id);
            }
        }
        // A removed container's writable layer is not measured: 0, as berth reports in
        // `SpaceReclaimed`.
        self.machine.pruned(0).await;
        removed
    }

    /// `docker attach` (and `docker run`'s attachment before its start): at once to a
    /// running container, else handed over by its next start. Looked at and queued holding
    /// the container's lock (not for the attachment's life), so a start begun meanwhile either
    /// takes this attachment or is seen running.
    pub async fn attach(
        &self,
        id: &str,
        req: AttachRequest,
    ) -> Result<Attached<M::Stream>, ContainerError> {
        let _held = self.lock(id).await;
        let f = self.machine.facts(id).await?;
        match f.status {
            Status::Running => Ok(Attached::Now(self.machine.attach(id, req).await?)),
            Status::Created | Status::Exited => {
                let (tx, rx) = oneshot::channel();
                let mut waiting = self.waiting.lock().await;
                // Attachments whose client went away are dropped here, so the map stays
                // bounded by the clients still waiting.
                waiting.retain(|_, v| {
                    v.retain(|(_, tx)| !tx.is_closed());
                    !v.is_empty()
                });
                waiting.entry(id.to_string()).or_default().push((req, tx));
                Ok(Attached::OnStart(rx))
            }
            s => Err(ContainerError::Conflict(format!(
                "You cannot attach to a {} container {}",
                s.as_str(),
                f.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
