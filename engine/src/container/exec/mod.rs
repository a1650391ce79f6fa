//! `docker exec`: a new process in a running container, through the OCI runtime's `exec`, with
//! the container's own process settings (capabilities, rlimits) and the caller's command,
//! environment, working directory and user. Each exec runs under its own `berth-shim`
//! (`--exec`), the same stdio hub as a container's: pipes or a pty, attach, resize, the exit
//! code recorded.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod backend;
pub mod table;

use super::engine::Engine;
use super::exit::ExitWatch;
use super::state::{Op, check};
use super::{ContainerError, io_err};
use crate::runtime::attach::{AttachRequest, Request};
use crate::runtime::env;
use crate::runtime::logs::Rotation;
use crate::runtime::shim::{self, ShimConfig, ShimIo};

/// `docker exec` options.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command.
    pub cmd: Vec<String>,
    /// `-e NAME=VALUE`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-t`: a pty.
    pub tty: bool,
    /// `-i`: keep stdin open for the attachment (closed when the client closes its input).
    pub open_stdin: bool,
}

/// What an exec printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (126 when the command cannot be run, 127 when it is not found, as Docker).
    pub exit_code: i32,
    /// Its stdout (a TTY's whole output).
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

/// A running exec: its own shim, independent of the engine once started, so a daemon waits
/// for it without holding the engine.
#[derive(Debug)]
pub struct ExecSession {
    /// The exec's ID (what `exec inspect` and `exec resize` name).
    pub id: String,
    /// Its process's PID on the host.
    pub pid: i32,
    /// The attachment (`None` for a detached exec).
    pub stream: Option<UnixStream>,
    state_dir: PathBuf,
    shim_pid: i32,
}

impl ExecSession {
    /// Its exit code once it ended (255 when its shim died without recording one).
    pub async fn wait(&self) -> i32 {
        if let Ok(Some(w)) = ExitWatch::new(self.shim_pid) {
            w.wait().await;
        }
        let code = shim::read_exit(&self.state_dir).map_or(255, |r| r.exit_code);
        let _ = fs::remove_dir_all(&self.state_dir);
        code
    }

    /// Sends `stdin` (then closes it), reads the output to its end and waits: `docker exec`
    /// run to completion.
    pub async fn collect(mut self, stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let mut raw = Vec::new();
        if let Some(s) = self.stream.take() {
            s.set_nonblocking(true)?;
            let s = tokio::net::UnixStream::from_std(s)?;
            let (mut r, mut w) = s.into_split();
            let input = async {
                w.write_all(stdin).await?;
                w.shutdown().await
            };
            let (i, o) = tokio::join!(input, r.read_to_end(&mut raw));
            o?;
            // The process may end without reading its input.
            let _ = i;
        }
        // Framed by the shim (a TTY's output is all stream 1).
        let (stdout, stderr) = berth_api::stream::demux(&raw).map_err(std::io::Error::other)?;
        Ok(ExecOutput {
            exit_code: self.wait().await,
            stdout,
            stderr,
        })
    }
}

/// The runtime's refusal as Docker words it (`exec failed: ...: unknown`, the part clients
/// match on), without the shim's and runtime's prefixes; other errors as they are.
fn runtime_message(full: &str) -> String {
    match full.find("exec failed:") {
        Some(i) => format!("{}: unknown", full[i..].trim_end()),
        None => full.to_string(),
    }
}

/// Docker's exit code for a runtime that could not start the command: 127 not found, 126 not
/// runnable; otherwise the code itself.
pub(super) fn exec_exit_code(code: i32, stderr: &str) -> i32 {
    let refused = stderr.contains("exec failed") || stderr.contains("exec:");
    if !refused {
        return code;
    }
    if stderr.contains("no such file or directory") || stderr.contains("not found") {
        127
    } else if stderr.contains("permission denied") || stderr.contains("is a directory") {
        126
    } else {
        code
    }
}

/// An exec between its planning (under the engine's lock: the container running, its
/// settings) and its run ([`ExecPlan::spawn`], without any lock: the container's spec and
/// `/etc/passwd` read, the shim spawned through the OCI runtime).
#[derive(Debug, Clone)]
pub struct ExecPlan {
    container: String,
    name: String,
    bundle: PathBuf,
    state_dir: PathBuf,
    user: String,
    /// The container's `--group-add` (Docker's exec processes have them too).
    group_add: Vec<String>,
    cwd: String,
    env: Vec<String>,
    opts: ExecOptions,
    exec_id: String,
    runtime: PathBuf,
    runtime_root: PathBuf,
    runtime_args: Vec<String>,
    shim: PathBuf,
}

impl ExecPlan {
    /// The container's ID.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// Runs the exec under its own shim, attached with `attach` before it runs (detached
    /// without). Blocking: the container's files are read (confined to its root, bounded)
    /// and the runtime called. A command the runtime cannot run is [`ContainerError::Exec`]
    /// with Docker's 126 or 127; nothing of the exec is left then.
    pub fn spawn(self, attach: Option<AttachRequest>) -> Result<ExecSession, ContainerError> {
        let name = &self.name;
        let spec = match fs::read(self.bundle.join("config.json")) {
            Ok(b) => b,
            // Its run was undone since the plan: it stopped meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContainerError::Conflict(format!(
                    "Container {name} is not running"
                )));
            }
            Err(e) => return Err(io_err(format!("container {name}: reading its spec"))(e)),
        };
        let config: Value = serde_json::from_slice(&spec)
            .map_err(|e| ContainerError::Invalid(format!("container {name}: its spec: {e}")))?;
        let ids = super::confined::resolve_user(
            &self.bundle.join("rootfs"),
            &self.user,
            &self.group_add,
            name,
        )?;
        let mut process = config["process"].clone();
        process["terminal"] = Value::Bool(self.opts.tty);
        process["args"] = serde_json::json!(self.opts.cmd);
        process["env"] = serde_json::json!(self.env);
        process["cwd"] = serde_json::json!(self.cwd);
        process["user"] =
            serde_json::json!({"uid": ids.uid, "gid": ids.gid, "additionalGids": ids.additional});
        // Outside the bundle: a container's teardown never races an exec writing its exit.
        let state_dir = &self.state_dir;
        fs::create_dir_all(state_dir)
            .map_err(io_err(format!("creating {}", state_dir.display())))?;
        let file = state_dir.join("process.json");
        let written = fs::write(
            &file,
            serde_json::to_vec(&process).expect("json serialises"),
        )
        .map_err(io_err(format!("writing {}", file.display())));
        if let Err(e) = written {
            let _ = fs::remove_dir_all(state_dir);
            return Err(e);
        }
        let cfg = ShimConfig {
            id: self.container.clone(),
            bundle: self.bundle.clone(),
            state_dir: state_dir.clone(),
            runtime: self.runtime.clone(),
            runtime_root: self.runtime_root.clone(),
            runtime_args: self.runtime_args.clone(),
            log_path: None,
            rotation: Rotation::default(),
            io: ShimIo {
                tty: self.opts.tty,
                stdin: self.opts.open_stdin && attach.as_ref().is_some_and(|a| a.stdin),
                stdin_once: true,
                wait_attach: false,
            },
            exec: Some(file),
        };
        match shim::spawn(&self.shim, &cfg, attach.as_ref()) {
            Ok(s) => Ok(ExecSession {
                id: self.exec_id[..12].to_string(),
                pid: s.pid,
                stream: s.attached,
                state_dir: self.state_dir,
                shim_pid: s.shim_pid,
            }),
            Err(e) => {
                let _ = fs::remove_dir_all(state_dir);
                let message = runtime_message(&e.to_string());
                Err(ContainerError::Exec {
                    code: exec_exit_code(126, &message),
                    message,
                })
            }
        }
    }
}

/// Sets the size of the terminal of the shim whose state is in `dir` (a container's bundle
/// or an exec's state directory). Blocking: call it without any lock.
pub fn resize_terminal(dir: &std::path::Path, rows: u16, cols: u16) -> std::io::Result<()> {
    shim::connect(dir, &Request::Resize { rows, cols }).map(drop)
}

impl Engine {
    /// Plans `docker exec` of `opts` in container `what`: it must run, and the command must
    /// be given. Reads nothing of the container's files (that is [`ExecPlan::spawn`]'s).
    pub fn exec_plan(&self, what: &str, opts: &ExecOptions) -> Result<ExecPlan, ContainerError> {
        let id = self.resolve(what)?;
        let c = &self.containers[&id];
        check(Op::Exec, c.state.status, &c.name)?;
        if opts.cmd.is_empty() {
            return Err(ContainerError::Invalid("No exec command specified".into()));
        }
        let mut extra = Vec::new();
        for e in &opts.env {
            if let Some(kv) = berth_api::opts::env::parse_env_arg(e, |_| None)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?
            {
                extra.push(kv);
            }
        }
        let mut env = env::merge(&c.env, &extra, &c.hostname);
        if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let exec_id = berth_common::id::random_id();
        let runtime = self.runtime_to_run(&id)?;
        Ok(ExecPlan {
            name: c.name.clone(),
            bundle: self.bundle(&id),
            state_dir: self.execs_dir(&id).join(&exec_id[..12]),
            user: opts.user.clone().unwrap_or_else(|| c.user.clone()),
            group_add: c.options.group_add.clone(),
            cwd: opts.workdir.clone().unwrap_or_else(|| c.workdir.clone()),
            env,
            opts: opts.clone(),
            exec_id,
            runtime: runtime.binary().to_path_buf(),
            runtime_root: self.cfg.exec_root.join("runtime"),
            runtime_args: runtime.args().to_vec(),
            shim: self.cfg.shim.clone(),
            container: id,
        })
    }

    /// [`Engine::exec_plan`] and [`ExecPlan::spawn`] in a row, for a caller that owns the
    /// engine (the command line, tests); berthd plans under the lock and spawns without it.
    pub fn exec_start(
        &self,
        what: &str,
        opts: &ExecOptions,
        attach: Option<AttachRequest>,
    ) -> Result<ExecSession, ContainerError> {
        self.exec_plan(what, opts)?.spawn(attach)
    }

    /// The state directory of running exec `exec_id` of container `what` (for a resize).
    pub fn exec_dir(&self, what: &str, exec_id: &str) -> Result<PathBuf, ContainerError> {
        let id = self.resolve(what)?;
        let dir = self.execs_dir(&id).join(exec_id);
        if exec_id.len() != 12 || !exec_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ContainerError::NoSuchExec(exec_id.to_string()));
        }
        Ok(dir)
    }

    /// Runs `opts.cmd` in container `what` to completion, `stdin` as its input.
    pub async fn exec(
        &self,
        what: &str,
        opts: ExecOptions,
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, ContainerError> {
        let req = AttachRequest {
            stdin: stdin.is_some(),
            stdout: true,
            stderr: true,
            detach_keys: Vec::new(),
        };
        let opts = ExecOptions {
            open_stdin: stdin.is_some(),
            ..opts
        };
        match self.exec_start(what, &opts, Some(req)) {
            Ok(session) => session
                .collect(stdin.as_deref().unwrap_or_default())
                .await
                .map_err(io_err(format!("exec in container {what}"))),
            Err(ContainerError::Exec { code, message }) => Ok(ExecOutput {
                exit_code: code,
                stdout: Vec::new(),
                stderr: message.into_bytes(),
            }),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_exec_exit_codes() {
        let nf = "runc exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH";
        assert_eq!(exec_exit_code(255, nf), 127);
        let perm = "exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied";
        assert_eq!(exec_exit_code(255, perm), 126);
        assert_eq!(exec_exit_code(3, "some output on stderr"), 3);
        let runc = "exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH";
        assert_eq!(
            runtime_message(&format!("berth-shim for abc: runc exec abc: {runc}\n")),
            format!("{runc}: unknown")
        );
    }
}
