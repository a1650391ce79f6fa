//! [`ExecTable`]: every exec the daemon knows by ID, from `POST /containers/{id}/exec` to
//! after its end (`exec inspect` reads the exit code), with Docker's rules: an exec starts
//! once; the table is bounded (past its cap the oldest that do not run are forgotten, ended
//! ones first). A plain map behind a short lock that is never held across I/O or `.await`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::ExecOptions;
use crate::container::ContainerError;

/// One exec, before its start and after.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// The container's ID.
    pub container: String,
    /// What to run.
    pub opts: ExecOptions,
    /// Attach stdin / stdout / stderr.
    pub streams: (bool, bool, bool),
    /// `DetachKeys` as bytes.
    pub detach_keys: Vec<u8>,
    /// Running now.
    pub running: bool,
    /// Its exit code once ended.
    pub exit_code: Option<i32>,
    /// Its PID while it runs.
    pub pid: i32,
    /// The engine's ID of its session (its shim's state directory, for a resize).
    pub session: Option<String>,
    /// When it was created (the oldest are forgotten first past the cap).
    pub created: Instant,
}

impl ExecRecord {
    /// A new exec of `opts` in `container`, not started.
    pub fn new(
        container: String,
        opts: ExecOptions,
        streams: (bool, bool, bool),
        detach_keys: Vec<u8>,
    ) -> ExecRecord {
        ExecRecord {
            container,
            opts,
            streams,
            detach_keys,
            running: false,
            exit_code: None,
            pid: 0,
            session: None,
            created: Instant::now(),
        }
    }
}

/// Every exec by ID, at most `cap` of them.
#[derive(Debug)]
pub struct ExecTable {
    records: Mutex<HashMap<String, ExecRecord>>,
    cap: usize,
}

impl Default for ExecTable {
    fn default() -> Self {
        ExecTable::new(ExecTable::CAP)
    }
}

impl ExecTable {
    /// How many execs berthd keeps.
    pub const CAP: usize = 1024;

    /// An empty table of at most `cap` execs.
    pub fn new(cap: usize) -> ExecTable {
        ExecTable {
            records: Mutex::new(HashMap::new()),
            cap: cap.max(2),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `rec` under a new ID, which it returns. At the cap, the older half of the
    /// execs that do not run is forgotten first: ended ones, then never started ones.
    pub fn insert(&self, rec: ExecRecord) -> String {
        let id = berth_common::id::random_id();
        let mut records = self.records();
        if records.len() >= self.cap {
            let mut idle: Vec<(bool, Instant, String)> = records
                .iter()
                .filter(|(_, r)| !r.running)
                .map(|(k, r)| (r.exit_code.is_none(), r.created, k.clone()))
                .collect();
            idle.sort();
            for (_, _, k) in idle.into_iter().take(self.cap / 2) {
                records.remove(&k);
            }
        }
        records.insert(id.clone(), rec);
        id
    }

    /// Marks exec `id` running for its start; an exec starts once (Docker's 409 after).
    pub fn claim(&self, id: &str) -> Result<ExecRecord, ContainerError> {
        let mut records = self.records();
        let r = records
            .get_mut(id)
            .ok_or_else(|| ContainerError::NoSuchExec(id.to_string()))?;
        if r.running || r.exit_code.is_some() {
            return Err(ContainerError::Conflict(format!(
                "exec {id} has already been started"
            )));
        }
        r.running = true;
        Ok(r.clone())
    }

    /// Its process runs as `pid`, its shim's session is `session`.
    pub fn started(&self, id: &str, pid: i32, session: &str) {
        if let Some(r) = self.records().get_mut(id) {
            r.pid = pid;
            r.session = Some(session.to_string());
        }
    }

    /// It ended with `code` (or never ran: 126/127 as Docker's).
    pub fn ended(&self, id: &str, code: i32) {
        if let Some(r) = self.records().get_mut(id) {
            r.running = false;
            r.exit_code = Some(code);
            r.pid = 0;
        }
    }

    /// Exec `id` as it is now.
    pub fn get(&self, id: &str) -> Result<ExecRecord, ContainerError> {
        self.records()
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerError::NoSuchExec(id.to_string()))
    }

    /// How many execs are recorded.
    pub fn len(&self) -> usize {
        self.records().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.records().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> ExecRecord {
        ExecRecord::new(
            "c".into(),
            ExecOptions {
                cmd: vec!["true".into()],
                ..Default::default()
            },
            (false, true, true),
            Vec::new(),
        )
    }

    #[test]
    fn an_exec_starts_once_and_keeps_its_exit_code() {
        let t = ExecTable::default();
        let id = t.insert(rec());
        assert!(!t.get(&id).unwrap().running);
        t.claim(&id).unwrap();
        let again = t.claim(&id).unwrap_err().to_string();
        assert_eq!(again, format!("exec {id} has already been started"));
        t.started(&id, 42, "0123456789ab");
        let r = t.get(&id).unwrap();
        assert_eq!(
            (r.running, r.pid, r.session.as_deref()),
            (true, 42, Some("0123456789ab"))
        );
        t.ended(&id, 3);
        let r = t.get(&id).unwrap();
        assert_eq!((r.running, r.pid, r.exit_code), (false, 0, Some(3)));
        assert!(t.claim(&id).is_err(), "an ended exec starts again");
        let missing = t.get("nope").unwrap_err().to_string();
        assert_eq!(missing, "No such exec instance: nope");
    }

    #[test]
    fn past_its_cap_the_oldest_idle_execs_go_ended_ones_first_and_running_ones_stay() {
        let t = ExecTable::new(8);
        let running: Vec<String> = (0..3)
            .map(|_| {
                let id = t.insert(rec());
                t.claim(&id).unwrap();
                id
            })
            .collect();
        let ended: Vec<String> = (0..2)
            .map(|_| {
                let id = t.insert(rec());
                t.claim(&id).unwrap();
                t.ended(&id, 0);
                id
            })
            .collect();
        let fresh: Vec<String> = (0..3).map(|_| t.insert(rec())).collect();
        assert_eq!(t.len(), 8);
        let newest = t.insert(rec());
        // Half the cap forgotten: both ended, then the two oldest never started.
        assert_eq!(t.len(), 5);
        for id in running.iter().chain([&fresh[2], &newest]) {
            assert!(t.get(id).is_ok(), "{id} was forgotten");
        }
        for id in ended.iter().chain(&fresh[..2]) {
            assert!(t.get(id).is_err(), "{id} was kept");
        }
        // However many come, the table stays bounded.
        for _ in 0..100 {
            t.insert(rec());
        }
        assert!(t.len() <= 8);
    }
}
