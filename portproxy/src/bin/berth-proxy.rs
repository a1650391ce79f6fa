//! `berth-proxy`: the standalone port proxy.
//!
//! `berth-proxy serve` runs one proxy for every published port, driven through its control socket
//! (`berth-proxy ctl ...`). Given docker-proxy's flags instead, it behaves as docker-proxy for a
//! stock Docker daemon.

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use portproxy::compat::{self, LISTEN_FD, STATUS_FD};
use portproxy::control::{self, Client, Request};
use portproxy::listen::{Bound, bind_all};
use portproxy::{Proxy, ProxyConfig, PublishRequest};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(name = "berth-proxy", version, about = "berth's userland port proxy")]
struct Cli {
    /// Run-time directory; the control socket defaults to <exec-root>/proxy.sock.
    #[arg(long, global = true, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// Control socket path (overrides --exec-root).
    #[arg(long, global = true)]
    control: Option<PathBuf>,
    /// Worker threads. 1 (the default) runs everything on one thread with no cross-thread
    /// wake-ups, which costs least per connection; one thread splices well over 20 Gbit/s.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Log filter (tracing's EnvFilter syntax), e.g. info or portproxy=debug.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the proxy until SIGTERM or SIGINT, then drain open connections.
    Serve {
        /// Publish at start: SPEC@CONTAINER_IP, e.g. 8080:80/tcp@172.17.0.2 (repeatable).
        #[arg(short, long = "publish")]
        publish: Vec<String>,
        /// Preserve client addresses for the --publish mappings.
        #[arg(long)]
        transparent: bool,
        /// Idle time after which a UDP flow is closed, in seconds (1-86400).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        udp_idle_timeout: u64,
        /// UDP flows per listening socket (1-1048576).
        #[arg(long, default_value_t = 4096, value_parser = parse_count)]
        udp_max_flows: usize,
        /// UDP flows across all mappings (1-1048576).
        #[arg(long, default_value_t = 65536, value_parser = parse_count)]
        udp_max_flows_total: usize,
        /// Open TCP connections across all mappings (1-1048576).
        #[arg(long, default_value_t = 16384, value_parser = parse_count)]
        max_connections: usize,
        /// Seconds to wait for open connections on shutdown (0-3600).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
        drain_timeout: u64,
        /// Bind the control socket, then go on in a new session in the background; the
        /// command returns once the socket listens (how berthd starts its proxy).
        #[arg(long)]
        detach: bool,
        /// Write the serving process's PID to this file before the command returns.
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Talk to a running proxy.
    Ctl {
        #[command(subcommand)]
        op: CtlOp,
    },
    /// Print the nftables script and ip commands that transparent mode needs on the host.
    TransparentRouting,
}

#[derive(Subcommand, Debug)]
enum CtlOp {
    /// Publish SPEC (docker's -p syntax) to a container address.
    Publish {
        spec: String,
        #[arg(long)]
        container_ip: IpAddr,
        #[arg(long)]
        transparent: bool,
    },
    /// Remove a publication by id.
    Unpublish { id: u64 },
    /// Show one publication with its counters.
    Get { id: u64 },
    /// List publications with their counters.
    Ls,
    /// Check that the proxy answers.
    Ping,
}

fn parse_count(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=ProxyConfig::MAX_CONNECTIONS) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a count from 1 to {}",
            ProxyConfig::MAX_CONNECTIONS
        )),
    }
}

fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn terminated() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

fn parse_publish(arg: &str) -> Result<PublishRequest> {
    let (spec, ip) = arg
        .rsplit_once('@')
        .with_context(|| format!("--publish {arg:?}: expected SPEC@CONTAINER_IP"))?;
    Ok(PublishRequest {
        spec: spec.parse()?,
        container_ip: ip
            .parse()
            .with_context(|| format!("--publish {arg:?}: {ip:?} is not an IP address"))?,
        transparent: false,
    })
}

async fn serve(
    control_path: PathBuf,
    bound: Option<std::os::unix::net::UnixListener>,
    publish: Vec<String>,
    transparent: bool,
    config: ProxyConfig,
    drain: Duration,
) -> Result<()> {
    let proxy = Proxy::new(config);
    for p in &publish {
        let mut req = parse_publish(p)?;
        req.transparent = transparent;
        let info = proxy.publish(&req)?;
        for m in &info.mappings {
            println!("{m}");
        }
    }
    let listener = match bound {
        Some(l) => {
            l.set_nonblocking(true)?;
            tokio::net::UnixListener::from_std(l)?
        }
        None => control::bind(&control_path)
            .await
            .with_context(|| format!("cannot open control socket {}", control_path.display()))?,
    };
    info!(control = %control_path.display(), "berth-proxy ready");
    control::serve(listener, proxy.clone(), terminated()).await;
    info!("draining");
    if !proxy.drain(drain).await {
        warn!(
            open = proxy.open_connections(),
            "drain timed out; closing the rest"
        );
    }
    let _ = std::fs::remove_file(&control_path);
    Ok(())
}

async fn ctl(control_path: PathBuf, op: CtlOp) -> Result<()> {
    let req = match op {
        CtlOp::Publish {
            spec,
            container_ip,
            transparent,
        } => Request::Publish {
            spec,
            container_ip,
            transparent,
        },
        CtlOp::Unpublish { id } => Request::Unpublish { id },
        CtlOp::Get { id } => Request::Get { id },
        CtlOp::Ls => Request::List,
        CtlOp::Ping => Request::Ping,
    };
    let mut c = Client::connect(&control_path)
        .await
        .with_context(|| format!("cannot reach berth-proxy at {}", control_path.display()))?;
    let resp = c.call(&req).await?;
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_default());
    }
    println!("{}", serde_json::to_string_pretty(&resp.published)?);
    Ok(())
}

/// Whether `fd` is open in this process.
fn fd_is_open(fd: i32) -> bool {
    // SAFETY: the descriptor is only borrowed for one fcntl(F_GETFD) call, which does not use or
    // change it; a closed descriptor just yields EBADF.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(b, nix::fcntl::FcntlArg::F_GETFD).is_ok()
}

/// docker-proxy mode: one mapping, status on fd 3, exit on SIGTERM.
fn docker_proxy_main(args: &[String]) -> Result<()> {
    let mut status = fd_is_open(STATUS_FD).then(|| {
        // SAFETY: fd 3 is open (checked above) and, under docker's protocol, is the status pipe
        // handed to us to own; nothing else in this process uses it.
        unsafe { File::from_raw_fd(STATUS_FD) }
    });
    // Writes the one status line and closes the pipe, as docker-proxy does.
    let mut report = |r: &std::result::Result<(), String>| {
        if let Some(mut f) = status.take() {
            let _ = f.write_all(compat::status_line(r).as_bytes());
        }
    };
    let parsed = match compat::parse_docker_proxy_args(args) {
        Ok(p) => p,
        Err(e) => {
            report(&Err(e.to_string()));
            bail!(e);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let proxy = Proxy::new(ProxyConfig::default());
        let bound = if parsed.use_listen_fd {
            if !fd_is_open(LISTEN_FD) {
                let msg = "-use-listen-fd given but fd 4 is not open".to_string();
                report(&Err(msg.clone()));
                bail!(msg);
            }
            // SAFETY: fd 4 is open and, under -use-listen-fd, is the listening socket the daemon
            // passes for this process to own.
            let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FD) };
            Bound::from_fd(parsed.mapping.proto, fd)
                .map(|b| vec![(parsed.mapping, b)])
                .with_context(|| format!("cannot serve fd {LISTEN_FD} for {}", parsed.mapping))
        } else {
            bind_all(&[parsed.mapping], false).map_err(anyhow::Error::from)
        };
        let started = bound.and_then(|b| {
            proxy
                .publish_bound(parsed.mapping.to_string(), b, false)
                .map_err(anyhow::Error::from)
        });
        match &started {
            Ok(_) => report(&Ok(())),
            Err(e) => report(&Err(e.to_string())),
        }
        started?;
        terminated().await;
        proxy.drain(Duration::from_secs(1)).await;
        Ok(())
    })
}

/// `serve --detach`: binds the control socket, forks, and returns in the parent (after writing
/// the child's PID to `pid_file`) once the socket listens; the child goes on in its own session.
/// Runs before any runtime or thread exists, so the fork copies a single-threaded process.
fn detach(
    control_path: &std::path::Path,
    pid_file: Option<&std::path::Path>,
) -> Result<std::os::unix::net::UnixListener> {
    let listener = control::bind_blocking(control_path)
        .with_context(|| format!("cannot open control socket {}", control_path.display()))?;
    // SAFETY: no other thread exists yet (no runtime has been built), so the child may go on
    // running ordinary code.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Parent { child } => {
            if let Some(p) = pid_file {
                if let Err(e) = write_pid(p, child.as_raw()) {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    return Err(e);
                }
            }
            std::process::exit(0)
        }
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid().context("setsid")?;
            // Pins no directory of whoever started it.
            std::env::set_current_dir("/").context("chdir /")?;
            Ok(listener)
        }
    }
}

/// Writes `pid` to `path` whole (beside it, then renamed), so a reader never sees half of it.
fn write_pid(path: &std::path::Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    berth_common::limits::raise_nofile();
    if compat::looks_like_docker_proxy(&args) {
        init_logs("warn");
        return docker_proxy_main(&args);
    }
    let cli = Cli::parse();
    init_logs(&cli.log_level);
    let control_path = cli
        .control
        .unwrap_or_else(|| cli.exec_root.join("proxy.sock"));
    // Absolute: `serve --detach` leaves the working directory for `/`.
    let control_path = std::path::absolute(&control_path).unwrap_or(control_path);
    let bound = match &cli.cmd {
        Cmd::Serve {
            detach: true,
            pid_file,
            ..
        } => Some(detach(&control_path, pid_file.as_deref())?),
        Cmd::Serve {
            pid_file: Some(p), ..
        } => {
            write_pid(p, std::process::id() as i32)?;
            None
        }
        _ => None,
    };
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    match cli.cmd {
        Cmd::Serve {
            publish,
            transparent,
            udp_idle_timeout,
            udp_max_flows,
            udp_max_flows_total,
            max_connections,
            drain_timeout,
            ..
        } => {
            let config = ProxyConfig {
                max_connections,
                udp_idle_timeout: Duration::from_secs(udp_idle_timeout),
                udp_max_flows,
                udp_max_flows_total,
                ..ProxyConfig::default()
            };
            rt.block_on(serve(
                control_path,
                bound,
                publish,
                transparent,
                config,
                Duration::from_secs(drain_timeout),
            ))
        }
        Cmd::Ctl { op } => rt.block_on(ctl(control_path, op)),
        Cmd::TransparentRouting => {
            print!("{}", portproxy::transparent::routing_nft());
            for c in portproxy::transparent::ROUTING_IP_COMMANDS {
                println!("# {c}");
            }
            Ok(())
        }
    }
}
