//! `docker exec`: a new process in a running container, through the OCI runtime's `exec`, with
//! the container's own process settings (capabilities, rlimits) and the caller's command,
//! environment, working directory and user.

use std::fs;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::engine::Engine;
use super::state::{Op, check};
use super::{ContainerError, io_err};
use crate::runtime::{env, user};

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
    /// Bytes for its stdin (`-i`); closed after.
    pub stdin: Option<Vec<u8>>,
}

/// What an exec printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (126 when the command cannot be run, 127 when it is not found, as Docker).
    pub exit_code: i32,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
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

impl Engine {
    /// Runs `opts.cmd` in container `what` and waits for it.
    pub async fn exec(
        &mut self,
        what: &str,
        opts: ExecOptions,
    ) -> Result<ExecOutput, ContainerError> {
        let id = self.resolve(what)?;
        let c = self.containers[&id].clone();
        check(Op::Exec, c.state.status, &c.name)?;
        if opts.cmd.is_empty() {
            return Err(ContainerError::Invalid("exec: no command given".into()));
        }
        let bundle = self.bundle(&id);
        let config: Value = serde_json::from_slice(
            &fs::read(bundle.join("config.json"))
                .map_err(io_err(format!("container {}: reading its spec", c.name)))?,
        )
        .map_err(|e| ContainerError::Invalid(format!("container {}: its spec: {e}", c.name)))?;
        let rootfs = bundle.join("rootfs");
        let read = |p: &str| {
            super::mounts::inside(&rootfs, p)
                .and_then(|f| fs::read_to_string(f).ok())
                .unwrap_or_default()
        };
        let ids = user::resolve(
            opts.user.as_deref().unwrap_or(&c.user),
            &read("etc/passwd"),
            &read("etc/group"),
        )
        .map_err(|e| ContainerError::Invalid(format!("container {}: {e}", c.name)))?;
        let mut extra = Vec::new();
        for e in &opts.env {
            if let Some(kv) = env::parse_env_arg(e, |_| None)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?
            {
                extra.push(kv);
            }
        }
        let merged = env::merge(&c.env, &extra, &c.hostname);
        let mut process = config["process"].clone();
        process["terminal"] = Value::Bool(false);
        process["args"] = serde_json::json!(opts.cmd);
        process["env"] = serde_json::json!(merged);
        process["cwd"] = serde_json::json!(opts.workdir.as_deref().unwrap_or(&c.workdir));
        process["user"] =
            serde_json::json!({"uid": ids.uid, "gid": ids.gid, "additionalGids": ids.additional});
        let file = bundle.join(format!(
            "exec-{}.json",
            &netcore::network::random_id()[..12]
        ));
        fs::write(
            &file,
            serde_json::to_vec(&process).expect("json serialises"),
        )
        .map_err(io_err(format!("writing {}", file.display())))?;
        let mut cmd = tokio::process::Command::new(self.runtime.binary());
        cmd.arg("--root")
            .arg(self.cfg.exec_root.join("runtime"))
            .arg("exec")
            .arg("--process")
            .arg(&file)
            .arg(&id)
            .stdin(if opts.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let run = async {
            let mut child = cmd.spawn()?;
            if let (Some(input), Some(mut w)) = (opts.stdin.as_ref(), child.stdin.take()) {
                w.write_all(input).await?;
                drop(w);
            }
            child.wait_with_output().await
        };
        let out = run.await;
        let _ = fs::remove_file(&file);
        let out = out.map_err(io_err(format!("exec in container {}", c.name)))?;
        let code = out.status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + out.status.signal().unwrap_or(0)
        });
        let stderr_text = String::from_utf8_lossy(&out.stderr);
        Ok(ExecOutput {
            exit_code: exec_exit_code(code, &stderr_text),
            stdout: out.stdout,
            stderr: out.stderr,
        })
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
    }
}
