//! [`ExecBackend`]: `docker exec` as berthd's exec routes call it. The engine's lock is held
//! only to plan (the container running, its settings); the container's spec and
//! `/etc/passwd` are read and the shim spawned without any lock, so an exec in a container
//! whose files are slow or hostile delays nothing but itself. Exits are recorded by a task
//! that waits on the shim's process, never by polling.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use tokio::sync::{Mutex, oneshot};

use super::table::{ExecRecord, ExecTable};
use super::{ExecOptions, resize_terminal};
use crate::container::{ContainerError, Engine, io_err};
use crate::runtime::attach::AttachRequest;

/// A started exec.
#[derive(Debug)]
pub struct ExecStarted {
    /// Its attachment (`None` when detached).
    pub stream: Option<UnixStream>,
    /// Its exit code, once recorded in the table (a client reads `exec inspect` at EOF).
    pub ended: oneshot::Receiver<i32>,
}

/// An exec claimed for its start (no other start of it can be made): run it with
/// [`ExecBackend::start`] or give it up with [`ExecBackend::abandon`].
#[derive(Debug)]
pub struct Claimed {
    id: String,
    rec: ExecRecord,
}

impl Claimed {
    /// The exec as claimed.
    pub fn record(&self) -> &ExecRecord {
        &self.rec
    }
}

/// The exec backend: the engine and the table of execs.
#[derive(Debug, Clone)]
pub struct ExecBackend {
    engine: Arc<Mutex<Engine>>,
    table: Arc<ExecTable>,
}

impl ExecBackend {
    /// The backend over `engine`, with an empty table.
    pub fn new(engine: Arc<Mutex<Engine>>) -> ExecBackend {
        ExecBackend {
            engine,
            table: Arc::new(ExecTable::default()),
        }
    }

    /// `POST /containers/{id}/exec`: records an exec of `opts` in running container `what`
    /// (Docker's 409 otherwise); its ID.
    pub async fn create(
        &self,
        what: &str,
        opts: ExecOptions,
        streams: (bool, bool, bool),
        detach_keys: Vec<u8>,
    ) -> Result<String, ContainerError> {
        // Checked now (running, not paused, the command, the environment), run at the start.
        let container = self
            .engine
            .lock()
            .await
            .exec_plan(what, &opts)?
            .container()
            .to_string();
        Ok(self
            .table
            .insert(ExecRecord::new(container, opts, streams, detach_keys)))
    }

    /// The first step of `POST /exec/{id}/start`: an exec starts once (Docker's 409 after).
    pub fn claim(&self, exec_id: &str) -> Result<Claimed, ContainerError> {
        Ok(Claimed {
            rec: self.table.claim(exec_id)?,
            id: exec_id.to_string(),
        })
    }

    /// A claimed exec that will not run (its client went away first): ended with 126.
    pub fn abandon(&self, claimed: Claimed) {
        self.table.ended(&claimed.id, 126);
    }

    /// Runs claimed exec, attached with `attach` (detached without). A command that cannot
    /// run is recorded with Docker's 126 or 127 and returned as [`ContainerError::Exec`].
    pub async fn start(
        &self,
        claimed: Claimed,
        attach: Option<AttachRequest>,
    ) -> Result<ExecStarted, ContainerError> {
        // In a task of its own: a client hanging up never leaves the exec claimed and not
        // run, nor a spawned shim without the task that records its exit.
        let this = self.clone();
        let id = claimed.id.clone();
        let task = tokio::spawn(async move { this.start_detached(claimed, attach).await });
        task.await.unwrap_or_else(|e| {
            self.table.ended(&id, 126);
            Err(ContainerError::Io {
                what: format!("starting exec {id}"),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }

    async fn start_detached(
        &self,
        claimed: Claimed,
        attach: Option<AttachRequest>,
    ) -> Result<ExecStarted, ContainerError> {
        let Claimed { id, rec } = claimed;
        let exec_id = id.as_str();
        let plan = self
            .engine
            .lock()
            .await
            .exec_plan(&rec.container, &rec.opts);
        let spawned = match plan {
            Ok(plan) => tokio::task::spawn_blocking(move || plan.spawn(attach))
                .await
                .unwrap_or_else(|e| {
                    Err(ContainerError::Io {
                        what: format!("starting exec {exec_id}"),
                        source: std::io::Error::other(e.to_string()),
                    })
                }),
            Err(e) => Err(e),
        };
        let mut session = match spawned {
            Ok(s) => s,
            Err(e) => {
                let code = match &e {
                    ContainerError::Exec { code, .. } => *code,
                    _ => 126,
                };
                self.table.ended(exec_id, code);
                return Err(e);
            }
        };
        self.table.started(exec_id, session.pid, &session.id);
        let stream = session.stream.take();
        let (tx, ended) = oneshot::channel();
        let table = self.table.clone();
        tokio::spawn(async move {
            let code = session.wait().await;
            table.ended(&id, code);
            let _ = tx.send(code);
        });
        Ok(ExecStarted { stream, ended })
    }

    /// Exec `exec_id` as it is now (`exec inspect`).
    pub fn inspect(&self, exec_id: &str) -> Result<ExecRecord, ContainerError> {
        self.table.get(exec_id)
    }

    /// `POST /exec/{id}/resize`: sets the size of a running exec's terminal.
    pub async fn resize(&self, exec_id: &str, rows: u16, cols: u16) -> Result<(), ContainerError> {
        let rec = self.table.get(exec_id)?;
        let Some(session) = rec.session.filter(|_| rec.running) else {
            return Err(ContainerError::Conflict(format!(
                "exec {exec_id} is not running"
            )));
        };
        let dir = self
            .engine
            .lock()
            .await
            .exec_dir(&rec.container, &session)?;
        tokio::task::spawn_blocking(move || resize_terminal(&dir, rows, cols))
            .await
            .map_err(|e| ContainerError::Invalid(format!("resizing exec {exec_id}: {e}")))?
            .map_err(io_err(format!("resizing exec {exec_id}")))
    }
}
