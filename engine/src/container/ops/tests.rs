//! The ordering rules and Docker's decisions over a fake machine: each step is logged, and
//! starts and stops can be held at a gate, so a test sees what waits for what. No root, no
//! runtime, no timing: a request that must wait is checked not to have run after every other
//! task had its turn.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex as StdMutex;

use tokio::sync::Semaphore;

use super::*;
use crate::container::State;

#[derive(Debug, Default)]
struct Fake {
    containers: StdMutex<HashMap<String, Facts>>,
    log: StdMutex<Vec<String>>,
    /// Starts and stops of these containers wait for a permit.
    gates: StdMutex<HashMap<String, Arc<Semaphore>>>,
    /// Starts of these containers fail.
    failing: StdMutex<HashSet<String>>,
}

impl Fake {
    fn with(containers: &[(&str, Status, bool)]) -> Fake {
        let f = Fake::default();
        for (id, status, auto_remove) in containers {
            f.containers.lock().unwrap().insert(
                id.to_string(),
                Facts {
                    status: *status,
                    name: format!("{id}-name"),
                    auto_remove: *auto_remove,
                },
            );
        }
        f
    }

    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }

    fn set(&self, id: &str, status: Status) {
        if let Some(f) = self.containers.lock().unwrap().get_mut(id) {
            f.status = status;
        }
    }

    async fn gate(&self, id: &str) {
        let gate = self.gates.lock().unwrap().get(id).cloned();
        if let Some(g) = gate {
            g.acquire().await.unwrap().forget();
        }
    }
}

impl Machine for Fake {
    type Stream = String;

    async fn facts(&self, id: &str) -> Result<Facts, ContainerError> {
        self.containers
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(id.into()))
    }

    async fn start(
        &self,
        id: &str,
        attach: Option<AttachRequest>,
    ) -> Result<Option<String>, ContainerError> {
        self.facts(id).await?;
        self.note(format!("start {id} begins"));
        self.gate(id).await;
        if self.failing.lock().unwrap().contains(id) {
            self.note(format!("start {id} fails"));
            return Err(ContainerError::Invalid(format!("{id} cannot start")));
        }
        self.set(id, Status::Running);
        self.note(format!("start {id} ends"));
        Ok(attach.map(|_| format!("stream of {id} from its start")))
    }

    async fn attach(&self, id: &str, _: AttachRequest) -> Result<String, ContainerError> {
        self.note(format!("attach {id}"));
        Ok(format!("stream of {id}"))
    }

    async fn stop(&self, id: &str, _: Option<Duration>) -> Result<(), ContainerError> {
        self.note(format!("stop {id} begins"));
        self.gate(id).await;
        self.set(id, Status::Exited);
        self.note(format!("stop {id} ends"));
        Ok(())
    }

    async fn stop_for_restart(&self, id: &str, t: Option<Duration>) -> Result<(), ContainerError> {
        self.note(format!("restart keeps {id}"));
        self.stop(id, t).await
    }

    async fn remove(&self, id: &str, force: bool, _: bool) -> Result<(), ContainerError> {
        let f = self.facts(id).await?;
        if f.status.is_live() && !force {
            return Err(ContainerError::Conflict(format!("{id} is running")));
        }
        self.containers.lock().unwrap().remove(id);
        self.note(format!("remove {id}"));
        Ok(())
    }

    async fn update(
        &self,
        id: &str,
        _u: crate::container::update::UpdateOptions,
    ) -> Result<(), ContainerError> {
        self.note(format!("update {id}"));
        Ok(())
    }

    async fn call(&self, id: &str, call: Call) -> Result<(), ContainerError> {
        if self.facts(id).await?.status != Status::Running {
            return Err(ContainerError::Conflict(format!("{id} is not running")));
        }
        self.note(format!("{call:?} {id}"));
        Ok(())
    }

    async fn emit(&self, id: &str, action: &str) {
        self.note(format!("event {action} {id}"));
    }

    async fn pruned(&self, reclaimed: u64) {
        self.note(format!("event prune {reclaimed}"));
    }

    async fn stopped(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .containers
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, f)| !f.status.is_live())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

fn ops(containers: &[(&str, Status, bool)]) -> Ops<Fake> {
    Ops::new(Fake::with(containers))
}

fn log(o: &Ops<Fake>) -> Vec<String> {
    o.machine().log.lock().unwrap().clone()
}

/// Closes the gate of `id`: its starts and stops wait for [`open`].
fn close(o: &Ops<Fake>, id: &str) -> Arc<Semaphore> {
    let s = Arc::new(Semaphore::new(0));
    o.machine()
        .gates
        .lock()
        .unwrap()
        .insert(id.into(), s.clone());
    s
}

/// Lets every other task run until it waits.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn spawn<T: Send + 'static>(
    f: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::spawn(f)
}

#[tokio::test]
async fn a_start_of_a_running_container_and_a_stop_of_a_stopped_one_do_nothing() {
    let o = ops(&[
        ("up", Status::Running, false),
        ("down", Status::Exited, false),
    ]);
    assert_eq!(o.start("up").await.unwrap(), Started::AlreadyRunning);
    assert_eq!(o.stop("down", None).await.unwrap(), Stopped::NotRunning);
    assert!(log(&o).is_empty(), "{:?}", log(&o));
    assert_eq!(o.start("down").await.unwrap(), Started::Started);
    assert_eq!(o.stop("up", None).await.unwrap(), Stopped::Stopped);
    assert!(matches!(
        o.start("gone").await,
        Err(ContainerError::NotFound(_))
    ));
}

#[tokio::test]
async fn rm_f_during_a_start_waits_for_the_start() {
    let o = ops(&[("web", Status::Created, false)]);
    let gate = close(&o, "web");
    let start = spawn({
        let o = o.clone();
        async move { o.start("web").await }
    });
    settle().await;
    let rm = spawn({
        let o = o.clone();
        async move { o.remove("web", true, true).await }
    });
    settle().await;
    assert_eq!(log(&o), ["start web begins"], "the removal waits");
    gate.add_permits(1);
    start.await.unwrap().unwrap();
    rm.await.unwrap().unwrap();
    assert_eq!(
        log(&o),
        ["start web begins", "start web ends", "remove web"]
    );
}

#[tokio::test]
async fn requests_on_other_containers_do_not_wait() {
    let o = ops(&[
        ("slow", Status::Created, false),
        ("fast", Status::Created, false),
    ]);
    let gate = close(&o, "slow");
    let slow = spawn({
        let o = o.clone();
        async move { o.start("slow").await }
    });
    settle().await;
    // Started, stopped and removed while the other's start is held.
    o.start("fast").await.unwrap();
    o.stop("fast", None).await.unwrap();
    o.remove("fast", false, false).await.unwrap();
    assert!(!slow.is_finished());
    gate.add_permits(1);
    slow.await.unwrap().unwrap();
    assert_eq!(log(&o).last().unwrap(), "start slow ends");
}

#[tokio::test]
async fn a_stop_during_a_restart_waits_for_it_and_a_kill_during_a_stop_signals_at_once() {
    let o = ops(&[("app", Status::Running, false)]);
    let gate = close(&o, "app");
    let restart = spawn({
        let o = o.clone();
        async move { o.restart("app", None).await }
    });
    settle().await;
    let stop = spawn({
        let o = o.clone();
        async move { o.stop("app", None).await }
    });
    settle().await;
    assert_eq!(log(&o), ["restart keeps app", "stop app begins"]);
    // The restart's stop and start, then the waiting stop.
    gate.add_permits(3);
    restart.await.unwrap().unwrap();
    assert_eq!(stop.await.unwrap().unwrap(), Stopped::Stopped);
    assert_eq!(
        log(&o),
        [
            "restart keeps app",
            "stop app begins",
            "stop app ends",
            "start app begins",
            "start app ends",
            "event restart app",
            "stop app begins",
            "stop app ends"
        ]
    );
    // A kill sent while a stop waits for the process signals at once (as Docker's); a pause
    // waits for the stop and finds the container stopped.
    gate.add_permits(1);
    o.start("app").await.unwrap();
    let stop = spawn({
        let o = o.clone();
        async move { o.stop("app", None).await }
    });
    settle().await;
    let pause = spawn({
        let o = o.clone();
        async move { o.call("app", Call::Pause).await }
    });
    // (Bounded: a kill that waited for the stop would wait for ever here.)
    tokio::time::timeout(
        Duration::from_secs(10),
        o.call("app", Call::Kill("KILL".into())),
    )
    .await
    .expect("the kill does not wait for the stop")
    .unwrap();
    settle().await;
    assert!(!stop.is_finished() && !pause.is_finished());
    assert_eq!(
        log(&o)[10..],
        ["stop app begins", "Kill(\"KILL\") app"],
        "{:?}",
        log(&o)
    );
    gate.add_permits(1);
    stop.await.unwrap().unwrap();
    let e = pause.await.unwrap().unwrap_err().to_string();
    assert!(e.contains("not running"), "{e}");
    // Once no stop runs, a kill is ordered with the other requests again: after a restart's
    // start, not in the middle of it.
    let restart = spawn({
        let o = o.clone();
        async move { o.restart("app", None).await }
    });
    settle().await;
    // Its stop lets the container go; its start is held at the gate.
    gate.add_permits(1);
    settle().await;
    let kill = spawn({
        let o = o.clone();
        async move { o.call("app", Call::Kill("TERM".into())).await }
    });
    settle().await;
    assert!(!kill.is_finished());
    gate.add_permits(1);
    restart.await.unwrap().unwrap();
    kill.await.unwrap().unwrap();
    let l = log(&o);
    assert_eq!(
        l[l.len() - 4..],
        [
            "start app begins",
            "start app ends",
            "event restart app",
            "Kill(\"TERM\") app"
        ],
        "{l:?}"
    );
}

#[tokio::test]
async fn an_rm_container_whose_start_failed_is_removed_and_others_are_kept() {
    let o = ops(&[
        ("once", Status::Created, true),
        ("kept", Status::Created, false),
    ]);
    o.machine()
        .failing
        .lock()
        .unwrap()
        .extend(["once".to_string(), "kept".to_string()]);
    assert!(o.start("once").await.is_err());
    assert!(o.start("kept").await.is_err());
    assert_eq!(
        log(&o),
        [
            "start once begins",
            "start once fails",
            "remove once",
            "start kept begins",
            "start kept fails"
        ]
    );
    assert!(o.machine().facts("once").await.is_err());
    assert!(o.machine().facts("kept").await.is_ok());
}

#[tokio::test]
async fn attachments_made_before_a_start_get_their_streams_from_it() {
    let o = ops(&[
        ("run", Status::Created, false),
        ("frozen", Status::Paused, false),
    ]);
    let Attached::OnStart(first) = o.attach("run", AttachRequest::all()).await.unwrap() else {
        panic!("a created container is attached to by its start");
    };
    let Attached::OnStart(second) = o.attach("run", AttachRequest::all()).await.unwrap() else {
        panic!("queued too");
    };
    o.start("run").await.unwrap();
    assert_eq!(first.await.unwrap(), "stream of run from its start");
    assert_eq!(second.await.unwrap(), "stream of run");
    let Attached::Now(s) = o.attach("run", AttachRequest::all()).await.unwrap() else {
        panic!("a running container is attached to at once");
    };
    assert_eq!(s, "stream of run");
    let e = o.attach("frozen", AttachRequest::all()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "You cannot attach to a paused container frozen-name"
    );
    // Removal ends the wait of an attachment queued for a start that never comes.
    o.stop("run", None).await.unwrap();
    let Attached::OnStart(orphan) = o.attach("run", AttachRequest::all()).await.unwrap() else {
        panic!("queued");
    };
    o.remove("run", false, false).await.unwrap();
    assert!(orphan.await.is_err());
}

#[tokio::test]
async fn a_removal_in_progress_is_a_conflict_and_a_failed_restart_removes_an_rm_container() {
    let o = ops(&[
        ("going", Status::Removing, true),
        ("once", Status::Running, true),
    ]);
    let e = o.remove("going", true, true).await.unwrap_err().to_string();
    assert_eq!(e, "removal of container going-name is already in progress");
    o.machine().failing.lock().unwrap().insert("once".into());
    assert!(o.restart("once", None).await.is_err());
    assert!(
        o.machine().facts("once").await.is_err(),
        "removed, as dockerd does"
    );
}

#[tokio::test]
async fn prune_removes_what_does_not_run() {
    let o = ops(&[
        ("a", Status::Exited, false),
        ("b", Status::Created, false),
        ("c", Status::Running, false),
        ("d", Status::Dead, false),
    ]);
    assert_eq!(o.prune().await, ["a", "b", "d"]);
    assert!(o.machine().facts("c").await.is_ok());
}

#[tokio::test]
async fn a_hung_up_client_never_leaves_a_request_half_done() {
    let o = ops(&[("web", Status::Created, false)]);
    let gate = close(&o, "web");
    // The caller goes away mid-start (a dropped handler future).
    let call = spawn({
        let o = o.clone();
        async move { o.start("web").await }
    });
    settle().await;
    call.abort();
    // The start's, then the stop's.
    gate.add_permits(2);
    // The start still completes, in its own task; the next request is ordered after it.
    assert_eq!(o.stop("web", None).await.unwrap(), Stopped::Stopped);
    assert_eq!(
        log(&o),
        [
            "start web begins",
            "start web ends",
            "stop web begins",
            "stop web ends"
        ]
    );
}

#[tokio::test]
async fn wait_conditions() {
    let running = State {
        status: Status::Running,
        ..State::default()
    };
    let (tx, rx) = watch::channel(Published {
        state: running.clone(),
        exits: 0,
        last_exit_code: 0,
    });
    let not_running = spawn(wait_for(rx.clone(), WaitCondition::NotRunning));
    let next_exit = spawn(wait_for(rx.clone(), WaitCondition::NextExit));
    let removed = spawn(wait_for(rx, WaitCondition::Removed));
    settle().await;
    assert!(!not_running.is_finished() && !next_exit.is_finished());
    // An exit whose state a restart replaced before anyone looked still counts.
    tx.send_modify(|p| {
        p.exits = 1;
        p.last_exit_code = 3;
        p.state = running.clone();
    });
    assert_eq!(not_running.await.unwrap(), Some(3));
    assert_eq!(next_exit.await.unwrap(), Some(3));
    assert!(!removed.is_finished());
    drop(tx);
    assert_eq!(removed.await.unwrap(), None);
    let exited = State {
        status: Status::Exited,
        exit_code: 7,
        ..State::default()
    };
    let (_tx, rx) = watch::channel(Published {
        state: exited,
        exits: 0,
        last_exit_code: 7,
    });
    assert_eq!(wait_for(rx, WaitCondition::NotRunning).await, Some(7));
    assert_eq!(WaitCondition::parse("").unwrap(), WaitCondition::NotRunning);
    let e = WaitCondition::parse("whenever").unwrap_err().to_string();
    assert!(e.contains("\"whenever\"") && e.contains("next-exit"), "{e}");
}
