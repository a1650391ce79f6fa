//! `berth-slirp`: one container's userspace network stack. Makes `tap0` in the namespace it is
//! given, configures the slirp layout (container 10.0.2.100, gateway 10.0.2.2, resolver 10.0.2.3),
//! serves the published ports, prints `ready` once the container may use the network, and runs
//! until SIGTERM (its TAP device holds the namespace, so whoever started it ends it with the
//! container; berthd does, by PID). SIGUSR1 writes the counters to `--status`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use netcore::dns::{ResolvConf, parse_server};
use netcore::usernet::{Options, stack, tap};
use portproxy::spec::PortSpec;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "berth-slirp",
    about = "berth's userspace network stack for one container"
)]
struct Cli {
    /// The container's network namespace (`/proc/PID/ns/net`).
    #[arg(long)]
    netns: PathBuf,
    /// Options as `--network slirp:...` takes them (`allow_host_loopback=true,mtu=1500`).
    #[arg(long, default_value = "")]
    options: String,
    /// Shorthand for the `allow_host_loopback=true` option.
    #[arg(long)]
    allow_host_loopback: bool,
    /// The MTU, overriding the options'.
    #[arg(long)]
    mtu: Option<u16>,
    /// A published port in `docker run -p`'s syntax (`127.0.0.1:8080:80/udp`), repeatable.
    /// Each socket bound is printed as `published PROTO HOST_ADDRESS CONTAINER_PORT`.
    #[arg(long)]
    publish: Vec<PortSpec>,
    /// Where the resolver address forwards: IP or IP:PORT (default: resolv.conf's first).
    #[arg(long, value_parser = parse_server)]
    dns: Option<SocketAddr>,
    /// The host's resolv.conf.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Idle TCP flows are closed after this many seconds.
    #[arg(long, default_value_t = 7200)]
    tcp_idle_secs: u64,
    /// Idle UDP and ping flows are forgotten after this many seconds.
    #[arg(long, default_value_t = 60)]
    udp_idle_secs: u64,
    /// File SIGUSR1 writes the counters to (JSON).
    #[arg(long)]
    status: Option<PathBuf>,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut options: Options = cli.options.parse().map_err(anyhow::Error::from)?;
    options.allow_host_loopback |= cli.allow_host_loopback;
    if let Some(mtu) = cli.mtu {
        options = format!("mtu={mtu}").parse::<Options>().map(|o| Options {
            mtu: o.mtu,
            ..options
        })?;
    }
    let upstream = cli.dns.or_else(|| {
        let text = std::fs::read_to_string(&cli.resolv_conf).ok()?;
        ResolvConf::parse(&text).0.nameservers.first().copied()
    });
    // Flow buffers are large and mostly idle: give each its own mapping, so untouched pages cost
    // nothing (glibc would otherwise raise its threshold and zero them on the heap).
    // SAFETY: mallopt only changes the allocator's tuning; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let container = options.layout().container.into();
        let mut bound = Vec::new();
        for spec in &cli.publish {
            // Without a host address both families are published, IPv6 only where the host
            // has it, as Docker does.
            bound.extend(portproxy::listen::bind_all(
                &spec.mappings(container),
                spec.host_ip.is_none(),
            )?);
        }
        for (m, _) in &bound {
            println!("published {} {} {}", m.proto, m.host, m.container.port());
        }
        let tap = tap::create(&cli.netns, &options).await?;
        let cfg = stack::Config {
            options,
            upstream_dns: upstream,
            tcp_idle: Duration::from_secs(cli.tcp_idle_secs),
            udp_idle: Duration::from_secs(cli.udp_idle_secs),
        };
        let mut stack = stack::Stack::new(cfg, bound)?;
        println!("ready");
        let mut term = signal(SignalKind::terminate())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let (req_tx, mut req_rx) = tokio::sync::mpsc::channel(1);
        let status = cli.status.clone();
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if req_tx.send(tx).await.is_err() {
                    break;
                }
                let (Ok(counters), Some(path)) = (rx.await, &status) else {
                    continue;
                };
                if let Err(e) = berth_common::persist::save(path, &counters) {
                    tracing::warn!("{}: {e}", path.display());
                }
            }
        });
        let result = stack
            .run(
                &tap,
                async move {
                    term.recv().await;
                },
                &mut req_rx,
            )
            .await;
        result.context("the container's TAP device")
    })
}
