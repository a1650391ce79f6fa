//! `berth-shim`: one small process per container that outlives whoever started it. It creates
//! and starts the container through the OCI runtime, is the subreaper that reaps its init,
//! owns its stdio (pipes, or a pty for `-t`) and serves it on `attach.sock` (see
//! [`super::attach`]) while copying the output into the json-file log, records its exit
//! (`exit.json`, written atomically, OOM kills included) and deletes it from the runtime. With
//! `--exec`, the same shim runs one `docker exec` process in a running container instead. The daemon finds
//! everything it needs in the container's state directory: `shim.pid`, `init.pid`,
//! `exit.json`; a daemon that crashed and restarts adopts live shims by those files.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use berth_api::stream::{STDERR, STDOUT, frame_header};

use super::attach::{AttachRequest, DetachMatcher, Request};
use berth_common::time::now_rfc3339_nano;

use super::logs::{JsonFileWriter, Rotation};
use super::oci::{OciRuntime, RuncLike, RuntimeError};

/// How the shim wires the container's stdio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShimIo {
    /// A pty (`-t`): the runtime hands its master over the console socket.
    pub tty: bool,
    /// Keep stdin open (`-i`) for attached clients.
    pub stdin: bool,
    /// Close the container's stdin when the first attached client closes its input.
    pub stdin_once: bool,
    /// Wait (up to 30 s) for the first attach before starting, so it sees all the output.
    pub wait_attach: bool,
}

/// What a shim is told.
#[derive(Debug, Clone)]
pub struct ShimConfig {
    /// The container ID.
    pub id: String,
    /// The bundle (config.json + rootfs).
    pub bundle: PathBuf,
    /// Where the shim keeps its files (`shim.pid`, `init.pid`, `exit.json`, `shim.log`,
    /// `attach.sock`).
    pub state_dir: PathBuf,
    /// The runtime program.
    pub runtime: PathBuf,
    /// The runtime's `--root`.
    pub runtime_root: PathBuf,
    /// Given to the runtime before every subcommand (daemon.json's `runtimeArgs`).
    pub runtime_args: Vec<String>,
    /// The json-file log (`None`: output goes to attached clients only, as an exec's).
    pub log_path: Option<PathBuf>,
    /// Its rotation.
    pub rotation: Rotation,
    /// Stdio.
    pub io: ShimIo,
    /// Run this process spec (`runc exec --process`) in the running container `id` instead
    /// of creating and starting the container.
    pub exec: Option<PathBuf>,
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
            "--max-file".into(),
            self.rotation.max_file.to_string(),
        ];
        if !self.runtime_args.is_empty() {
            // One JSON value: a runtime argument can never pass for one of the shim's flags.
            a.push("--runtime-args".into());
            a.push(serde_json::to_string(&self.runtime_args).expect("strings"));
        }
        if let Some(l) = &self.log_path {
            a.push("--log".into());
            a.push(l.display().to_string());
        }
        if let Some(s) = self.rotation.max_size {
            a.push("--max-size".into());
            a.push(s.to_string());
        }
        if let Some(e) = &self.exec {
            a.push("--exec".into());
            a.push(e.display().to_string());
        }
        for (on, flag) in [
            (self.io.tty, "--tty"),
            (self.io.stdin, "--stdin"),
            (self.io.stdin_once, "--stdin-once"),
            (self.io.wait_attach, "--wait-attach"),
        ] {
            if on {
                a.push(flag.into());
            }
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

/// A shim that started its container (or exec).
#[derive(Debug)]
pub struct Spawned {
    /// The container's init (or the exec'd process) PID.
    pub pid: i32,
    /// The shim's PID.
    pub shim_pid: i32,
    /// The attachment asked for at spawn, joined before the process started.
    pub attached: Option<UnixStream>,
}

/// Connects to the attach socket of the shim in `state_dir` and sends `req`. The path goes
/// through a descriptor of the directory, so a deep state directory never passes the 108
/// bytes a socket address holds.
pub fn connect(state_dir: &Path, req: &Request) -> std::io::Result<UnixStream> {
    use std::os::fd::AsRawFd;
    let dir = fs::File::open(state_dir)?;
    let mut s = UnixStream::connect(format!("/proc/self/fd/{}/attach.sock", dir.as_raw_fd()))?;
    s.write_all(req.line().as_bytes())?;
    Ok(s)
}

/// Starts a shim for `cfg` from the `berth-shim` binary at `shim`: it detaches (new session,
/// reparented away from the caller), starts the container and answers with the container's
/// init PID, or the runtime's error. With `attach` (and `cfg.io.wait_attach`), the attachment
/// is made before the process starts. Nothing is left behind when it fails.
pub fn spawn(
    shim: &Path,
    cfg: &ShimConfig,
    attach: Option<&AttachRequest>,
) -> Result<Spawned, ShimError> {
    fs::create_dir_all(&cfg.state_dir).map_err(|e| shim_err(&cfg.id, e))?;
    let log = fs::File::create(cfg.state_dir.join("shim.log")).map_err(|e| shim_err(&cfg.id, e))?;
    let mut cmd = Command::new(shim);
    let mut cfg = cfg.clone();
    cfg.io.wait_attach = attach.is_some();
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
    let stdout = child.stdout.take().expect("piped");
    // The first process forks the real shim and exits at once: reap it.
    let _ = child.wait();
    let mut answers = BufReader::new(stdout);
    let mut attached = None;
    loop {
        let mut line = String::new();
        answers
            .read_line(&mut line)
            .map_err(|e| shim_err(&cfg.id, e))?;
        match line
            .trim_end()
            .split_once(' ')
            .unwrap_or((line.trim_end(), ""))
        {
            ("attach", _) => {
                let req = attach.cloned().unwrap_or_else(AttachRequest::all);
                attached = Some(
                    connect(&cfg.state_dir, &Request::Attach(req))
                        .map_err(|e| shim_err(&cfg.id, format!("attaching: {e}")))?,
                );
            }
            ("ok", pid) => {
                let pid = pid
                    .parse()
                    .map_err(|_| shim_err(&cfg.id, format!("bad answer {line:?}")))?;
                let shim_pid = fs::read_to_string(cfg.state_dir.join("shim.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                return Ok(Spawned {
                    pid,
                    shim_pid,
                    attached,
                });
            }
            ("error", msg) => return Err(shim_err(&cfg.id, msg)),
            _ => {
                return Err(shim_err(
                    &cfg.id,
                    format!(
                        "exited without an answer: {}",
                        fs::read_to_string(cfg.state_dir.join("shim.log"))
                            .unwrap_or_default()
                            .trim()
                    ),
                ));
            }
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// At most this many clients attach at once; more are refused.
const MAX_CLIENTS: usize = 32;
/// A client that cannot take output for this long is dropped rather than stall the container.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The container's stdin as the hub sees it.
#[derive(Debug)]
enum Input {
    /// Not wired yet (a TTY's master arrives once the runtime made it).
    Pending,
    /// Writes go here.
    Open(fs::File),
    /// Never opened (no `-i`) or closed (`StdinOnce`).
    Closed,
}

#[derive(Debug)]
struct Client {
    serial: u64,
    stream: UnixStream,
    stdout: bool,
    stderr: bool,
}

/// The shim's stdio hub: the container's output goes to the log and to every attached client;
/// clients' input goes to the container's stdin.
#[derive(Debug)]
struct Hub {
    io: ShimIo,
    log: Option<Mutex<JsonFileWriter>>,
    clients: Mutex<Vec<Client>>,
    serial: std::sync::atomic::AtomicU64,
    input: Mutex<Input>,
    input_ready: Condvar,
    master: Mutex<Option<fs::File>>,
    first_attach: Mutex<Option<mpsc::Sender<()>>>,
}

impl Hub {
    fn output(&self, stream: u8, bytes: &[u8]) {
        if let Some(log) = &self.log {
            let name = if stream == STDERR { "stderr" } else { "stdout" };
            let t = now_rfc3339_nano();
            let _ = log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write(name, bytes, &t);
        }
        let header = frame_header(stream, bytes.len());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain_mut(|c| {
            let wanted = if stream == STDERR { c.stderr } else { c.stdout };
            let keep = !wanted
                || (c.stream.write_all(&header).is_ok() && c.stream.write_all(bytes).is_ok());
            if !keep {
                // A client that cannot keep up is ended, not left with a broken frame.
                let _ = c.stream.shutdown(Shutdown::Both);
            }
            keep
        });
    }

    fn set_input(&self, input: Input) {
        *self.input.lock().unwrap_or_else(|e| e.into_inner()) = input;
        self.input_ready.notify_all();
    }

    /// The container's stdin once it is wired (not `Pending`).
    fn wired_input(&self) -> std::sync::MutexGuard<'_, Input> {
        let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        while matches!(*input, Input::Pending) {
            input = self
                .input_ready
                .wait(input)
                .unwrap_or_else(|e| e.into_inner());
        }
        input
    }

    /// Writes a client's input to the container's stdin, waiting until it is wired.
    fn write_input(&self, bytes: &[u8]) {
        let mut input = self.wired_input();
        if let Input::Open(f) = &mut *input
            && f.write_all(bytes).is_err()
        {
            *input = Input::Closed;
        }
    }

    fn drop_client(&self, serial: u64) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|c| {
            if c.serial == serial {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
            c.serial != serial
        });
    }

    /// Ends every attachment (the process has exited).
    fn close_clients(&self) {
        for c in self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }

    fn serve(self: Arc<Self>, listener: UnixListener) {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let hub = self.clone();
            std::thread::spawn(move || hub.handle(conn));
        }
    }

    fn handle(self: Arc<Self>, mut conn: UnixStream) {
        // The request line, byte by byte so no input after it is consumed.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.len() < 256 {
            match conn.read(&mut b) {
                Ok(1) if b[0] == b'\n' => break,
                Ok(1) => line.push(b[0]),
                _ => return,
            }
        }
        let _ = conn.set_read_timeout(None);
        let req = match Request::parse(&String::from_utf8_lossy(&line)) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(conn, "{e}");
                return;
            }
        };
        let a = match req {
            Request::Resize { rows, cols } => {
                if let Some(m) = &*self.master.lock().unwrap_or_else(|e| e.into_inner()) {
                    let _ = super::console::set_size(m.as_fd(), rows, cols);
                }
                return;
            }
            Request::Attach(a) => a,
        };
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            if clients.len() >= MAX_CLIENTS {
                clients.retain(|c| !hung_up(&c.stream));
            }
            if clients.len() >= MAX_CLIENTS {
                let _ = writeln!(conn, "too many attached clients (at most {MAX_CLIENTS})");
                return;
            }
            let Ok(out) = conn.try_clone() else { return };
            let _ = out.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
            clients.push(Client {
                serial,
                stream: out,
                stdout: a.stdout,
                stderr: a.stderr && !self.io.tty,
            });
        }
        if let Some(tx) = self
            .first_attach
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = tx.send(());
        }
        if !a.stdin {
            return;
        }
        // As Docker, only a TTY has detach keys; other input passes as it is.
        let mut matcher = DetachMatcher::new(if self.io.tty {
            a.detach_keys
        } else {
            Vec::new()
        });
        let mut buf = vec![0u8; 16 * 1024];
        let mut pass = Vec::with_capacity(buf.len());
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => {
                    // The client closed its input.
                    pass.clear();
                    matcher.finish(&mut pass);
                    if !pass.is_empty() {
                        self.write_input(&pass);
                    }
                    if self.io.stdin_once {
                        let mut input = self.wired_input();
                        if matches!(*input, Input::Open(_)) && !self.io.tty {
                            *input = Input::Closed;
                        }
                    }
                    return;
                }
                Ok(n) => {
                    pass.clear();
                    let detached = matcher.feed(&buf[..n], &mut pass);
                    if !pass.is_empty() {
                        self.write_input(&pass);
                    }
                    if detached {
                        self.drop_client(serial);
                        return;
                    }
                }
            }
        }
    }
}

/// Whether the peer of `s` has gone entirely.
fn hung_up(s: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    // POLLHUP: closed both ways (a client that only closed its input still reads output).
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

fn spawn_copier(hub: Arc<Hub>, fd: OwnedFd, stream: u8, done: mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut f = fs::File::from(fd);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hub.output(stream, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A pty's master reads EIO once its last slave closed.
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
}

/// The shim's body, in the detached process: create, start, answer on `answer`, copy output
/// into the log and to attached clients, reap, record, delete. Returns the exit record.
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
    let log = match &cfg.log_path {
        Some(p) => match JsonFileWriter::open(p, cfg.rotation) {
            Ok(w) => Some(Mutex::new(w)),
            Err(e) => return fail(answer, shim_err(id, format!("{}: {e}", p.display()))),
        },
        None => None,
    };
    let (first_tx, first_rx) = mpsc::channel();
    let hub = Arc::new(Hub {
        io: cfg.io,
        log,
        clients: Mutex::new(Vec::new()),
        serial: std::sync::atomic::AtomicU64::new(0),
        input: Mutex::new(if cfg.io.stdin {
            Input::Pending
        } else {
            Input::Closed
        }),
        input_ready: Condvar::new(),
        master: Mutex::new(None),
        first_attach: Mutex::new(Some(first_tx)),
    });
    // Sockets are bound by relative names in the state directory (socket addresses hold 108
    // bytes; the directory may be deeper), and the runtime, a child, finds the console there.
    if let Err(e) = std::env::set_current_dir(&cfg.state_dir) {
        return fail(
            answer,
            shim_err(id, format!("{}: {e}", cfg.state_dir.display())),
        );
    }
    let sock = PathBuf::from("attach.sock");
    let _ = fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => return fail(answer, shim_err(id, format!("{}: {e}", sock.display()))),
    };
    std::thread::spawn({
        let hub = hub.clone();
        move || hub.serve(listener)
    });
    if cfg.io.wait_attach {
        let _ = writeln!(answer, "attach");
        let _ = answer.flush();
        if first_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            return fail(answer, shim_err(id, "nobody attached within 30 s"));
        }
    }

    let rt = RuncLike::new(&cfg.runtime, &cfg.runtime_root)
        .with_args(cfg.runtime_args.clone())
        .with_log(&cfg.state_dir.join("runtime.log"));
    let pid_file = cfg.state_dir.join("init.pid");
    let (done_tx, done_rx) = mpsc::channel();
    let mut copiers = 0;
    let console_path = PathBuf::from("console.sock");
    let started = if cfg.io.tty {
        let _ = fs::remove_file(&console_path);
        let console = UnixListener::bind(&console_path).map_err(|e| shim_err(id, e));
        console.and_then(|console| {
            let launched = match &cfg.exec {
                Some(process) => rt.exec_detached(
                    id,
                    process,
                    &pid_file,
                    Some(&console_path),
                    [Stdio::null(), Stdio::null(), Stdio::null()],
                ),
                None => rt.create(
                    id,
                    &cfg.bundle,
                    &pid_file,
                    Some(&console_path),
                    [Stdio::null(), Stdio::null(), Stdio::null()],
                ),
            };
            launched.map_err(ShimError::from)?;
            let master = super::console::receive_master(&console, Duration::from_secs(10))
                .map_err(|e| shim_err(id, format!("the container's terminal: {e}")))?;
            let master = fs::File::from(master);
            let writer = master.try_clone().map_err(|e| shim_err(id, e))?;
            let reader = master.try_clone().map_err(|e| shim_err(id, e))?;
            *hub.master.lock().unwrap_or_else(|e| e.into_inner()) = Some(master);
            if cfg.io.stdin {
                hub.set_input(Input::Open(writer));
            }
            spawn_copier(hub.clone(), OwnedFd::from(reader), STDOUT, done_tx.clone());
            copiers += 1;
            Ok(())
        })
    } else {
        let pipes = (|| {
            // Close-on-exec: the runtime gets only what is dup'ed onto its 0, 1 and 2.
            let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
            let (out_r, out_w) = nix::unistd::pipe2(cloexec)?;
            let (err_r, err_w) = nix::unistd::pipe2(cloexec)?;
            let stdin = if cfg.io.stdin {
                let (in_r, in_w) = nix::unistd::pipe2(cloexec)?;
                Some((in_r, in_w))
            } else {
                None
            };
            Ok::<_, nix::errno::Errno>((out_r, out_w, err_r, err_w, stdin))
        })();
        pipes
            .map_err(|e| shim_err(id, e))
            .and_then(|(out_r, out_w, err_r, err_w, stdin)| {
                let (stdin_for_runtime, stdin_writer) = match stdin {
                    Some((r, w)) => (Stdio::from(r), Some(w)),
                    None => (Stdio::null(), None),
                };
                let stdio = [stdin_for_runtime, Stdio::from(out_w), Stdio::from(err_w)];
                match &cfg.exec {
                    Some(process) => rt.exec_detached(id, process, &pid_file, None, stdio),
                    None => rt.create(id, &cfg.bundle, &pid_file, None, stdio),
                }
                .map_err(ShimError::from)?;
                if let Some(w) = stdin_writer {
                    hub.set_input(Input::Open(fs::File::from(w)));
                }
                spawn_copier(hub.clone(), out_r, STDOUT, done_tx.clone());
                spawn_copier(hub.clone(), err_r, STDERR, done_tx.clone());
                copiers += 2;
                Ok(())
            })
    };
    let _ = fs::remove_file(&console_path);
    let started = started
        .and_then(|()| match cfg.exec {
            Some(_) => Ok(()),
            None => rt.start(id).map_err(ShimError::from),
        })
        .and_then(|()| {
            fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .ok_or_else(|| shim_err(id, "the runtime wrote no PID"))
        });
    let init = match started {
        Ok(pid) => pid,
        Err(e) => {
            // Nothing stays behind: the runtime removes what it created.
            if cfg.exec.is_none() {
                let _ = rt.delete(id, true);
            }
            let _ = fs::remove_file(&sock);
            return fail(answer, e);
        }
    };
    let _ = writeln!(answer, "ok {init}");
    let _ = answer.flush();

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
    // The output drains: a container's pipes close when its PID namespace ends; an exec's
    // background child may hold them open, so an exec waits only briefly.
    let drain = if cfg.exec.is_some() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(60)
    };
    let deadline = std::time::Instant::now() + drain;
    for _ in 0..copiers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let cgroups_path = if cfg.exec.is_none() {
        fs::read(cfg.bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(String::from))
            .unwrap_or_default()
    } else {
        String::new()
    };
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
    let _ = fs::remove_file(&sock);
    hub.close_clients();
    if cfg.exec.is_none() {
        let _ = rt.delete(id, true);
    }
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
    let flag = |k: &str| args.iter().any(|a| a == k);
    Ok(ShimConfig {
        id: get("--id")?,
        bundle: get("--bundle")?.into(),
        state_dir: get("--state-dir")?.into(),
        runtime: get("--runtime")?.into(),
        runtime_root: get("--runtime-root")?.into(),
        runtime_args: match get("--runtime-args") {
            Ok(j) => serde_json::from_str(&j).map_err(|e| format!("bad --runtime-args: {e}"))?,
            Err(_) => Vec::new(),
        },
        log_path: get("--log").ok().map(PathBuf::from),
        rotation: Rotation {
            max_size: get("--max-size").ok().and_then(|s| s.parse().ok()),
            max_file: get("--max-file")?
                .parse()
                .map_err(|_| "bad --max-file".to_string())?,
        },
        io: ShimIo {
            tty: flag("--tty"),
            stdin: flag("--stdin"),
            stdin_once: flag("--stdin-once"),
            wait_attach: flag("--wait-attach"),
        },
        exec: get("--exec").ok().map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_round_trips() {
        let mut cfg = ShimConfig {
            id: "abc".into(),
            bundle: "/b".into(),
            state_dir: "/s".into(),
            runtime: "/usr/sbin/runc".into(),
            runtime_root: "/r".into(),
            runtime_args: vec!["--log".into(), "--debug".into()],
            log_path: Some("/l/abc-json.log".into()),
            rotation: Rotation {
                max_size: Some(10 << 20),
                max_file: 3,
            },
            io: ShimIo::default(),
            exec: None,
        };
        let back = parse_args(&cfg.args()).unwrap();
        assert_eq!(back.args(), cfg.args());
        cfg.log_path = None;
        cfg.exec = Some("/s/exec.json".into());
        cfg.io = ShimIo {
            tty: true,
            stdin: true,
            stdin_once: true,
            wait_attach: true,
        };
        let back = parse_args(&cfg.args()).unwrap();
        assert_eq!(back.args(), cfg.args());
        assert_eq!(back.io, cfg.io);
        assert_eq!(back.log_path, None);
        assert_eq!(back.runtime_args, ["--log", "--debug"]);
        assert_eq!(parse_args(&["--id".into()]).unwrap_err(), "missing --id");
    }
}
