//! `berth-engine`: holds the container engine from the command line until berthd serves it over
//! the Docker API (issue 7). `daemon` keeps it open and supervises restart policies until
//! SIGTERM/SIGINT (containers keep running after it ends, however it ends); `run`, `ps`,
//! `stop`, `rm`, `logs` and `exec` open it for one operation (not while a daemon holds it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use engine::container::{
    AfterExit, CreateOptions, Engine, EngineConfig, ExecOptions, LogOptions, supervise,
};

#[derive(Parser, Debug)]
#[command(
    name = "berth-engine",
    about = "berth's container engine from the command line"
)]
struct Cli {
    /// Persistent state.
    #[arg(long, default_value = "/var/lib/berth", global = true)]
    data_root: PathBuf,
    /// Runtime state.
    #[arg(long, default_value = "/run/berth", global = true)]
    exec_root: PathBuf,
    /// OCI runtime (runc, crun or a path); the first installed when absent.
    #[arg(long, global = true)]
    runtime: Option<String>,
    /// The host resolv.conf containers' DNS starts from.
    #[arg(long, default_value = "/etc/resolv.conf", global = true)]
    resolv_conf: PathBuf,
    /// Parent cgroup of the containers.
    #[arg(long, default_value = "berth", global = true)]
    cgroup_parent: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Hold the engine and supervise restart policies until SIGTERM or SIGINT.
    Daemon {
        /// A JSON file with a list of create options to create and start first (their IDs are
        /// printed, one per line, then "ready").
        #[arg(long)]
        run: Option<PathBuf>,
    },
    /// Create and start a container; without -d, wait for it and exit with its code.
    Run {
        /// Detach: print the ID and return.
        #[arg(short, long)]
        detach: bool,
        /// The container, as JSON create options (image and cmd included).
        json: String,
    },
    /// List containers (ID, name, status, exit code).
    Ps,
    /// Stop containers.
    Stop {
        /// Seconds before SIGKILL.
        #[arg(short, long)]
        time: Option<u64>,
        /// Names or IDs.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill running ones first.
        #[arg(short, long)]
        force: bool,
        /// Also remove their anonymous volumes.
        #[arg(short, long)]
        volumes: bool,
        /// Names or IDs.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Print a container's log.
    Logs {
        /// Name or ID.
        container: String,
    },
    /// Run a command in a running container.
    Exec {
        /// Name or ID.
        container: String,
        /// The command.
        #[arg(required = true, trailing_var_arg = true)]
        cmd: Vec<String>,
    },
}

/// `name` (berth-shim, berth-proxy) beside this binary.
fn beside(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating berth-engine")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!("{name} not found beside {}", me.display());
    }
    Ok(path)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg = EngineConfig {
        data_root: cli.data_root,
        exec_root: cli.exec_root,
        runtime: cli.runtime,
        runtimes: Default::default(),
        shim: beside("berth-shim")?,
        // Needed only once a port is published; the error then names it.
        proxy: std::env::current_exe()?.with_file_name("berth-proxy"),
        resolv_conf: cli.resolv_conf,
        cgroup_parent: cli.cgroup_parent,
        slirp: std::env::current_exe()?.with_file_name("berth-slirp"),
    };
    let mut e = Engine::open(cfg).await.context("opening the engine")?;
    match cli.cmd {
        Cmd::Daemon { run } => {
            if let Some(file) = run {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let list: Vec<CreateOptions> = serde_json::from_str(&text).with_context(|| {
                    format!("{}: expected a JSON list of create options", file.display())
                })?;
                for opts in list {
                    let id = e.create(opts)?;
                    e.start(&id).await?;
                    println!("{id}");
                }
            }
            println!("ready");
            let engine = Arc::new(tokio::sync::Mutex::new(e));
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            supervise(engine, async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            })
            .await;
        }
        Cmd::Run { detach, json } => {
            let opts: CreateOptions =
                serde_json::from_str(&json).context("expected JSON create options")?;
            let id = e.create(opts)?;
            e.start(&id).await?;
            if detach {
                println!("{id}");
            } else {
                // The output is printed before exit handling, which removes it with --rm.
                if let Some(w) = e.exit_watch(&id)? {
                    w.wait().await;
                }
                let all = LogOptions {
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                };
                for l in e.logs(&id, &all)? {
                    print!("{}", l.log);
                }
                let code = match e.on_exit(&id, None).await? {
                    AfterExit::Exited(c) | AfterExit::Removed(c) => c,
                    AfterExit::Restart(_) => 0,
                };
                std::process::exit(code);
            }
        }
        Cmd::Ps => {
            println!("{:<14}{:<24}{:<12}EXIT", "CONTAINER ID", "NAME", "STATUS");
            for c in e.containers() {
                println!(
                    "{:<14}{:<24}{:<12}{}",
                    &c.id[..12],
                    c.name,
                    c.state.status.as_str(),
                    c.state.exit_code
                );
            }
        }
        Cmd::Stop { time, containers } => {
            for c in containers {
                e.stop(&c, time.map(Duration::from_secs)).await?;
                println!("{c}");
            }
        }
        Cmd::Rm {
            force,
            volumes,
            containers,
        } => {
            for c in containers {
                e.remove(&c, force, volumes).await?;
                println!("{c}");
            }
        }
        Cmd::Logs { container } => {
            for l in e.logs(
                &container,
                &LogOptions {
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                },
            )? {
                if l.stream == "stderr" {
                    eprint!("{}", l.log);
                } else {
                    print!("{}", l.log);
                }
            }
        }
        Cmd::Exec { container, cmd } => {
            let out = e
                .exec(
                    &container,
                    ExecOptions {
                        cmd,
                        ..Default::default()
                    },
                    None,
                )
                .await?;
            use std::io::Write;
            std::io::stdout().write_all(&out.stdout)?;
            std::io::stderr().write_all(&out.stderr)?;
            std::process::exit(out.exit_code);
        }
    }
    Ok(())
}
