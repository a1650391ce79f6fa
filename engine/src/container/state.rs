//! The lifecycle state machine: a container's status and which operation each status allows,
//! with Docker's answers (a no-op where Docker returns 304, its messages where it refuses).
//! Pure: the engine asks [`check`] before it touches anything.

use serde::{Deserialize, Serialize};

use super::ContainerError;

/// Docker's container statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started (or reset by a failed start).
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Frozen (cgroup freezer).
    Paused,
    /// Exited; a restart policy will start it again after a back-off.
    Restarting,
    /// Being removed.
    Removing,
    /// Its process ended.
    Exited,
    /// Removal failed half-way; only `rm -f` applies.
    Dead,
}

impl Status {
    /// Docker's lowercase word (`docker inspect .State.Status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether the container's process exists (running or frozen).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// What a caller asks of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `kill`.
    Kill,
    /// `restart`.
    Restart,
    /// `pause`.
    Pause,
    /// `unpause`.
    Unpause,
    /// `rm` without `-f`.
    Remove,
    /// `rm -f`.
    ForceRemove,
    /// `exec`.
    Exec,
    /// `attach` (and `resize`).
    Attach,
}

/// What the engine should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Proceed,
    /// Nothing to do (Docker answers 304 Not Modified).
    AlreadyDone,
}

/// Whether `op` applies to a container named `name` in `status`.
pub fn check(op: Op, status: Status, name: &str) -> Result<Verdict, ContainerError> {
    use Status::*;
    let conflict = |m: String| Err(ContainerError::Conflict(m));
    match (op, status) {
        (_, Removing) if op != Op::ForceRemove => conflict(format!(
            "container {name} is marked for removal and cannot be used"
        )),
        (Op::Start, Running) => Ok(Verdict::AlreadyDone),
        (Op::Start, Paused) => conflict(format!(
            "cannot start a paused container {name}, try unpause instead"
        )),
        (Op::Start, Dead) => conflict(format!("cannot start container {name}: it is dead")),
        (Op::Start, _) => Ok(Verdict::Proceed),
        (Op::Stop, Running | Paused | Restarting) => Ok(Verdict::Proceed),
        (Op::Stop, _) => Ok(Verdict::AlreadyDone),
        (Op::Kill, Running | Paused) => Ok(Verdict::Proceed),
        (Op::Kill, _) => conflict(format!(
            "Cannot kill container: {name}: Container {name} is not running"
        )),
        (Op::Restart, Dead) => conflict(format!("cannot restart container {name}: it is dead")),
        (Op::Restart, _) => Ok(Verdict::Proceed),
        (Op::Pause, Running) => Ok(Verdict::Proceed),
        (Op::Pause, Paused) => conflict(format!("Container {name} is already paused")),
        (Op::Pause, _) => conflict(format!("Container {name} is not running")),
        (Op::Unpause, Paused) => Ok(Verdict::Proceed),
        (Op::Unpause, _) => conflict(format!("Container {name} is not paused")),
        (Op::Exec, Running) => Ok(Verdict::Proceed),
        (Op::Exec, Paused) => conflict(format!(
            "Container {name} is paused, unpause the container before exec"
        )),
        (Op::Exec, _) => conflict(format!("Container {name} is not running")),
        (Op::Attach, Running) => Ok(Verdict::Proceed),
        (Op::Attach, Paused) => conflict(format!(
            "You cannot attach to a paused container {name}, unpause it first"
        )),
        (Op::Attach, Restarting) => conflict(format!(
            "You cannot attach to a restarting container {name}, wait until it is running"
        )),
        (Op::Attach, _) => conflict(format!(
            "You cannot attach to a stopped container {name}, start it first"
        )),
        (Op::Remove, Running | Paused | Restarting) => conflict(format!(
            "cannot remove container \"/{name}\": container is {}: stop the container before removing or force remove",
            status.as_str()
        )),
        (Op::Remove | Op::ForceRemove, _) => Ok(Verdict::Proceed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 7] = [
        Status::Created,
        Status::Running,
        Status::Paused,
        Status::Restarting,
        Status::Removing,
        Status::Exited,
        Status::Dead,
    ];

    #[test]
    fn dockers_answers() {
        assert_eq!(
            check(Op::Start, Status::Running, "w").unwrap(),
            Verdict::AlreadyDone
        );
        assert_eq!(
            check(Op::Start, Status::Exited, "w").unwrap(),
            Verdict::Proceed
        );
        assert_eq!(
            check(Op::Stop, Status::Exited, "w").unwrap(),
            Verdict::AlreadyDone
        );
        assert_eq!(
            check(Op::Stop, Status::Paused, "w").unwrap(),
            Verdict::Proceed
        );
        assert_eq!(
            check(Op::Kill, Status::Exited, "web")
                .unwrap_err()
                .to_string(),
            "Cannot kill container: web: Container web is not running"
        );
        assert_eq!(
            check(Op::Remove, Status::Running, "web")
                .unwrap_err()
                .to_string(),
            "cannot remove container \"/web\": container is running: stop the container before removing or force remove"
        );
        assert!(check(Op::Pause, Status::Paused, "w").is_err());
        assert!(check(Op::Unpause, Status::Running, "w").is_err());
        assert!(check(Op::Exec, Status::Exited, "w").is_err());
        assert_eq!(
            check(Op::Attach, Status::Exited, "web")
                .unwrap_err()
                .to_string(),
            "You cannot attach to a stopped container web, start it first"
        );
        assert!(check(Op::Attach, Status::Paused, "w").is_err());
        assert!(check(Op::Attach, Status::Running, "w").is_ok());
    }

    #[test]
    fn force_remove_always_applies_and_removing_blocks_the_rest() {
        for s in ALL {
            assert_eq!(check(Op::ForceRemove, s, "w").unwrap(), Verdict::Proceed);
        }
        for op in [
            Op::Start,
            Op::Stop,
            Op::Kill,
            Op::Restart,
            Op::Pause,
            Op::Remove,
            Op::Exec,
            Op::Attach,
        ] {
            assert!(check(op, Status::Removing, "w").is_err(), "{op:?}");
        }
    }

    #[test]
    fn only_live_containers_take_signals_and_execs() {
        for s in ALL {
            let live = s.is_live();
            assert_eq!(
                check(Op::Kill, s, "w").is_ok(),
                live && s != Status::Removing,
                "{s:?}"
            );
            assert_eq!(
                check(Op::Exec, s, "w").is_ok(),
                s == Status::Running,
                "{s:?}"
            );
        }
    }
}
