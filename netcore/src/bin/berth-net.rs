//! `berth-net`: netcore's network manager from the command line, until berthd serves it over the
//! Docker API. Same verbs and flags as `docker network`, plus `attach`/`detach` for a namespace
//! standing in for a container, and `reset` to remove everything berth created in the kernel.
//!
//! State lives under `<data-root>/network` (default /var/lib/berth/network).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ipnet::IpNet;
use netcore::firewall::nft::NftCommand;
use netcore::ipam::SubnetRequest;
use netcore::link::RtNetlink;
use netcore::network::{AttachRequest, ContainerLink, CreateRequest, NetworkManager, Sysctl};
use netcore::options::{parse_ip, parse_subnet};
use portproxy::spec::PortSpec;

#[derive(Parser, Debug)]
#[command(
    name = "berth-net",
    about = "berth's networks: create, remove, attach, inspect"
)]
struct Cli {
    /// Root of berth's persistent state.
    #[arg(long, default_value = "/var/lib/berth", global = true)]
    data_root: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a network (docker network create).
    Create {
        /// Network name.
        name: String,
        /// bridge, macvlan or ipvlan.
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form; give an IPv6 one too with --ipv6.
        #[arg(long)]
        subnet: Vec<String>,
        /// Range of dynamic addresses, inside the subnet of its family.
        #[arg(long)]
        ip_range: Vec<String>,
        /// Gateway, inside the subnet of its family.
        #[arg(long)]
        gateway: Vec<String>,
        /// Give endpoints IPv6 addresses too (needs an IPv6 --subnet).
        #[arg(long)]
        ipv6: bool,
        /// No route out, nothing in from outside.
        #[arg(long)]
        internal: bool,
        /// Driver option key=value.
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Label key=value.
        #[arg(long)]
        label: Vec<String>,
    },
    /// Remove networks (docker network rm).
    Rm {
        /// Names or IDs.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// List networks (docker network ls).
    Ls,
    /// Show networks as Docker's JSON (docker network inspect).
    Inspect {
        /// Names or IDs.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Attach a network namespace, standing in for a container.
    Attach {
        /// Network name or ID.
        network: String,
        /// The namespace file (/run/netns/NAME or /proc/PID/ns/net).
        #[arg(long)]
        netns: PathBuf,
        /// The container name.
        #[arg(long)]
        name: String,
        /// Publish ports, as docker run -p.
        #[arg(short, long)]
        publish: Vec<String>,
        /// Static IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// Static IPv6 address.
        #[arg(long)]
        ip6: Option<String>,
        /// Network-scoped alias.
        #[arg(long)]
        alias: Vec<String>,
        /// Resolve another container's name under an alias: NAME or NAME:ALIAS.
        #[arg(long)]
        link: Vec<ContainerLink>,
        /// Forward this container's outside names here (IP, IP:PORT or [IPv6]:PORT).
        #[arg(long, value_parser = netcore::dns::parse_server)]
        dns: Vec<std::net::SocketAddr>,
    },
    /// Detach a container from a network.
    Detach {
        /// Network name or ID.
        network: String,
        /// Container name.
        name: String,
    },
    /// Remove every link and nft table berth created, and berth's network records.
    Reset,
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("invalid {flag} {kv:?}: expected key=value"))
        })
        .collect()
}

/// Sorts --subnet/--ip-range/--gateway values into the IPv4 and IPv6 requests by family.
fn subnet_requests(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    ipv6: bool,
) -> Result<(SubnetRequest, Option<SubnetRequest>)> {
    let (mut v4, mut v6) = (SubnetRequest::default(), SubnetRequest::default());
    for s in subnets {
        let net = parse_subnet("--subnet", s)?;
        let slot = if matches!(net, IpNet::V6(_)) {
            &mut v6
        } else {
            &mut v4
        };
        if slot.subnet.replace(net).is_some() {
            bail!("--subnet {s}: only one subnet per address family");
        }
    }
    for r in ranges {
        let net = parse_subnet("--ip-range", r)?;
        let slot = if matches!(net, IpNet::V6(_)) {
            &mut v6
        } else {
            &mut v4
        };
        slot.ip_range = Some(net);
    }
    for g in gateways {
        let ip = parse_ip("--gateway", g)?;
        let slot = if ip.is_ipv6() { &mut v6 } else { &mut v4 };
        slot.gateway = Some(ip);
    }
    if !ipv6 && v6 != SubnetRequest::default() {
        bail!("IPv6 --subnet, --ip-range or --gateway given without --ipv6");
    }
    Ok((v4, ipv6.then_some(v6)))
}

fn ip(option: &'static str, v: &Option<String>) -> Result<Option<IpAddr>> {
    Ok(v.as_deref().map(|s| parse_ip(option, s)).transpose()?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let dir = cli.data_root.join("network");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut mgr =
        NetworkManager::open(&dir, RtNetlink::new(), NftCommand::new(), Sysctl::default())
            .await
            .context("opening berth's networks")?;
    match cli.cmd {
        Cmd::Create {
            name,
            driver,
            subnet,
            ip_range,
            gateway,
            ipv6,
            internal,
            opt,
            label,
        } => {
            let (ipv4, ipv6) = subnet_requests(&subnet, &ip_range, &gateway, ipv6)?;
            let net = mgr
                .create(CreateRequest {
                    name,
                    driver: Some(driver),
                    ipv4,
                    ipv6,
                    internal,
                    options: key_values("-o", &opt)?,
                    labels: key_values("--label", &label)?,
                })
                .await?;
            println!("{}", net.id);
        }
        Cmd::Rm { networks } => {
            for n in networks {
                mgr.remove(&n).await?;
                println!("{n}");
            }
        }
        Cmd::Ls => {
            println!("NETWORK ID    NAME                DRIVER    SCOPE");
            for n in mgr.list() {
                println!(
                    "{:<14}{:<20}{:<10}{}",
                    &n.id[..12],
                    n.name,
                    n.driver,
                    n.scope
                );
            }
        }
        Cmd::Inspect { networks } => {
            let all = networks
                .iter()
                .map(|n| mgr.inspect(n))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Cmd::Attach {
            network,
            netns,
            name,
            publish,
            ip: v4,
            ip6,
            alias,
            link,
            dns,
        } => {
            let ports = publish
                .iter()
                .map(|p| p.parse::<PortSpec>())
                .collect::<Result<Vec<_>, _>>()?;
            let ep = mgr
                .attach(
                    &network,
                    AttachRequest {
                        container: name.clone(),
                        container_name: name,
                        ns: Some(netns),
                        aliases: alias,
                        links: link,
                        dns_servers: dns,
                        ipv4: ip("--ip", &v4)?,
                        ipv6: ip("--ip6", &ip6)?,
                        ports,
                        ..AttachRequest::default()
                    },
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&ep)?);
        }
        Cmd::Detach { network, name } => mgr.detach(&network, &name).await?,
        Cmd::Reset => mgr.teardown_all().await?,
    }
    Ok(())
}
