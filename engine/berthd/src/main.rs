//! `berthd`: the Docker Engine API on a Unix socket (`/run/berth/berth.sock`, mode 0660, group
//! `berth` when it exists) over berth's engine, with the restart-policy supervisor. Containers
//! outlive it; a new berthd adopts them.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use engine::container::{Engine, EngineConfig, supervise};

/// berthd: the Docker Engine API over berth's engine.
#[derive(Parser, Debug)]
#[command(name = "berthd", version)]
struct Cli {
    /// Persistent state: images, containers, volumes, networks.
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Runtime state: bundles, namespaces, shims, the socket.
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// The API socket (default: EXEC_ROOT/berth.sock).
    #[arg(long, short = 'H')]
    host: Option<String>,
    /// The OCI runtime: crun, runc or a path (default: the first installed).
    #[arg(long)]
    runtime: Option<String>,
    /// The berth-shim binary (default: next to berthd).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// The host's resolv.conf (upstream DNS of containers).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// The parent cgroup of every container.
    #[arg(long, default_value = "berth")]
    cgroup_parent: String,
    /// Log filter (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn socket_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    match &cli.host {
        None => Ok(cli.exec_root.join("berth.sock")),
        Some(h) => match h.strip_prefix("unix://") {
            Some(p) => Ok(PathBuf::from(p)),
            None if h.starts_with('/') => Ok(PathBuf::from(h)),
            None => anyhow::bail!(
                "invalid -H {h:?}: berthd listens on a Unix socket only (give unix:///path/to.sock)"
            ),
        },
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log_level)
                .with_context(|| format!("invalid --log-level {:?}", cli.log_level))?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let sock = socket_path(&cli)?;
    let shim = match &cli.shim {
        Some(s) => s.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("berth-shim"))
            .context("finding berth-shim next to berthd")?,
    };
    let mut engine = Engine::open(EngineConfig {
        data_root: cli.data_root.clone(),
        exec_root: cli.exec_root.clone(),
        runtime: cli.runtime.clone(),
        shim,
        resolv_conf: cli.resolv_conf.clone(),
        cgroup_parent: cli.cgroup_parent.clone(),
    })
    .await
    .context("opening the engine")?;
    let events = berthd::events::Events::new();
    engine.set_event_sink(events.sink());
    let engine = Arc::new(tokio::sync::Mutex::new(engine));

    if let Some(dir) = sock.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)
        .with_context(|| format!("listening on {}", sock.display()))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
        let _ = nix::unistd::chown(&sock, None, Some(g.gid));
    }
    tracing::info!(socket = %sock.display(), "berthd serving the Docker API");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sup = tokio::spawn(supervise(engine.clone(), {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.changed().await;
        }
    }));
    let app = berthd::server::app(berthd::server::AppState::new(engine.clone(), events));
    let shutdown = async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop_tx.send(true);
    };
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
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
    let _ = std::fs::remove_file(&sock);
    tracing::info!("berthd stopped; containers keep running");
    Ok(())
}
