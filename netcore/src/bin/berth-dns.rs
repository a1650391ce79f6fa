//! `berth-dns`: the embedded resolver as a process of its own, serving the networks `berth-net`
//! manages under the same `--data-root`, until berthd hosts the resolver in-process. It watches
//! the network state file with inotify and applies every change as it lands, so a container's
//! name answers as soon as `berth-net attach` has written it.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use netcore::dns::{ResolvConf, Resolver, ResolverConfig, parse_server};
use netcore::network::{STATE_FILE, State};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "berth-dns",
    about = "berth's embedded DNS resolver at 127.0.0.11 in every container"
)]
struct Cli {
    /// Root of berth's persistent state (the networks berth-net manages).
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Where the upstream resolvers come from.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Upstream resolvers instead of resolv.conf's: IP, IP:PORT or [IPv6]:PORT.
    #[arg(long, value_parser = parse_server)]
    dns: Vec<SocketAddr>,
    /// How long one upstream may take before the next is tried, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    upstream_timeout_ms: u64,
}

/// The upstreams: `--dns`, else the host's resolv.conf, whose bad lines are warnings only.
fn upstreams(cli: &Cli) -> Vec<SocketAddr> {
    if !cli.dns.is_empty() {
        return cli.dns.clone();
    }
    let path = cli.resolv_conf.display();
    let text = match std::fs::read_to_string(&cli.resolv_conf) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("{path}: {e}; outside names will get SERVFAIL");
            return Vec::new();
        }
    };
    let (rc, warnings) = ResolvConf::parse(&text);
    for w in warnings {
        tracing::warn!("{path}: {w}");
    }
    if rc.nameservers.is_empty() {
        tracing::warn!("{path} names no usable nameserver; outside names will get SERVFAIL");
    }
    rc.nameservers
}

struct Watch(Inotify);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

fn load(path: &Path) -> Result<State> {
    Ok(berth_common::persist::load::<State>(path)?.unwrap_or_default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let dir = cli.data_root.join("network");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let state_file = dir.join(STATE_FILE);

    let inotify =
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).context("inotify_init")?;
    inotify
        .add_watch(
            &dir,
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_DELETE,
        )
        .with_context(|| format!("watching {}", dir.display()))?;
    // SAFETY: `Watch` owns the inotify descriptor and neither closes nor replaces it while the
    // AsyncFd holds it; it is closed only when the AsyncFd (and so the Watch) is dropped.
    let watch = unsafe { AsyncFd::register(Watch(inotify)) }
        .context("registering the inotify descriptor")?;

    let mut resolver = Resolver::new(ResolverConfig {
        upstreams: upstreams(&cli),
        upstream_timeout: Duration::from_millis(cli.upstream_timeout_ms),
        ..ResolverConfig::default()
    });
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut dirty = true;
    loop {
        if dirty {
            match load(&state_file) {
                Ok(state) => {
                    for e in resolver.update(&state).await {
                        tracing::warn!("{e}");
                    }
                    tracing::info!("serving {} container(s)", resolver.listening().count());
                }
                Err(e) => tracing::warn!("{e:#}; keeping the previous records"),
            }
        }
        tokio::select! {
            ready = watch.readable() => {
                let mut guard = ready?;
                let events = match guard.get_inner().0.read_events() {
                    Ok(ev) => ev,
                    Err(nix::errno::Errno::EAGAIN) => {
                        guard.clear_ready();
                        Vec::new()
                    }
                    Err(e) => return Err(e).context("reading inotify events"),
                };
                dirty = events.iter().any(|e| e.name.as_deref() == Some(STATE_FILE.as_ref()));
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    Ok(())
}
