//! The OCI runtime program behind a trait: runc or crun (Debian's), which share a command
//! line. berth builds the bundle; the program creates namespaces, cgroups and the process.
//! `--root` keeps its state under berth's exec root, so test instances never meet.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the runtime program failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No runtime program was found.
    #[error("no OCI runtime found: install runc or crun (looked for {0})")]
    NotFound(String),
    /// The daemon's runtimes are configured wrongly (a bad name, a path that is no program).
    #[error("{0}")]
    Invalid(String),
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
    /// Creates the container (its init waits for `start`), writing its PID to `pid_file`;
    /// with `console_socket`, its terminal's master is sent there.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError>;
    /// Starts the process spec at `process` in running container `id` and returns once it
    /// runs (its PID in `pid_file`; the caller, a subreaper, reaps it).
    fn exec_detached(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError>;
    /// Starts a created container.
    fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Sends `signal` (`TERM`, `KILL`, `9`) to the init process, or to every process with `all`.
    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError>;
    /// Freezes or thaws it.
    fn pause(&self, id: &str, paused: bool) -> Result<(), RuntimeError>;
    /// Changes its cgroup limits to the OCI `linux.resources` JSON in `resources` (a file).
    fn update(&self, id: &str, resources: &Path) -> Result<(), RuntimeError>;
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
    log: Option<PathBuf>,
    /// Given before every subcommand (daemon.json's `runtimeArgs`).
    args: Vec<String>,
}

const SEARCH: [&str; 4] = [
    "/usr/bin/runc",
    "/usr/sbin/runc",
    "/usr/bin/crun",
    "/usr/sbin/crun",
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
            log: None,
            args: Vec::new(),
        }
    }

    /// The same runtime, given `args` before every subcommand (daemon.json's
    /// `runtimeArgs`).
    pub fn with_args(mut self, args: Vec<String>) -> RuncLike {
        self.args = args;
        self
    }

    /// What it is given before every subcommand.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Its state directory (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The same runtime, writing its own errors (JSON lines) to `log`, where a failed
    /// `create` or `exec` reads them back (its stderr is the container's).
    pub fn with_log(mut self, log: &Path) -> RuncLike {
        self.log = Some(log.to_path_buf());
        self
    }

    /// The last error message the runtime logged.
    fn logged_error(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.log.as_ref()?).ok()?;
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "error" || v["level"] == "fatal")
            .find_map(|v| v["msg"].as_str().map(String::from))
    }

    /// Runs `args` (then `--console-socket` and the ID) for `op`, which starts a process: a
    /// failure carries the error the runtime logged.
    fn launch<'a>(
        &self,
        op: &str,
        id: &'a str,
        mut args: Vec<&'a std::ffi::OsStr>,
        console_socket: Option<&'a Path>,
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError> {
        if let Some(c) = console_socket {
            args.extend(["--console-socket".as_ref(), c.as_os_str()]);
        }
        args.push(id.as_ref());
        if let Some(l) = &self.log {
            let _ = std::fs::remove_file(l);
        }
        let status = self.exec(&args, stdio)?;
        if !status.success() {
            return Err(RuntimeError::Failed {
                runtime: self.name.clone(),
                op: op.into(),
                id: id.into(),
                stderr: self.logged_error().unwrap_or_else(|| {
                    format!("exit status {status} (its error went to the container's stderr)")
                }),
            });
        }
        Ok(())
    }

    /// `--runtime NAME` (`crun`, `runc` or a path), or the first installed: runc, as Docker
    /// defaults to it, then crun (Debian's crun refuses hosts with cgroup v1 plus a v2 mount
    /// holding controllers, "cgroups in hybrid mode not supported", where runc works).
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

    fn spawn_err(&self) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
        move |source| RuntimeError::Spawn {
            runtime: self.name.clone(),
            source,
        }
    }

    /// Runs `<runtime> --root ROOT ARGS...` with `stdio`, to completion.
    fn exec(
        &self,
        args: &[&std::ffi::OsStr],
        stdio: [Stdio; 3],
    ) -> Result<std::process::ExitStatus, RuntimeError> {
        let [i, o, e] = stdio;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        if let Some(l) = &self.log {
            cmd.arg("--log").arg(l).arg("--log-format").arg("json");
        }
        cmd.args(&self.args)
            .args(args)
            .stdin(i)
            .stdout(o)
            .stderr(e)
            .status()
            .map_err(self.spawn_err())
    }

    /// Runs `<runtime> --root ROOT ARGS...` for subcommand `op` on `id`, capturing its output;
    /// a failure carries what it printed.
    fn call(&self, op: &str, id: &str, args: &[&str]) -> Result<String, RuntimeError> {
        let out = Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(&self.args)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(self.spawn_err())?;
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
        let status = self.exec(
            &[
                "run".as_ref(),
                "--bundle".as_ref(),
                bundle.as_os_str(),
                id.as_ref(),
            ],
            stdio,
        )?;
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
        console_socket: Option<&Path>,
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError> {
        let args = vec![
            "create".as_ref(),
            "--bundle".as_ref(),
            bundle.as_os_str(),
            "--pid-file".as_ref(),
            pid_file.as_os_str(),
        ];
        self.launch("create", id, args, console_socket, stdio)
    }

    fn exec_detached(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: [Stdio; 3],
    ) -> Result<(), RuntimeError> {
        let args = vec![
            "exec".as_ref(),
            "--detach".as_ref(),
            "--pid-file".as_ref(),
            pid_file.as_os_str(),
            "--process".as_ref(),
            process.as_os_str(),
        ];
        self.launch("exec", id, args, console_socket, stdio)
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.call("start", id, &["start", id]).map(drop)
    }

    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
        let args: &[&str] = if all {
            &["kill", "--all", id, signal]
        } else {
            &["kill", id, signal]
        };
        self.call("kill", id, args).map(drop)
    }

    fn pause(&self, id: &str, paused: bool) -> Result<(), RuntimeError> {
        let op = if paused { "pause" } else { "resume" };
        self.call(op, id, &[op, id]).map(drop)
    }

    fn update(&self, id: &str, resources: &Path) -> Result<(), RuntimeError> {
        let file = resources.to_string_lossy();
        self.call("update", id, &["update", "--resources", &file, id])
            .map(drop)
    }

    fn state(&self, id: &str) -> Result<RuntimeState, RuntimeError> {
        let out = self.call("state", id, &["state", id])?;
        serde_json::from_str(&out).map_err(|e| RuntimeError::State {
            runtime: self.name.clone(),
            id: id.into(),
            detail: e.to_string(),
        })
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let args: &[&str] = if force {
            &["delete", "--force", id]
        } else {
            &["delete", id]
        };
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
            "no OCI runtime found: install runc or crun (looked for /nonexistent/youki)"
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
