//! Container commands: run, create, start, stop, kill, restart, pause, unpause, rm, ps, logs,
//! exec, attach, inspect, rename, wait, top, port.

use std::time::Duration;

use anyhow::Context;
use berth_cli::client::{Client, ClientError, empty, enc, query};
use berth_cli::output::{self, Format};
use berth_cli::rows;
use berth_cli::run_args::{ContainerArgs, create_body};
use berth_cli::stream::{self, RawTerminal};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::{filters, for_each, now};
use crate::Exit;

/// `run` and `create` (they disable `-h` for help: it is `--hostname`, as in Docker).
#[derive(Subcommand, Debug)]
pub enum RunCmd {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
}

/// `run`'s flags.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process (non-TTY)
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    pub args: ContainerArgs,
    /// The image
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `create`'s flags.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    args: ContainerArgs,
    /// The image
    image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Names or IDs.
#[derive(Args, Debug)]
pub struct Names {
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// The other container commands.
#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// Start one or more stopped containers
    Start {
        /// Attach STDOUT/STDERR and forward signals
        #[arg(short, long)]
        attach: bool,
        /// Attach container's STDIN
        #[arg(short, long)]
        interactive: bool,
        #[command(flatten)]
        names: Names,
    },
    /// Stop one or more running containers
    Stop {
        /// Seconds to wait before killing the container
        #[arg(short, long, alias = "timeout", allow_hyphen_values = true)]
        time: Option<i64>,
        #[command(flatten)]
        names: Names,
    },
    /// Restart one or more containers
    Restart {
        /// Seconds to wait before killing the container
        #[arg(short, long, alias = "timeout", allow_hyphen_values = true)]
        time: Option<i64>,
        #[command(flatten)]
        names: Names,
    },
    /// Kill one or more running containers
    Kill {
        /// Signal to send to the container
        #[arg(short, long)]
        signal: Option<String>,
        #[command(flatten)]
        names: Names,
    },
    /// Pause all processes within one or more containers
    Pause(Names),
    /// Update configuration of one or more containers
    Update {
        #[command(flatten)]
        args: berth_cli::update_args::UpdateArgs,
        #[command(flatten)]
        names: Names,
    },
    /// Unpause all processes within one or more containers
    Unpause(Names),
    /// Remove one or more containers
    Rm {
        /// Force the removal of a running container (uses SIGKILL)
        #[arg(short, long)]
        force: bool,
        /// Remove anonymous volumes associated with the container
        #[arg(short, long)]
        volumes: bool,
        /// Remove the specified link
        #[arg(short, long)]
        link: bool,
        #[command(flatten)]
        names: Names,
    },
    /// List containers
    #[command(alias = "ls")]
    Ps {
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Only display container IDs
        #[arg(short, long)]
        quiet: bool,
        /// Filter output based on conditions provided
        #[arg(short, long = "filter")]
        filter: Vec<String>,
        /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
        #[arg(long)]
        format: Option<String>,
        /// Show n last created containers (includes all states)
        #[arg(short = 'n', long, allow_hyphen_values = true)]
        last: Option<i64>,
        /// Show the latest created container (includes all states)
        #[arg(short, long)]
        latest: bool,
        /// Don't truncate output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Display total file sizes
        #[arg(short, long)]
        size: bool,
    },
    /// Fetch the logs of a container
    Logs {
        /// Follow log output
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end of the logs
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show timestamps
        #[arg(short, long)]
        timestamps: bool,
        /// Show logs since timestamp or relative (e.g. 42m)
        #[arg(long)]
        since: Option<String>,
        /// Show logs before a timestamp or relative (e.g. 42m)
        #[arg(long)]
        until: Option<String>,
        /// The container
        container: String,
    },
    /// Execute a command in a running container
    Exec {
        /// Detached mode: run command in the background
        #[arg(short, long)]
        detach: bool,
        /// Keep STDIN open even if not attached
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a pseudo-TTY
        #[arg(short, long)]
        tty: bool,
        /// Set environment variables
        #[arg(short, long)]
        env: Vec<String>,
        /// Username or UID
        #[arg(short, long)]
        user: Option<String>,
        /// Working directory inside the container
        #[arg(short, long)]
        workdir: Option<String>,
        /// Override the key sequence for detaching a container
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        /// The container
        container: String,
        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Attach local standard input, output, and error streams to a running container
    Attach {
        /// Do not attach STDIN
        #[arg(long = "no-stdin")]
        no_stdin: bool,
        /// Override the key sequence for detaching a container
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        /// The container
        container: String,
    },
    /// Return low-level information on Docker objects
    Inspect {
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
        /// Return JSON for specified type (container, image, network, volume)
        #[arg(long = "type")]
        kind: Option<String>,
        /// Names or IDs
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Rename a container
    Rename {
        /// The container
        container: String,
        /// Its new name
        new_name: String,
    },
    /// Block until one or more containers stop, then print their exit codes
    Wait(Names),
    /// Display the running processes of a container
    Top {
        /// The container
        container: String,
        /// ps options
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Display a live stream of container(s) resource usage statistics
    Stats {
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Disable streaming stats and only pull the first result
        #[arg(long = "no-stream")]
        no_stream: bool,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
        /// Containers (default: all running)
        containers: Vec<String>,
    },
    /// List port mappings or a specific mapping for the container
    Port {
        /// The container
        container: String,
        /// PRIVATE_PORT[/PROTO]
        port: Option<String>,
    },
    /// Copy files/folders between a container and the local filesystem
    Cp(super::cp::CpArgs),
}

fn status_exit(code: i32, e: impl std::fmt::Display) -> anyhow::Error {
    Exit {
        code,
        message: format!("berth: {e}"),
    }
    .into()
}

/// 126 or 127 for a start error that says the command cannot be invoked or found (the docker
/// CLI reads the same words), 125 otherwise.
fn start_error_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("not found in $path")
    {
        127
    } else if m.contains("permission denied")
        || m.contains("cannot be invoked")
        || m.contains("is a directory")
    {
        126
    } else {
        125
    }
}

/// `run` and `create`.
pub async fn run_cmd(c: &Client, cmd: RunCmd) -> anyhow::Result<i32> {
    match cmd {
        RunCmd::Create(a) => {
            let id = create(c, &a.args, &a.image, &a.command).await?;
            println!("{id}");
            Ok(0)
        }
        RunCmd::Run(r) => run(c, r).await,
    }
}

/// Creates the container, pulling its image first when it is missing (`--pull missing`) or
/// always; the ID.
async fn create(
    c: &Client,
    args: &ContainerArgs,
    image: &str,
    cmd: &[String],
) -> anyhow::Result<String> {
    let mut env_files = Vec::new();
    for f in &args.env_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| status_exit(125, format!("open {f}: {e}")))?;
        env_files.push((f.clone(), text));
    }
    let body = create_body(args, image, cmd, |n| std::env::var(n).ok(), &env_files)
        .map_err(|e| status_exit(125, e))?;
    let body = serde_json::to_value(&body)?;
    if !matches!(args.pull.as_str(), "missing" | "always" | "never") {
        return Err(status_exit(
            125,
            format!(
                "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
                args.pull
            ),
        ));
    }
    if args.pull == "always" {
        super::image::pull(c, image, true, false)
            .await
            .map_err(|e| status_exit(125, e))?;
    }
    let path = format!(
        "/containers/create{}",
        query(args.name.iter().map(|n| ("name", n.clone())))
    );
    let created: Value = match c.json(Method::POST, &path, Some(&body)).await {
        Err(ClientError::Daemon {
            status: 404,
            message,
        }) if message.contains("No such image") && args.pull == "missing" => {
            eprintln!("Unable to find image '{image}' locally");
            super::image::pull(c, image, true, false)
                .await
                .map_err(|e| status_exit(125, e))?;
            c.json(Method::POST, &path, Some(&body))
                .await
                .map_err(|e| status_exit(125, e))?
        }
        r => r.map_err(|e| status_exit(125, e))?,
    };
    for w in created["Warnings"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    created["Id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| status_exit(125, "berthd's create answer has no Id"))
}

async fn run(c: &Client, mut r: RunArgs) -> anyhow::Result<i32> {
    super::image::check_ref(&r.image).map_err(|e| status_exit(125, e))?;
    r.args.detached = r.detach;
    let id = create(c, &r.args, &r.image, &r.command).await?;
    let start = format!("/containers/{id}/start");
    if r.detach {
        if let Err(e) = c.call(Method::POST, &start, None).await {
            return Err(status_exit(start_error_code(&e.to_string()), e));
        }
        println!("{id}");
        return Ok(0);
    }
    let tty = r.args.tty;
    let stdin = r.args.interactive;
    let io = attach_streams(c, &id, stdin, r.detach_keys.clone())
        .await
        .map_err(|e| status_exit(125, e))?;
    // Waiting starts before the start, so a quick exit is not missed.
    let condition = if r.args.rm { "removed" } else { "next-exit" };
    let waiter = waiter(c, &id, condition)
        .await
        .map_err(|e| status_exit(125, e))?;
    if let Err(e) = c.call(Method::POST, &start, None).await {
        waiter.abort();
        return Err(status_exit(start_error_code(&e.to_string()), e));
    }
    if r.sig_proxy && !tty {
        proxy_signals(c, &id);
    }
    session(c, io, tty, stdin, Resize::Container(id.clone())).await?;
    wait_code(c, &id, waiter).await
}

/// Forwards the signals a user sends berth (ctrl-c, kill) to the container, as the docker
/// CLI's `--sig-proxy` does; with a TTY the terminal carries them instead.
fn proxy_signals(c: &Client, id: &str) {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, num) in [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
        (SignalKind::user_defined1(), 10),
        (SignalKind::user_defined2(), 12),
    ] {
        let Ok(mut sig) = signal(kind) else {
            continue;
        };
        let c = c.clone();
        let path = format!("/containers/{id}/kill?signal={num}");
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                // A container already gone has nothing to receive it.
                let _ = c.call(Method::POST, &path, None).await;
            }
        });
    }
}

/// Attaches to `id`'s output (and its stdin when `stdin`), upgraded to a raw stream; the
/// attachment `run`, `start -a` and `attach` share.
async fn attach_streams(
    c: &Client,
    id: &str,
    stdin: bool,
    detach_keys: Option<String>,
) -> Result<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>, ClientError> {
    let mut q = vec![
        ("stream", "1".to_string()),
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
    ];
    if stdin {
        q.push(("stdin", "1".into()));
    }
    q.extend(detach_keys.map(|k| ("detachKeys", k)));
    c.upgrade(&format!("/containers/{id}/attach{}", query(q)), None)
        .await
}

type Waiter = tokio::task::JoinHandle<Result<Value, ClientError>>;

/// Sends `wait?condition=...` and returns once berthd has taken it (its headers come at once),
/// so a start sent after it cannot exit unseen; the task reads the answer.
async fn waiter(c: &Client, id: &str, condition: &str) -> Result<Waiter, ClientError> {
    let path = format!("/containers/{id}/wait?condition={condition}");
    let mut s = c.stream(Method::POST, &path, empty(), &[]).await?;
    Ok(tokio::spawn(async move {
        let mut body = Vec::new();
        while let Some(chunk) = s.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            path,
            message: e.to_string(),
        })
    }))
}

/// The exit code once the attached stream has ended: the waiter's, or 0 when the container is
/// still running (the user detached).
async fn wait_code(c: &Client, id: &str, mut waiter: Waiter) -> anyhow::Result<i32> {
    // Detached (ctrl-p ctrl-q): the container still runs; say so without a delay.
    let mut grace = Duration::from_millis(200);
    loop {
        match tokio::time::timeout(grace, &mut waiter).await {
            Ok(r) => {
                let v = r.context("waiting for the container")??;
                if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
                    return Err(status_exit(125, m));
                }
                return Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32);
            }
            Err(_) => {
                grace = Duration::from_secs(2);
                match c.get::<Value>(&format!("/containers/{id}/json")).await {
                    Ok(i) if i["State"]["Running"].as_bool() == Some(true) => {
                        waiter.abort();
                        return Ok(0);
                    }
                    // Gone (--rm) or exited: the waiter has the code; keep waiting for it.
                    Ok(_) => {}
                    Err(e) if e.status() == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// What a resize goes to.
enum Resize {
    Container(String),
    Exec(String),
}

/// Pumps an attached session: output to stdout/stderr, stdin in (when `stdin`), the terminal
/// raw and its size followed (when `tty`). Ends when berthd ends the output.
async fn session(
    c: &Client,
    io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    tty: bool,
    stdin: bool,
    resize: Resize,
) -> anyhow::Result<()> {
    let (rd, wr) = tokio::io::split(io);
    let _raw = (tty && stdin && stream::stdin_is_terminal())
        .then(RawTerminal::stdin)
        .flatten();
    if stdin {
        tokio::spawn(async move {
            // Ends with the input or the connection; either way the output says the rest.
            let _ = stream::input(wr).await;
        });
    } else {
        drop(wr);
    }
    if tty {
        let c = c.clone();
        let path = match &resize {
            Resize::Container(id) => format!("/containers/{id}/resize"),
            Resize::Exec(id) => format!("/exec/{id}/resize"),
        };
        tokio::spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            loop {
                if let Some((h, w)) =
                    stream::terminal_size(std::os::fd::AsFd::as_fd(&std::io::stdout()))
                {
                    let _ = c
                        .call(Method::POST, &format!("{path}?h={h}&w={w}"), None)
                        .await;
                }
                if winch.recv().await.is_none() {
                    return;
                }
            }
        });
    }
    stream::output(rd, tty).await
}

/// The other container commands.
pub async fn container(c: &Client, cmd: ContainerCmd) -> anyhow::Result<i32> {
    match cmd {
        ContainerCmd::Start {
            attach,
            interactive,
            names,
        } => {
            if attach || interactive {
                let [name] = names.containers.as_slice() else {
                    return Err(status_exit(
                        1,
                        "you cannot start and attach multiple containers at once",
                    ));
                };
                let i: Value = c.get(&format!("/containers/{}/json", enc(name))).await?;
                let id = i["Id"].as_str().unwrap_or(name).to_string();
                let tty = i["Config"]["Tty"].as_bool().unwrap_or(false);
                let stdin = interactive && i["Config"]["OpenStdin"].as_bool().unwrap_or(false);
                let io = attach_streams(c, &id, stdin, None).await?;
                let waiter = waiter(c, &id, "next-exit").await?;
                c.call(Method::POST, &format!("/containers/{id}/start"), None)
                    .await?;
                session(c, io, tty, stdin, Resize::Container(id.clone())).await?;
                return wait_code(c, &id, waiter).await;
            }
            each_container(c, Method::POST, &names, "/start", "").await
        }
        ContainerCmd::Stop { time, names } => {
            let q = query(time.map(|t| ("t", t.to_string())));
            each_container(c, Method::POST, &names, "/stop", &q).await
        }
        ContainerCmd::Restart { time, names } => {
            let q = query(time.map(|t| ("t", t.to_string())));
            each_container(c, Method::POST, &names, "/restart", &q).await
        }
        ContainerCmd::Kill { signal, names } => {
            let q = query(signal.map(|s| ("signal", s)));
            each_container(c, Method::POST, &names, "/kill", &q).await
        }
        ContainerCmd::Pause(names) => each_container(c, Method::POST, &names, "/pause", "").await,
        ContainerCmd::Update { args, names } => {
            if !args.any() {
                return Err(status_exit(
                    1,
                    "you must provide one or more flags when using this command",
                ));
            }
            let body =
                berth_cli::update_args::update_body(&args).map_err(|e| status_exit(125, e))?;
            for_each(&names.containers, |n| {
                let body = body.clone();
                async move {
                    let path = format!("/containers/{}/update", enc(&n));
                    c.call(Method::POST, &path, Some(&body)).await?;
                    Ok(Some(n))
                }
            })
            .await
        }
        ContainerCmd::Unpause(names) => {
            each_container(c, Method::POST, &names, "/unpause", "").await
        }
        ContainerCmd::Rm {
            force,
            volumes,
            link,
            mut names,
        } => {
            // As the docker CLI: `/web/db` is sent as `web/db`.
            for n in &mut names.containers {
                *n = n.trim_matches('/').to_string();
            }
            let q = format!("?force={force}&v={volumes}&link={link}");
            each_container(c, Method::DELETE, &names, "", &q).await
        }
        ContainerCmd::Ps {
            all,
            quiet,
            filter,
            format,
            last,
            latest,
            no_trunc,
            size: _,
        } => {
            let mut q = vec![("all", (all || latest || last.is_some()).to_string())];
            if let Some(f) = filters(&filter)? {
                q.push(("filters", f));
            }
            if let Some(n) = last.or(latest.then_some(1)) {
                q.push(("limit", n.to_string()));
            }
            let list: Vec<Value> = c.get(&format!("/containers/json{}", query(q))).await?;
            let now = now();
            let rows: Vec<Value> = list
                .iter()
                .map(|i| rows::ps_row(i, now, no_trunc))
                .collect();
            super::print_rows(
                &rows,
                quiet,
                format.as_deref(),
                rows::PS_TABLE,
                rows::PS_HEADERS,
            )
        }
        ContainerCmd::Logs {
            follow,
            tail,
            timestamps,
            since,
            until,
            container,
        } => {
            let i: Value = c
                .get(&format!("/containers/{}/json", enc(&container)))
                .await?;
            let tty = i["Config"]["Tty"].as_bool().unwrap_or(false);
            let mut q = vec![
                ("stdout", "1".to_string()),
                ("stderr", "1".to_string()),
                ("follow", follow.to_string()),
                ("tail", tail),
                ("timestamps", timestamps.to_string()),
            ];
            for (k, v) in [("since", since), ("until", until)] {
                if let Some(v) = v {
                    let t = berth_common::time::docker_timestamp_from_now(&v)
                        .map_err(|e| status_exit(1, e.to_string()))?;
                    q.push((k, t));
                }
            }
            let path = format!("/containers/{}/logs{}", enc(&container), query(q));
            let mut s = c
                .stream(Method::GET, &path, berth_cli::client::empty(), &[])
                .await?;
            let mut demux = stream::Demux::default();
            while let Some(chunk) = s.chunk().await? {
                if tty {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&chunk)?;
                    out.flush()?;
                } else {
                    demux.feed(
                        &chunk,
                        &mut std::io::stdout().lock(),
                        &mut std::io::stderr().lock(),
                    )?;
                }
            }
            Ok(0)
        }
        ContainerCmd::Exec {
            detach,
            interactive,
            tty,
            env,
            user,
            workdir,
            detach_keys,
            container,
            command,
        } => {
            let mut body = json!({
                "AttachStdin": interactive && !detach,
                "AttachStdout": !detach,
                "AttachStderr": !detach,
                "Tty": tty,
                "Cmd": command,
                "Env": env,
            });
            if let Some(u) = user {
                body["User"] = u.into();
            }
            if let Some(w) = workdir {
                body["WorkingDir"] = w.into();
            }
            if let Some(k) = detach_keys {
                body["DetachKeys"] = k.into();
            }
            let created: Value = c
                .json(
                    Method::POST,
                    &format!("/containers/{}/exec", enc(&container)),
                    Some(&body),
                )
                .await?;
            let id = created["Id"].as_str().unwrap_or("").to_string();
            let start = json!({"Detach": detach, "Tty": tty});
            if detach {
                c.call(Method::POST, &format!("/exec/{id}/start"), Some(&start))
                    .await?;
                return Ok(0);
            }
            let io = c
                .upgrade(&format!("/exec/{id}/start"), Some(&start))
                .await?;
            session(c, io, tty, interactive, Resize::Exec(id.clone())).await?;
            let i: Value = c.get(&format!("/exec/{id}/json")).await?;
            Ok(i["ExitCode"].as_i64().unwrap_or(0) as i32)
        }
        ContainerCmd::Attach {
            no_stdin,
            detach_keys,
            container,
        } => {
            let i: Value = c
                .get(&format!("/containers/{}/json", enc(&container)))
                .await?;
            let id = i["Id"].as_str().unwrap_or(&container).to_string();
            if i["State"]["Running"].as_bool() != Some(true) {
                return Err(status_exit(
                    1,
                    "You cannot attach to a stopped container, start it first",
                ));
            }
            let tty = i["Config"]["Tty"].as_bool().unwrap_or(false);
            let stdin = !no_stdin && i["Config"]["OpenStdin"].as_bool().unwrap_or(false);
            let io = attach_streams(c, &id, stdin, detach_keys).await?;
            let waiter = waiter(c, &id, "next-exit").await?;
            session(c, io, tty, stdin, Resize::Container(id.clone())).await?;
            wait_code(c, &id, waiter).await
        }
        ContainerCmd::Inspect {
            format,
            kind,
            names,
        } => inspect(c, format, kind, names).await,
        ContainerCmd::Rename {
            container,
            new_name,
        } => {
            c.call(
                Method::POST,
                &format!(
                    "/containers/{}/rename{}",
                    enc(&container),
                    query([("name", new_name)])
                ),
                None,
            )
            .await?;
            Ok(0)
        }
        ContainerCmd::Wait(names) => {
            for_each(&names.containers, |n| async move {
                let v: Value = c
                    .json(Method::POST, &format!("/containers/{}/wait", enc(&n)), None)
                    .await?;
                Ok(Some(v["StatusCode"].as_i64().unwrap_or(0).to_string()))
            })
            .await
        }
        ContainerCmd::Top { container, ps_args } => {
            let q = if ps_args.is_empty() {
                String::new()
            } else {
                query([("ps_args", ps_args.join(" "))])
            };
            let top: Value = c
                .get(&format!("/containers/{}/top{q}", enc(&container)))
                .await?;
            let mut text = String::new();
            let line = |v: &Value| -> String {
                v.as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join("\t")
            };
            text.push_str(&line(&top["Titles"]));
            text.push('\n');
            for p in top["Processes"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
            {
                text.push_str(&line(p));
                text.push('\n');
            }
            output::write_table(&mut std::io::stdout().lock(), &text)?;
            Ok(0)
        }
        ContainerCmd::Stats {
            all,
            no_stream,
            format,
            containers,
        } => stats(c, all, no_stream, format, containers).await,
        ContainerCmd::Cp(a) => super::cp::cp(c, a).await,
        ContainerCmd::Port { container, port } => {
            let i: Value = c
                .get(&format!("/containers/{}/json", enc(&container)))
                .await?;
            match rows::port_lines(&i["NetworkSettings"]["Ports"], port.as_deref()) {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    Ok(0)
                }
                Err(e) => Err(status_exit(1, format!("Error: {e}"))),
            }
        }
    }
}

/// `stats`: a table of every container named (or every running one, or all with `-a`), once
/// with `--no-stream`, else redrawn as each round of samples (about a second) comes in.
async fn stats(
    c: &Client,
    all: bool,
    no_stream: bool,
    format: Option<String>,
    containers: Vec<String>,
) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    let f = Format::parse(format.as_deref(), berth_cli::stats::STATS_TABLE)?;
    let names = if containers.is_empty() {
        let list: Vec<Value> = c.get(&format!("/containers/json?all={all}")).await?;
        list.iter()
            .filter_map(|i| i["Id"].as_str().map(berth_common::id::short_id))
            .collect()
    } else {
        containers
    };
    let terminal = std::io::stdout().is_terminal();
    loop {
        // A round lasts at least a second, even when berthd answers at once (stopped ones).
        let pace = tokio::time::sleep(Duration::from_secs(1));
        let samples = futures::future::join_all(names.iter().map(|n| async move {
            let v: Result<Value, ClientError> = c
                .get(&format!("/containers/{}/stats?stream=false", enc(n)))
                .await;
            v.map(|v| berth_cli::stats::stats_row(&v, n))
        }))
        .await;
        let mut rows = Vec::new();
        for s in samples {
            match s {
                Ok(r) => rows.push(r),
                // A container removed while streaming drops out, as in Docker.
                Err(e) if e.status() == 404 && !no_stream => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut out = Vec::new();
        if terminal && !no_stream {
            // Docker redraws in place.
            out.extend_from_slice(b"\x1b[2J\x1b[H");
        }
        f.write(&mut out, &rows, berth_cli::stats::STATS_HEADERS)?;
        std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
        if no_stream {
            return Ok(0);
        }
        pace.await;
    }
}

/// `METHOD /containers/NAME{suffix}{query}` for every name, printing each name done (stop,
/// restart, kill, pause, unpause, rm).
async fn each_container(
    c: &Client,
    method: Method,
    names: &Names,
    suffix: &str,
    query: &str,
) -> anyhow::Result<i32> {
    for_each(&names.containers, |n| {
        let method = method.clone();
        async move {
            let path = format!("/containers/{}{suffix}{query}", enc(&n));
            c.call(method, &path, None).await?;
            Ok(Some(n))
        }
    })
    .await
}

/// `inspect`: each name as a container, image, network or volume (the first that exists, or
/// the `--type` given).
async fn inspect(
    c: &Client,
    format: Option<String>,
    kind: Option<String>,
    names: Vec<String>,
) -> anyhow::Result<i32> {
    let kinds: &[&str] = match kind.as_deref() {
        None => &["container", "image", "network", "volume"],
        Some("container") => &["container"],
        Some("image") => &["image"],
        Some("network") => &["network"],
        Some("volume") => &["volume"],
        Some(k) => {
            return Err(status_exit(
                125,
                format!(
                    "\"{k}\" is not a valid value for --type (valid: container, image, network, volume)"
                ),
            ));
        }
    };
    let mut items = Vec::new();
    let mut failed = false;
    for n in &names {
        let mut found = None;
        for k in kinds {
            let path = match *k {
                "container" => format!("/containers/{}/json", enc(n)),
                "image" if super::image::check_ref(n).is_err() => continue,
                "image" => format!("/images/{n}/json"),
                "network" => format!("/networks/{}", enc(n)),
                _ => format!("/volumes/{}", enc(n)),
            };
            match c.get::<Value>(&path).await {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(e) if e.status() == 404 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match found {
            Some(v) => items.push(v),
            None => {
                eprintln!("Error: No such object: {n}");
                failed = true;
            }
        }
    }
    output::inspect(&mut std::io::stdout().lock(), &items, format.as_deref())?;
    Ok(i32::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_dockers_codes() {
        assert_eq!(
            start_error_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(
            start_error_code("exec /bin/x: no such file or directory"),
            127
        );
        assert_eq!(start_error_code("exec /etc/passwd: permission denied"), 126);
        assert_eq!(start_error_code("port is already allocated"), 125);
    }
}
