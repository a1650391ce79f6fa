//! `docker update`: new limits (and restart policy) for a container, checked as at create,
//! applied to a running one through the runtime (off the engine's lock) and then recorded.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::engine::Engine;
use super::resources::{self, Update};
use super::restart::RestartPolicy;
use super::state::Status;
use super::{ContainerError, io_err};
use crate::runtime::oci::{OciRuntime, RuncLike};

/// What `docker update` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateOptions {
    /// New limits.
    pub resources: Update,
    /// A new restart policy.
    pub restart: Option<RestartPolicy>,
}

/// An update checked against the records: apply it with [`UpdatePlan::apply`] (the runtime,
/// for a running container), then record it with [`Engine::update_finish`].
#[derive(Debug)]
pub struct UpdatePlan {
    id: String,
    options: super::model::CreateOptions,
    /// For a running container: the runtime, and the resources file it reads.
    live: Option<(RuncLike, PathBuf, Value)>,
}

/// `linux.resources` for `runc update`: what `new` sets, and the limits `old` had that `new`
/// drops lifted (-1: unlimited; an absent value would leave the old limit in place).
pub fn update_resources(
    old: &super::model::CreateOptions,
    new: &super::model::CreateOptions,
) -> Value {
    let (o, mut n) = (resources::oci(old), resources::oci(new));
    for (group, key) in [
        ("memory", "limit"),
        ("memory", "swap"),
        ("memory", "reservation"),
        ("cpu", "quota"),
        ("pids", "limit"),
    ] {
        if !o[group][key].is_null() && n[group][key].is_null() {
            if !n[group].is_object() {
                n[group] = json!({});
            }
            n[group][key] = json!(-1);
        }
    }
    n
}

impl UpdatePlan {
    /// Applies the limits to a running container (blocking: the runtime is a process).
    pub fn apply(&self) -> Result<(), ContainerError> {
        if let Some((runtime, file, value)) = &self.live {
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(file)
                    .and_then(|mut f| f.write_all(value.to_string().as_bytes()))
                    .map_err(io_err(format!("writing {}", file.display())))?;
            }
            let done = runtime.update(&self.id, file);
            let _ = std::fs::remove_file(file);
            done.map_err(|e| {
                ContainerError::Invalid(format!("Cannot update container {}: {e}", self.id))
            })?;
        }
        Ok(())
    }
}

impl Engine {
    /// The first step of `docker update`: the new options, checked as create checks them.
    pub fn update_begin(
        &self,
        what: &str,
        u: &UpdateOptions,
    ) -> Result<UpdatePlan, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        // Docker's rule: a memory limit above the swap limit set needs the swap limit too.
        if let Some(m) = u.resources.memory {
            if u.resources.memory_swap.is_none()
                && i64::try_from(m).unwrap_or(i64::MAX) > c.options.memory_swap.unwrap_or(0)
            {
                return Err(ContainerError::Conflict(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
                ));
            }
        }
        let mut options = u.resources.apply(&c.options);
        if let Some(r) = u.restart {
            if r != RestartPolicy::No && c.options.auto_remove {
                return Err(ContainerError::Invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                ));
            }
            options.restart = r;
        }
        resources::check(&options, &self.host_resources)?;
        let live = matches!(c.state.status, Status::Running | Status::Paused).then(|| {
            (
                self.runtime_of(&id),
                self.bundle(&id).join("update.json"),
                update_resources(&c.options, &options),
            )
        });
        Ok(UpdatePlan { id, options, live })
    }

    /// The last step: the options recorded (the container's restart policy included).
    pub fn update_finish(&mut self, plan: UpdatePlan) -> Result<(), ContainerError> {
        let Some(c) = self.containers.get_mut(&plan.id) else {
            return Err(ContainerError::NotFound(plan.id));
        };
        let old = (
            c.restart_policy,
            std::mem::replace(&mut c.options, plan.options),
        );
        c.restart_policy = c.options.restart;
        if let Err(e) = self.save(&plan.id) {
            // Not recorded: the record in memory stays what the disk holds.
            if let Some(c) = self.containers.get_mut(&plan.id) {
                (c.restart_policy, c.options) = old;
            }
            return Err(e);
        }
        self.reindex(&plan.id);
        self.emit(|| crate::events::Event::container(&self.containers[&plan.id], "update", &[]));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::model::CreateOptions;

    #[test]
    fn dropped_limits_are_lifted_not_kept() {
        let old = CreateOptions {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            pids_limit: Some(10),
            ..CreateOptions::default()
        };
        let new = CreateOptions {
            cpu_shares: Some(512),
            ..CreateOptions::default()
        };
        let r = update_resources(&old, &new);
        assert_eq!(r["memory"], json!({"limit": -1, "swap": -1}));
        assert_eq!(r["pids"], json!({"limit": -1}));
        assert_eq!(r["cpu"], json!({"shares": 512}));
    }
}
