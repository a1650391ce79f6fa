//! `berth-shim`: one small process per container that outlives whoever started it. It creates
//! and starts the container through the OCI runtime, is the subreaper that reaps its init,
//! owns its output (pipes copied into the json-file log), records its exit (`exit.json`,
//! written atomically, OOM kills included) and deletes it from the runtime. The daemon finds
//! everything it needs in the container's state directory: `shim.pid`, `init.pid`,
//! `exit.json`; a daemon that crashed and restarts adopts live shims by those files.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::logs::{JsonFileWriter, Rotation, now_rfc3339_nano};
use super::oci::{OciRuntime, RuncLike, RuntimeError};

/// What a shim is told.
#[derive(Debug, Clone)]
pub struct ShimConfig {
    /// The container ID.
    pub id: String,
    /// The bundle (config.json + rootfs).
    pub bundle: PathBuf,
    /// Where the shim keeps its files (`shim.pid`, `init.pid`, `exit.json`, `shim.log`).
    pub state_dir: PathBuf,
    /// The runtime program.
    pub runtime: PathBuf,
    /// The runtime's `--root`.
    pub runtime_root: PathBuf,
    /// The json-file log.
    pub log_path: PathBuf,
    /// Its rotation.
    pub rotation: Rotation,
}

impl ShimConfig {
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--id".to_string(),
            self.id.clone(),
            "--bundle".into(),
            self.bundle.display().to_string(),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--runtime".into(),
            self.runtime.display().to_string(),
            "--runtime-root".into(),
            self.runtime_root.display().to_string(),
            "--log".into(),
            self.log_path.display().to_string(),
            "--max-file".into(),
            self.rotation.max_file.to_string(),
        ];
        if let Some(s) = self.rotation.max_size {
            a.push("--max-size".into());
            a.push(s.to_string());
        }
        a
    }
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Its exit code (128 + signal when killed by one, as Docker reports).
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
    /// The kernel's OOM killer ended it.
    pub oom_killed: bool,
}

/// Why the shim could not start a container.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The runtime refused.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The shim process itself.
    #[error("berth-shim for {id}: {detail}")]
    Shim {
        /// The container.
        id: String,
        /// What went wrong.
        detail: String,
    },
}

fn shim_err(id: &str, detail: impl std::fmt::Display) -> ShimError {
    ShimError::Shim {
        id: id.to_string(),
        detail: detail.to_string(),
    }
}

/// The exit record in `state_dir`, once the container has ended.
pub fn read_exit(state_dir: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&fs::read(state_dir.join("exit.json")).ok()?).ok()
}

/// Starts a shim for `cfg` from the `berth-shim` binary at `shim`: it detaches (new session,
/// reparented away from the caller), starts the container and answers with the container's
/// init PID, or the runtime's error. Nothing is left behind when it fails.
pub fn spawn(shim: &Path, cfg: &ShimConfig) -> Result<i32, ShimError> {
    fs::create_dir_all(&cfg.state_dir).map_err(|e| shim_err(&cfg.id, e))?;
    let log = fs::File::create(cfg.state_dir.join("shim.log")).map_err(|e| shim_err(&cfg.id, e))?;
    let mut cmd = Command::new(shim);
    cmd.args(cfg.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| shim_err(&cfg.id, format!("{}: {e}", shim.display())))?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| shim_err(&cfg.id, e))?;
    // The first process forks the real shim and exits at once: reap it.
    let _ = child.wait();
    match line.trim_end().split_once(' ') {
        Some(("ok", pid)) => pid
            .parse()
            .map_err(|_| shim_err(&cfg.id, format!("bad answer {line:?}"))),
        Some(("error", msg)) => Err(shim_err(&cfg.id, msg)),
        _ => Err(shim_err(
            &cfg.id,
            format!(
                "exited without an answer: {}",
                fs::read_to_string(cfg.state_dir.join("shim.log"))
                    .unwrap_or_default()
                    .trim()
            ),
        )),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// The shim's body, in the detached process: create, start, answer on `answer`, copy output
/// into the log, reap, record, delete. Returns the exit record.
pub fn run(cfg: &ShimConfig, answer: &mut dyn Write) -> Result<ExitRecord, ShimError> {
    let id = &cfg.id;
    // Until the container runs, every failure is answered to the spawner, which is waiting.
    let fail = |answer: &mut dyn Write, e: ShimError| {
        let _ = writeln!(answer, "error {e}");
        Err(e)
    };
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return fail(answer, shim_err(id, format!("subreaper: {e}")));
    }
    if let Err(e) = fs::write(
        cfg.state_dir.join("shim.pid"),
        std::process::id().to_string(),
    ) {
        return fail(answer, shim_err(id, e));
    }
    let rt = RuncLike::new(&cfg.runtime, &cfg.runtime_root);
    let pipes = nix::unistd::pipe().and_then(|o| nix::unistd::pipe().map(|e| (o, e)));
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => return fail(answer, shim_err(id, e)),
    };
    let pid_file = cfg.state_dir.join("init.pid");
    let started = rt
        .create(
            id,
            &cfg.bundle,
            &pid_file,
            [Stdio::null(), Stdio::from(out_w), Stdio::from(err_w)],
        )
        .and_then(|()| rt.start(id))
        .map_err(ShimError::from)
        .and_then(|()| {
            fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .ok_or_else(|| shim_err(id, "the runtime wrote no init PID"))
        });
    let init = match started {
        Ok(pid) => pid,
        Err(e) => {
            // Nothing stays behind: the runtime removes what it created.
            let _ = rt.delete(id, true);
            return fail(answer, e);
        }
    };
    let _ = writeln!(answer, "ok {init}");
    let _ = answer.flush();

    let log = Arc::new(Mutex::new(
        JsonFileWriter::open(&cfg.log_path, cfg.rotation).map_err(|e| shim_err(id, e))?,
    ));
    let copiers: Vec<_> = [(out_r, "stdout"), (err_r, "stderr")]
        .into_iter()
        .map(|(fd, stream)| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut f = fs::File::from(fd);
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let t = now_rfc3339_nano();
                            let _ = log.lock().unwrap_or_else(|e| e.into_inner()).write(
                                stream,
                                &buf[..n],
                                &t,
                            );
                        }
                    }
                }
            })
        })
        .collect();

    use nix::sys::wait::{WaitStatus, waitpid};
    let exit_code = loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == init => break code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == init => {
                break 128 + sig as i32;
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(shim_err(id, format!("waiting for the container: {e}"))),
        }
    };
    for c in copiers {
        let _ = c.join();
    }
    let cgroups_path = fs::read(cfg.bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(String::from))
        .unwrap_or_default();
    let record = ExitRecord {
        exit_code,
        finished_at: now_rfc3339_nano(),
        oom_killed: !cgroups_path.is_empty()
            && super::cgroup::oom_kills(Path::new("/sys/fs/cgroup"), &cgroups_path) > 0,
    };
    write_atomic(
        &cfg.state_dir.join("exit.json"),
        &serde_json::to_vec(&record).expect("records serialise"),
    )
    .map_err(|e| shim_err(id, e))?;
    let _ = rt.delete(id, true);
    Ok(record)
}

/// Parses the shim's command line (what [`spawn`] passes).
pub fn parse_args(args: &[String]) -> Result<ShimConfig, String> {
    let get = |k: &str| -> Result<String, String> {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .ok_or_else(|| format!("missing {k}"))
    };
    Ok(ShimConfig {
        id: get("--id")?,
        bundle: get("--bundle")?.into(),
        state_dir: get("--state-dir")?.into(),
        runtime: get("--runtime")?.into(),
        runtime_root: get("--runtime-root")?.into(),
        log_path: get("--log")?.into(),
        rotation: Rotation {
            max_size: get("--max-size").ok().and_then(|s| s.parse().ok()),
            max_file: get("--max-file")?
                .parse()
                .map_err(|_| "bad --max-file".to_string())?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_round_trips() {
        let cfg = ShimConfig {
            id: "abc".into(),
            bundle: "/b".into(),
            state_dir: "/s".into(),
            runtime: "/usr/sbin/runc".into(),
            runtime_root: "/r".into(),
            log_path: "/l/abc-json.log".into(),
            rotation: Rotation {
                max_size: Some(10 << 20),
                max_file: 3,
            },
        };
        let back = parse_args(&cfg.args()).unwrap();
        assert_eq!(back.args(), cfg.args());
        assert_eq!(parse_args(&["--id".into()]).unwrap_err(), "missing --id");
    }
}
