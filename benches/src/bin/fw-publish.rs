//! Times publishing the Nth port, for berth's firewall and for the one-rule-per-port layout that
//! Docker and netavark use. Run as root inside a throwaway network namespace (it replaces berth's
//! nft tables and a `table ip perport`); benches/firewall_compare.py drives it.
//!
//! Usage: fw-publish --layout berth|per-port --ports N [--samples K] [--proto tcp[,udp]]
//!        --target IP:PORT [--base-port P] [--bridge NAME] [--subnet CIDR] [--hold]
//!
//! Both layouts first install N-1 published ports in one nft call (host ports `P .. P+N-2`, each
//! to a container address of the subnet, using the first protocol), then K times publish host
//! port `P+N-1` to `--target` (for every protocol given) with one nft process, timing it, and
//! unpublish it again (untimed) between samples.
//!
//! - berth: the N-1 ports installed with `Firewall::apply` (which replaces berth's tables whole),
//!   then each publish is `Firewall::publish` (two map elements per mapping in one `nft -j -f -`
//!   call) and each unpublish `Firewall::unpublish`. The timed span is the whole `publish`:
//!   computing the elements, planning, encoding and the nft process.
//! - per-port: what Docker and netavark do: a nat prerouting chain that jumps, for local
//!   destinations, to a chain holding one `PROTO dport PORT dnat to IP:PORT` rule per published
//!   port, each new port appended (so the newest port is matched last). The timed span is one
//!   `nft -f -` process adding the rule(s), as Docker runs one iptables process per rule.
//!
//! For berth each sample also times the same element batch handed to nft directly (planned
//! beforehand, untimed, and undone after), which splits the publish time into berth's own CPU and
//! the nft process.
//!
//! Prints one JSON line: `{"layout", "ports", "protos", "samples", "bulk_ms", "publish_us_median",
//! "publish_us_min", "publish_us_max", "publish_nft_us_median", "installed"}` (the nft-only median
//! is null for per-port, whose publish is the nft process alone; `installed`: DNAT rules or map
//! elements found in the kernel afterwards, a sanity check). With `--hold`, port `P+N-1` stays published
//! after the samples (published once if K is 0), the JSON line is printed, and the tool waits for
//! stdin to close before removing its tables, so traffic can be measured through the N ports.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use netcore::firewall::nft::{Nft, NftCommand};
use netcore::firewall::{BridgeRules, Firewall, FirewallState, plan, ruleset};
use portproxy::spec::{Mapping, Protocol};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Berth,
    PerPort,
}

#[derive(Debug)]
struct Args {
    layout: Layout,
    ports: usize,
    samples: usize,
    protos: Vec<Protocol>,
    target: SocketAddr,
    base_port: u16,
    bridge: String,
    subnet: Option<String>,
    hold: bool,
}

const USAGE: &str = "usage: fw-publish --layout berth|per-port --ports N [--samples K] \
[--proto tcp[,udp]] --target IP:PORT [--base-port P] [--bridge NAME] [--subnet CIDR] [--hold]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        layout: Layout::Berth,
        ports: 1,
        samples: 10,
        protos: vec![Protocol::Tcp],
        target: "10.88.1.2:80".parse().expect("valid address"),
        base_port: 20000,
        bridge: "berth0".into(),
        subnet: None,
        hold: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--hold" {
            args.hold = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag} {value:?}: {what}");
        match flag.as_str() {
            "--layout" => {
                args.layout = match value.as_str() {
                    "berth" => Layout::Berth,
                    "per-port" => Layout::PerPort,
                    _ => bail!(bad("expected berth or per-port")),
                }
            }
            "--ports" => args.ports = value.parse().with_context(|| bad("not a count"))?,
            "--samples" => args.samples = value.parse().with_context(|| bad("not a count"))?,
            "--proto" => {
                args.protos = value
                    .split(',')
                    .map(|p| match p {
                        "tcp" => Ok(Protocol::Tcp),
                        "udp" => Ok(Protocol::Udp),
                        _ => bail!(bad("expected tcp, udp or tcp,udp")),
                    })
                    .collect::<Result<_>>()?
            }
            "--target" => args.target = value.parse().with_context(|| bad("not IP:PORT"))?,
            "--base-port" => args.base_port = value.parse().with_context(|| bad("not a port"))?,
            "--bridge" => args.bridge = value,
            "--subnet" => args.subnet = Some(value),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    ensure!(args.ports >= 1, "--ports must be at least 1");
    ensure!(
        usize::from(args.base_port) + args.ports <= 65536,
        "--base-port {} + --ports {} goes past port 65535",
        args.base_port,
        args.ports
    );
    ensure!(
        args.target.is_ipv4(),
        "--target must be an IPv4 address and port"
    );
    Ok(args)
}

/// The N-1 ports installed in bulk: host port `base + i` on every address, to a container address
/// of the target's /24 (as if they belonged to 200 different containers) on the target port.
fn fillers(args: &Args) -> Vec<Mapping> {
    let IpAddr::V4(target) = args.target.ip() else {
        unreachable!("checked in parse_args")
    };
    let net = u32::from(target) & 0xffff_ff00;
    (0..args.ports - 1)
        .map(|i| Mapping {
            proto: args.protos[0],
            host: SocketAddr::new(
                Ipv4Addr::UNSPECIFIED.into(),
                args.base_port + u16::try_from(i).expect("checked in parse_args"),
            ),
            container: SocketAddr::new(
                Ipv4Addr::from(net + 10 + (i % 200) as u32).into(),
                args.target.port(),
            ),
        })
        .collect()
}

/// The Nth port: one mapping per protocol, to `--target`.
fn last(args: &Args) -> Vec<Mapping> {
    let port = args.base_port + u16::try_from(args.ports - 1).expect("checked in parse_args");
    args.protos
        .iter()
        .map(|&proto| Mapping {
            proto,
            host: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            container: args.target,
        })
        .collect()
}

/// A firewall layout the tool can publish into.
trait Layer {
    fn bulk(&mut self, ports: &[Mapping]) -> Result<()>;
    fn publish(&mut self, ports: &[Mapping]) -> Result<()>;
    fn unpublish(&mut self, ports: &[Mapping]) -> Result<()>;
    /// Times the nft process of a publish alone, when the layout does more than run it (the
    /// kernel is left as it was).
    fn publish_nft_only(&mut self, _ports: &[Mapping]) -> Result<Option<f64>> {
        Ok(None)
    }
    /// DNAT rules or map elements present in the kernel.
    fn installed(&self) -> Result<usize>;
    fn remove(&mut self) -> Result<()>;
}

struct Berth {
    fw: Firewall<NftCommand>,
    state: FirewallState,
}

impl Berth {
    fn new(args: &Args) -> Result<Berth> {
        let subnet = match &args.subnet {
            Some(s) => s.clone(),
            None => format!("{}/24", mask24(args.target.ip())),
        };
        let mut state = FirewallState::default();
        state.bridges.insert(
            args.bridge.clone(),
            BridgeRules {
                subnets: vec![
                    subnet
                        .parse()
                        .with_context(|| format!("--subnet {subnet:?}: not a subnet"))?,
                ],
                ..BridgeRules::default()
            },
        );
        Ok(Berth {
            fw: Firewall::new(NftCommand::new()),
            state,
        })
    }
}

fn mask24(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) & 0xffff_ff00),
        IpAddr::V6(_) => unreachable!("checked in parse_args"),
    }
}

impl Layer for Berth {
    fn bulk(&mut self, ports: &[Mapping]) -> Result<()> {
        self.state.published.extend(ports.iter().copied());
        let applied = self.fw.apply(self.state.clone())?;
        ensure!(applied.full, "the first apply should replace the tables");
        Ok(())
    }

    fn publish(&mut self, ports: &[Mapping]) -> Result<()> {
        self.state.published.extend(ports.iter().copied());
        let applied = self.fw.publish(ports)?;
        ensure!(
            !applied.full && applied.commands == 2,
            "publishing should add the elements only, got {applied:?}"
        );
        Ok(())
    }

    fn unpublish(&mut self, ports: &[Mapping]) -> Result<()> {
        for m in ports {
            self.state.published.remove(m);
        }
        self.fw.unpublish(ports)?;
        Ok(())
    }

    fn publish_nft_only(&mut self, ports: &[Mapping]) -> Result<Option<f64>> {
        let before = ruleset::elements(&self.state);
        let mut after = self.state.clone();
        after.published.extend(ports.iter().copied());
        let after = ruleset::elements(&after);
        let (add, del) = (
            plan::incremental(&after, &before),
            plan::incremental(&before, &after),
        );
        let mut nft = NftCommand::new();
        let t = Instant::now();
        nft.apply(&add)?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        nft.apply(&del)?;
        Ok(Some(us))
    }

    fn installed(&self) -> Result<usize> {
        // Every published mapping is one element of the address map and one of the port map.
        let mut n = 0;
        for map in ["dnat4_any_addr", "dnat4_any_port"] {
            let out = nft_output(&["list", "map", "inet", "berth", map])?;
            // The declaration's `type ... : ...` line precedes the elements.
            if let Some((_, elems)) = out.split_once("elements = {") {
                n += elems.matches(" : ").count();
            }
        }
        Ok(n / 2)
    }

    fn remove(&mut self) -> Result<()> {
        Ok(self.fw.remove()?)
    }
}

/// The one-rule-per-port layout, generated here as nft text.
struct PerPort;

const PERPORT_TABLE: &str = "ip perport";

fn perport_rule(m: &Mapping) -> String {
    format!(
        "add rule {PERPORT_TABLE} ports {} dport {} dnat to {}\n",
        m.proto,
        m.host.port(),
        m.container
    )
}

impl Layer for PerPort {
    fn bulk(&mut self, ports: &[Mapping]) -> Result<()> {
        let mut s = format!(
            "add table {PERPORT_TABLE}\ndelete table {PERPORT_TABLE}\nadd table {PERPORT_TABLE}\n\
             add chain {PERPORT_TABLE} prerouting {{ type nat hook prerouting priority -100; policy accept; }}\n\
             add chain {PERPORT_TABLE} ports\n\
             add rule {PERPORT_TABLE} prerouting fib daddr type local jump ports\n"
        );
        for m in ports {
            s.push_str(&perport_rule(m));
        }
        nft_input(&s)
    }

    fn publish(&mut self, ports: &[Mapping]) -> Result<()> {
        nft_input(&ports.iter().map(perport_rule).collect::<String>())
    }

    fn unpublish(&mut self, ports: &[Mapping]) -> Result<()> {
        let listing = nft_output(&["-a", "list", "chain", "ip", "perport", "ports"])?;
        let mut cmds = String::new();
        for m in ports {
            let needle = format!("{} dport {} dnat", m.proto, m.host.port());
            for line in listing.lines().filter(|l| l.contains(&needle)) {
                let handle = line
                    .rsplit_once("# handle ")
                    .with_context(|| format!("no handle in {line:?}"))?
                    .1
                    .trim();
                cmds.push_str(&format!(
                    "delete rule {PERPORT_TABLE} ports handle {handle}\n"
                ));
            }
        }
        ensure!(
            !cmds.is_empty(),
            "the rule to unpublish is not in the chain"
        );
        nft_input(&cmds)
    }

    fn installed(&self) -> Result<usize> {
        let out = nft_output(&["list", "chain", "ip", "perport", "ports"])?;
        Ok(out.matches(" dnat to ").count())
    }

    fn remove(&mut self) -> Result<()> {
        nft_input(&format!(
            "add table {PERPORT_TABLE}\ndelete table {PERPORT_TABLE}\n"
        ))
    }
}

/// Runs `nft -f -` with `script` on stdin.
fn nft_input(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run nft")?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes());
    let out = child.wait_with_output().context("cannot wait for nft")?;
    if !out.status.success() {
        let first = script.lines().next().unwrap_or_default();
        bail!(
            "nft refused the batch starting with {first:?} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    written.context("cannot write the batch to nft")
}

fn nft_output(args: &[&str]) -> Result<String> {
    let out = Command::new("nft")
        .args(args)
        .output()
        .context("cannot run nft")?;
    ensure!(
        out.status.success(),
        "nft {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(args: &Args, layer: &mut dyn Layer) -> Result<String> {
    let (fill, nth) = (fillers(args), last(args));
    let t = Instant::now();
    layer.bulk(&fill)?;
    let bulk_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut us = Vec::with_capacity(args.samples);
    let mut nft_us = Vec::with_capacity(args.samples);
    for k in 0..args.samples {
        if let Some(t) = layer.publish_nft_only(&nth)? {
            nft_us.push(t);
        }
        let t = Instant::now();
        layer.publish(&nth)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if !(args.hold && k + 1 == args.samples) {
            layer.unpublish(&nth)?;
        }
    }
    if args.hold && args.samples == 0 {
        layer.publish(&nth)?;
    }
    let installed = layer.installed()?;
    let want = fill.len() + if args.hold { nth.len() } else { 0 };
    ensure!(
        installed == want,
        "{installed} DNAT entries in the kernel, expected {want}"
    );
    let stat = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.1}"));
    let protos: Vec<String> = args.protos.iter().map(|p| p.to_string()).collect();
    Ok(format!(
        "{{\"layout\":\"{}\",\"ports\":{},\"protos\":\"{}\",\"samples\":{},\"bulk_ms\":{:.1},\
         \"publish_us_median\":{},\"publish_us_min\":{},\"publish_us_max\":{},\
         \"publish_nft_us_median\":{},\"installed\":{}}}",
        match args.layout {
            Layout::Berth => "berth",
            Layout::PerPort => "per-port",
        },
        args.ports,
        protos.join(","),
        args.samples,
        bulk_ms,
        stat(median(&mut us)),
        stat(us.first().copied()),
        stat(us.last().copied()),
        stat(median(&mut nft_us)),
        installed,
    ))
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let mut layer: Box<dyn Layer> = match args.layout {
        Layout::Berth => Box::new(Berth::new(&args)?),
        Layout::PerPort => Box::new(PerPort),
    };
    let result = run(&args, layer.as_mut());
    if let Ok(line) = &result {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        if args.hold {
            // Until the caller closes our stdin (or dies).
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
    }
    let removed = layer.remove();
    result?;
    removed
}
