//! `docker rm [-f] [-v]` in steps, so a daemon holds its engine only to check and to
//! record: the checks (and a live container's SIGKILL planned), the container marked for
//! removal (an engine that dies from there finishes the removal when it starts again), its run
//! undone and its directory removed without the engine, then the record dropped, the image's
//! layers released and the volumes let go ([`Engine::remove`] runs them in a row).

use std::time::Duration;

use super::ContainerError;
use super::engine::Engine;
use super::lifecycle::{RunTeardown, StopPlan};
use super::state::{Op, Status, check};
use crate::events::Event;
use crate::runtime::shim;
use crate::volume::store::Trash;

/// How many removed containers' exit codes are kept for waiters (`docker run --rm` waits with
/// `condition=removed` and still wants the code).
const REMOVED_KEPT: usize = 256;

impl Engine {
    /// `docker rm [-f] [-v]`: `force` kills a live container first; `volumes` also removes its
    /// anonymous volumes. Leaves no mount, namespace, link, rule, cgroup or process behind. The
    /// engine is held throughout; a daemon takes the steps ([`Engine::remove_begin`],
    /// [`RemovePlan::stop`], [`Engine::remove_mark`], [`RunTeardown::run`],
    /// [`Engine::remove_finish`]) and lets it go while the process dies and the run is undone.
    pub async fn remove(
        &mut self,
        what: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ContainerError> {
        let plan = self.remove_begin(what, force, volumes)?;
        if let Some(stop) = plan.stop() {
            stop.wait().await?;
        }
        let undo = self.remove_mark(&plan)?;
        let removed = undo.run_and_remove().await;
        delete(self.remove_finish(plan, removed)?);
        Ok(())
    }

    /// The first step of a removal: Docker's checks, and with `force` a live container's
    /// SIGKILL planned (wait for it with [`RemovePlan::stop`]).
    pub fn remove_begin(
        &mut self,
        what: &str,
        force: bool,
        volumes: bool,
    ) -> Result<RemovePlan, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        check(
            if force { Op::ForceRemove } else { Op::Remove },
            c.state.status,
            &c.name,
        )?;
        self.refuse_while_starting(&id, "removed")?;
        // rm -f: SIGKILL at once (a zero timeout), as Docker.
        let stop = if c.state.status.is_live() {
            self.stop_begin(&id, Some(Duration::ZERO))?
        } else {
            None
        };
        Ok(RemovePlan { id, stop, volumes })
    }

    /// The second step, once the process is gone: its death reported, the container marked
    /// for removal (recorded: an engine that dies from here on finishes the removal when it
    /// starts again, and nothing starts or connects it meanwhile), and how to undo its run.
    pub fn remove_mark(&mut self, plan: &RemovePlan) -> Result<RunTeardown, ContainerError> {
        let id = &plan.id;
        if !self.containers.contains_key(id) {
            return Err(ContainerError::NotFound(id.clone()));
        }
        if let Some(stop) = &plan.stop {
            // Its exit is not recorded (the container goes), but it is reported.
            let code = shim::read_exit(&self.bundle(id)).map_or(137, |r| r.exit_code);
            stop.report("die", &[("exitCode", code.to_string())]);
        }
        self.set_state(id, |s| {
            s.status = Status::Removing;
            s.remove_volumes = plan.volumes;
        })?;
        crate::failpoint::hit("rm:after-marking");
        let mut undo = self.run_teardown(id);
        undo.container_dir = Some(self.dir(id));
        Ok(undo)
    }

    /// The last step, after [`RunTeardown::run_and_remove`]: the record dropped (waiters
    /// told), the layers released, anonymous volumes removed with `-v` (their files returned,
    /// to delete with [`Trash::delete`] without the engine). When the container's directory
    /// could not be removed, it is recorded dead and the error returned.
    pub fn remove_finish(
        &mut self,
        plan: RemovePlan,
        removed: std::io::Result<()>,
    ) -> Result<Trash, ContainerError> {
        crate::failpoint::hit("rm:after-teardown");
        let id = plan.id;
        // An --rm container's exit kept it busy until here (see `exit_end`).
        self.end_busy(&id);
        let Some(c) = self.containers.get(&id).cloned() else {
            return Err(ContainerError::NotFound(id));
        };
        if let Err(e) = removed {
            let _ = self.set_state(&id, |s| s.status = Status::Dead);
            return Err(ContainerError::Io {
                what: format!("removing container {}: {}", c.name, self.dir(&id).display()),
                source: e,
            });
        }
        self.containers.remove(&id);
        self.reindex(&id);
        if self.removed.len() >= REMOVED_KEPT {
            self.removed.pop_front();
        }
        self.removed.push_back((id.clone(), c.state.exit_code));
        // Closes every subscriber's channel: `wait --condition removed` ends here.
        self.states.remove(&id);
        self.images.release(&id);
        self.emit(|| Event::container(&c, "destroy", &[]));
        // Its volumes lose a user; with `-v`, its anonymous ones go unless another container
        // mounts them too.
        let anonymous: Vec<String> = if plan.volumes {
            c.mounts
                .iter()
                .filter(|m| m.anonymous)
                .filter_map(|m| m.name.clone())
                .collect()
        } else {
            Vec::new()
        };
        let trash = self.volumes.release(&id, &anonymous);
        Ok(trash)
    }
}

/// A removal between its steps (see [`Engine::remove`]).
#[derive(Debug)]
pub struct RemovePlan {
    pub(super) id: String,
    pub(super) stop: Option<StopPlan>,
    pub(super) volumes: bool,
}

impl RemovePlan {
    /// The container.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The SIGKILL of a live container, to wait for before [`Engine::remove_mark`].
    pub fn stop(&self) -> Option<&StopPlan> {
        self.stop.as_ref()
    }
}

/// Deletes removed volumes' files on a thread of their own, waited for by nobody (what a
/// crash interrupts, the volume store deletes when it opens).
pub(super) fn delete(trash: Trash) {
    if !trash.is_empty() {
        std::thread::spawn(move || trash.delete());
    }
}
