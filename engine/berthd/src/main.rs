//! `berthd`: the Docker Engine API on a Unix socket (`/run/berth.sock`, mode 0660, group
//! `berth` when it exists) over berth's engine, with the restart-policy supervisor. Containers
//! outlive it; a new berthd adopts them. Never on TCP unless asked (`-H tcp://IP:PORT`), and then
//! only with mutual TLS (`--tlsverify --tlscacert --tlscert --tlskey`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::Context;
use berthd::config::{self, Settings};
use clap::Parser;
use engine::container::{Engine, EngineConfig, supervise};

/// berthd: the Docker Engine API over berth's engine.
#[derive(Parser, Debug)]
#[command(name = "berthd", version)]
struct Cli {
    /// Persistent state: images, containers, volumes, networks [default: /var/lib/berth].
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Runtime state: bundles, namespaces, shims, the socket [default: /run/berth].
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// Where to listen, repeatable: one unix:///path [default: /run/berth.sock] and at most
    /// one tcp://IP:PORT (which requires --tlsverify, --tlscacert, --tlscert and --tlskey).
    #[arg(long = "host", short = 'H')]
    hosts: Vec<String>,
    /// Require TLS client certificates signed by --tlscacert on the TCP listener.
    #[arg(long)]
    tlsverify: bool,
    /// The CA that signs the clients' certificates (PEM).
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// berthd's TLS certificate (PEM).
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// berthd's TLS private key (PEM).
    #[arg(long)]
    tlskey: Option<PathBuf>,
    /// The default OCI runtime: runc, crun, a name given by --add-runtime or the config
    /// file's runtimes, or a path [default: runc, else crun].
    #[arg(long)]
    runtime: Option<String>,
    /// One more OCI runtime, NAME=PATH, for `docker run --runtime NAME` (repeatable).
    #[arg(long, value_name = "NAME=PATH")]
    add_runtime: Vec<String>,
    /// The berth-shim binary [default: next to berthd].
    #[arg(long)]
    shim: Option<PathBuf>,
    /// The berth-proxy binary, the host-local side of `-p` [default: next to berthd].
    #[arg(long)]
    proxy: Option<PathBuf>,
    /// The host's resolv.conf (upstream DNS of containers) [default: /etc/resolv.conf].
    #[arg(long)]
    resolv_conf: Option<PathBuf>,
    /// The parent cgroup of every container [default: berth].
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Log filter: error, warn, info, debug, trace [default: info].
    #[arg(long)]
    log_level: Option<String>,
    /// The daemon config file (dockerd's keys: data-root, exec-root, hosts, default-runtime, runtimes,
    /// log-level, cgroup-parent, tlsverify, tlscacert, tlscert, tlskey; berth's resolv-conf, shim, proxy) [default: /etc/berth/daemon.json,
    /// when it exists].
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// Check the flags and the config file, print "configuration OK" and exit (as dockerd's
    /// --validate).
    #[arg(long)]
    validate: bool,
}

/// The settings from the flags and the config file.
fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let (path, required) = match &cli.config_file {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("/etc/berth/daemon.json"), false),
    };
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => config::parse_file(&path.display().to_string(), &text)?,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the config file {}", path.display()));
        }
    };
    let flags = config::Flags {
        data_root: cli.data_root.clone(),
        exec_root: cli.exec_root.clone(),
        hosts: cli.hosts.clone(),
        tlsverify: cli.tlsverify.then_some(true),
        tlscacert: cli.tlscacert.clone(),
        tlscert: cli.tlscert.clone(),
        tlskey: cli.tlskey.clone(),
        runtime: cli.runtime.clone(),
        add_runtime: cli.add_runtime.clone(),
        log_level: cli.log_level.clone(),
        cgroup_parent: cli.cgroup_parent.clone(),
        resolv_conf: cli.resolv_conf.clone(),
        shim: cli.shim.clone(),
        proxy: cli.proxy.clone(),
    };
    Ok(config::merge(&flags, &file)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = settings(&cli)?;
    if cli.validate {
        println!("configuration OK");
        return Ok(());
    }
    // systemd's socket is taken (made close-on-exec) before anything is spawned: nft, runc
    // and the proxy never inherit it.
    let activated = if cfg.systemd_socket {
        Some(systemd_listener()?)
    } else {
        None
    };
    // Attached streams, logs followers and `docker cp` walks (a descriptor per level) each
    // hold descriptors: the whole hard limit, not the usual 1024.
    berth_common::limits::raise_nofile();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cfg.log_level).with_context(|| {
                format!(
                    "invalid log level {:?} (valid: error, warn, info, debug, trace)",
                    cfg.log_level
                )
            })?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let sock = cfg.socket.clone();
    // The TLS files are read before anything else starts, so a bad one stops berthd at once.
    let tcp = match &cfg.tcp {
        Some(t) => Some((t.addr, berthd::tls::server_config(t)?)),
        None => None,
    };
    let beside = |name: &str| -> anyhow::Result<PathBuf> {
        std::env::current_exe()?
            .parent()
            .map(|d| d.join(name))
            .with_context(|| format!("finding {name} next to berthd"))
    };
    let shim = match &cfg.shim {
        Some(s) => s.clone(),
        None => beside("berth-shim")?,
    };
    let proxy = match &cfg.proxy {
        Some(p) => p.clone(),
        None => beside("berth-proxy")?,
    };
    let mut engine = Engine::open(EngineConfig {
        data_root: cfg.data_root.clone(),
        exec_root: cfg.exec_root.clone(),
        runtime: cfg.runtime.clone(),
        runtimes: cfg.runtimes.clone(),
        shim,
        proxy,
        resolv_conf: cfg.resolv_conf.clone(),
        cgroup_parent: cfg.cgroup_parent.clone(),
        slirp: beside("berth-slirp")?,
    })
    .await
    .context("opening the engine")?;
    let events = berthd::events::Events::new();
    engine.set_event_sink(events.sink());
    let scratch = engine.config().exec_root.join("scratch");
    let state = berthd::routes::AppState::new(engine, scratch, events);
    let engine = state.engine.clone();

    // TCP first: once the socket exists, both listen.
    let tcp = match tcp {
        Some((addr, tls)) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on tcp://{addr}"))?;
            tracing::info!(%addr, "berthd serving the Docker API on TCP, mutual TLS");
            Some((l, tls))
        }
        None => None,
    };
    let listener = if let Some(l) = activated {
        tracing::info!("berthd serving the Docker API on the socket systemd passed");
        l
    } else {
        if let Some(dir) = sock.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let l = bind_private(&sock)?;
        tracing::info!(socket = %sock.display(), "berthd serving the Docker API");
        l
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sup = tokio::spawn(supervise(engine.clone(), {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.changed().await;
        }
    }));
    let app = berthd::routes::app(state);
    let shutdown = async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop_tx.send(true);
    };
    let tcp_serve = {
        let (app, stop) = (app.clone(), stop_rx.clone());
        async move {
            if let Some((l, tls)) = tcp {
                berthd::tls::serve(l, tls, app, stop).await;
            }
        }
    };
    let unix_serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let serve = async move {
        let (r, ()) = tokio::join!(unix_serve, tcp_serve);
        r
    };
    let mut stopping = stop_rx.clone();
    // Open streams (wait, logs -f, attach) get 5 s after the signal, then berthd stops anyway;
    // the containers keep running either way.
    tokio::select! {
        r = serve => r.context("serving")?,
        () = async {
            let _ = stopping.changed().await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        } => tracing::warn!("open API streams did not end within 5 s; stopping anyway"),
    }
    let _ = sup.await;
    engine.lock().await.shutdown().await;
    if !cfg.systemd_socket {
        let _ = std::fs::remove_file(&sock);
    }
    tracing::info!("berthd stopped; containers keep running");
    Ok(())
}

/// The listening Unix socket systemd passed under `-H fd://` (sd_listen_fds(3)'s protocol:
/// `LISTEN_PID` is this process, `LISTEN_FDS` is 1, the socket is fd 3). It is made
/// close-on-exec, so shims and proxies never hold it.
fn systemd_listener() -> anyhow::Result<tokio::net::UnixListener> {
    use nix::sys::socket::{
        AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
    };
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    const FIRST: i32 = 3;
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let pid = var("LISTEN_PID").context(
        "-H fd:// takes the socket systemd passes (berthd.socket), but LISTEN_PID is not set",
    )?;
    anyhow::ensure!(
        pid == std::process::id(),
        "-H fd://: the sockets in LISTEN_FDS are for process {pid}, not berthd ({})",
        std::process::id()
    );
    let n = var("LISTEN_FDS").unwrap_or(0);
    anyhow::ensure!(
        n == 1,
        "-H fd:// takes exactly one socket from systemd, got {n} (one ListenStream= in berthd.socket)"
    );
    // SAFETY: fd 3 is open while LISTEN_FDS counts it; checked below before it is used.
    let fd = unsafe { BorrowedFd::borrow_raw(FIRST) };
    let unix_stream = getsockopt(&fd, sockopt::SockType).ok() == Some(SockType::Stream)
        && getsockname::<SockaddrStorage>(FIRST)
            .ok()
            .and_then(|a| a.family())
            == Some(AddressFamily::Unix)
        && getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
    anyhow::ensure!(
        unix_stream,
        "-H fd://: fd {FIRST} is not a listening Unix stream socket (berthd.socket needs ListenStream=/path)"
    );
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    // SAFETY: systemd handed fd 3 to this process to own; nothing else in berthd uses it.
    let l = std::os::unix::net::UnixListener::from(unsafe { OwnedFd::from_raw_fd(FIRST) });
    l.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(l)?)
}

/// Listens on the API socket `sock` with its final mode and group from the first moment: bound
/// in a directory only root can enter, given mode 0660 (group `berth` when it exists) there,
/// then renamed into place (the rename keeps the bound socket). No client of another user can
/// connect in between, as it could with a chmod after binding at the final path.
fn bind_private(sock: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    let parent = sock.parent().unwrap_or(std::path::Path::new("."));
    let private = parent.join(format!(".berthd-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("creating {}", private.display()))?;
    let bound = private.join("sock");
    let result = (|| -> anyhow::Result<std::os::unix::net::UnixListener> {
        let l = std::os::unix::net::UnixListener::bind(&bound)
            .with_context(|| format!("listening on {}", sock.display()))?;
        std::fs::set_permissions(&bound, std::fs::Permissions::from_mode(0o660))?;
        if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
            let _ = nix::unistd::chown(&bound, None, Some(g.gid));
        }
        let _ = std::fs::remove_file(sock);
        std::fs::rename(&bound, sock)
            .with_context(|| format!("moving the API socket to {}", sock.display()))?;
        Ok(l)
    })();
    let _ = std::fs::remove_dir_all(&private);
    let l = result?;
    l.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(l)?)
}
