//! The OCI runtime program behind a trait: runc or crun (Debian's), which share a command
//! line. berth builds the bundle; the program creates namespaces, cgroups and the process.
//! `--root` keeps its state under berth's exec root, so test instances never meet.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the runtime program failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No runtime program was found.
    #[error("no OCI runtime found: install crun or runc (looked for {0})")]
    NotFound(String),
    /// It could not be started.
    #[error("{runtime}: {source}")]
    Spawn {
        /// The program.
        runtime: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// It failed.
    #[error("{runtime} {op} {id}: {stderr}")]
    Failed {
        /// The program.
        runtime: String,
        /// The subcommand.
        op: String,
        /// The container.
        id: String,
        /// What it printed.
        stderr: String,
    },
    /// `state` printed something that is not its JSON.
    #[error("{runtime} state {id}: unreadable output: {detail}")]
    State {
        /// The program.
        runtime: String,
        /// The container.
        id: String,
        /// The parse error.
        detail: String,
    },
}

/// What `state` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RuntimeState {
    /// `created`, `running`, `paused`, `stopped`.
    pub status: String,
    /// The container's init process (0 once stopped).
    #[serde(default)]
    pub pid: i32,
}

/// An OCI runtime.
pub trait OciRuntime: Send + Sync + std::fmt::Debug {
    /// `runc`, `crun`.
    fn name(&self) -> &str;
    /// Runs the container in the foreground with the given stdio; its exit code.
    fn run(&self, id: &str, bundle: &Path, stdio: [Stdio; 3]) -> Result<i32, RuntimeError>;
    /// Creates the container (its init waits for `start`), writing its PID to `pid_file`.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError>;
    /// Starts a created container.
    fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Sends `signal` (`TERM`, `KILL`, `9`) to the init process, or to every process with `all`.
    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError>;
    /// Freezes or thaws it.
    fn pause(&self, id: &str, paused: bool) -> Result<(), RuntimeError>;
    /// Its state.
    fn state(&self, id: &str) -> Result<RuntimeState, RuntimeError>;
    /// Removes it (with `force`, kills it first).
    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError>;
}

/// runc or crun.
#[derive(Debug, Clone)]
pub struct RuncLike {
    binary: PathBuf,
    name: String,
    root: PathBuf,
}

const SEARCH: [&str; 4] = [
    "/usr/bin/crun",
    "/usr/sbin/crun",
    "/usr/bin/runc",
    "/usr/sbin/runc",
];

impl RuncLike {
    /// The runtime at `binary`, keeping its state under `root`.
    pub fn new(binary: &Path, root: &Path) -> RuncLike {
        RuncLike {
            name: binary
                .file_name()
                .map_or("runtime".into(), |n| n.to_string_lossy().into_owned()),
            binary: binary.to_path_buf(),
            root: root.to_path_buf(),
        }
    }

    /// `--runtime NAME` (`crun`, `runc` or a path), or the first installed (crun, then runc).
    pub fn find(wanted: Option<&str>, root: &Path) -> Result<RuncLike, RuntimeError> {
        let candidates: Vec<PathBuf> = match wanted {
            Some(w) if w.contains('/') => vec![PathBuf::from(w)],
            Some(w) => ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
                .iter()
                .map(|d| Path::new(d).join(w))
                .collect(),
            None => SEARCH.iter().map(PathBuf::from).collect(),
        };
        candidates
            .iter()
            .find(|p| p.is_file())
            .map(|p| RuncLike::new(p, root))
            .ok_or_else(|| {
                RuntimeError::NotFound(
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }

    /// The program.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root);
        c
    }

    fn call(&self, op: &str, id: &str, args: &[&str]) -> Result<String, RuntimeError> {
        let out = self
            .cmd()
            .arg(op)
            .args(args)
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                runtime: self.name.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                runtime: self.name.clone(),
                op: op.into(),
                id: id.into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl OciRuntime for RuncLike {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, id: &str, bundle: &Path, stdio: [Stdio; 3]) -> Result<i32, RuntimeError> {
        let [i, o, e] = stdio;
        let status = self
            .cmd()
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(i)
            .stdout(o)
            .stderr(e)
            .status()
            .map_err(|source| RuntimeError::Spawn {
                runtime: self.name.clone(),
                source,
            })?;
        Ok(status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }))
    }

    fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError> {
        let [i, o, e] = stdio;
        let status = self
            .cmd()
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            .stdin(i)
            .stdout(o)
            .stderr(e)
            .status()
            .map_err(|source| RuntimeError::Spawn {
                runtime: self.name.clone(),
                source,
            })?;
        if !status.success() {
            return Err(RuntimeError::Failed {
                runtime: self.name.clone(),
                op: "create".into(),
                id: id.into(),
                stderr: format!("exit status {status} (its error went to the container's stderr)"),
            });
        }
        Ok(())
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.call("start", id, &[]).map(drop)
    }

    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
        let out = self
            .cmd()
            .arg("kill")
            .args(all.then_some("--all"))
            .arg(id)
            .arg(signal)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                runtime: self.name.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                runtime: self.name.clone(),
                op: "kill".into(),
                id: id.into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    fn pause(&self, id: &str, paused: bool) -> Result<(), RuntimeError> {
        self.call(if paused { "pause" } else { "resume" }, id, &[])
            .map(drop)
    }

    fn state(&self, id: &str) -> Result<RuntimeState, RuntimeError> {
        let out = self.call("state", id, &[])?;
        serde_json::from_str(&out).map_err(|e| RuntimeError::State {
            runtime: self.name.clone(),
            id: id.into(),
            detail: e.to_string(),
        })
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let args: &[&str] = if force { &["--force"] } else { &[] };
        self.call("delete", id, args).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_a_runtime_names_what_it_looked_for() {
        let e = RuncLike::find(Some("/nonexistent/youki"), Path::new("/tmp")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no OCI runtime found: install crun or runc (looked for /nonexistent/youki)"
        );
        let e = RuncLike::find(Some("no-such-runtime"), Path::new("/tmp")).unwrap_err();
        assert!(e.to_string().contains("/usr/sbin/no-such-runtime"), "{e}");
    }

    #[test]
    fn a_failing_runtime_reports_its_error() {
        // `false` stands in for a runtime that refuses everything.
        let rt = RuncLike::new(Path::new("/bin/false"), Path::new("/tmp"));
        let e = rt.start("c1").unwrap_err();
        assert!(
            matches!(e, RuntimeError::Failed { ref op, ref id, .. } if op == "start" && id == "c1"),
            "{e}"
        );
        let rt = RuncLike::new(Path::new("/nonexistent/runc"), Path::new("/tmp"));
        assert!(matches!(rt.state("c1"), Err(RuntimeError::Spawn { .. })));
    }
}
