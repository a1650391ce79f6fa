//! Times attaching a container that publishes N ports to the default bridge through netcore's
//! `NetworkManager` (address, veth into the namespace, routes, firewall, records): berth's share
//! of `docker run -p A-B:A-B`. Run as root inside a throwaway network namespace;
//! benches/container-ports-compare.sh drives it next to a real dockerd.
//!
//! Usage: net-attach --ports N [--samples K]
//! Prints one JSON line: {"ports", "samples", "attach_ms_median", "attach_ms_min",
//! "attach_ms_max", "detach_ms_median", "elements"}.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use netcore::firewall::nft::NftCommand;
use netcore::link::RtNetlink;
use netcore::network::{AttachRequest, NetworkManager, Sysctl};

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    ensure!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut ports = 1000u32;
    let mut samples = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().context("missing value");
        match a.as_str() {
            "--ports" => ports = val()?.parse()?,
            "--samples" => samples = val()?.parse()?,
            other => bail!("unknown argument {other:?}: expected --ports N [--samples K]"),
        }
    }
    ensure!(
        (1..=30000).contains(&ports),
        "--ports {ports}: expected 1 to 30000"
    );
    let dir = std::env::temp_dir().join(format!("berth-net-attach-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut mgr =
        NetworkManager::open(&dir, RtNetlink::new(), NftCommand::new(), Sysctl::default()).await?;
    let spec = format!("20000-{}:20000-{}", 20000 + ports - 1, 20000 + ports - 1);
    let (mut attach, mut detach) = (Vec::new(), Vec::new());
    let mut elements = 0;
    for i in 0..samples {
        let ns = format!("net-attach-{}-{i}", std::process::id());
        sh(&["ip", "netns", "add", &ns])?;
        let req = AttachRequest {
            container: format!("{ns}-id"),
            container_name: ns.clone(),
            ns: Some(PathBuf::from(format!("/run/netns/{ns}"))),
            ports: vec![spec.parse()?],
            ..AttachRequest::default()
        };
        let t = Instant::now();
        mgr.attach("bridge", req).await?;
        attach.push(t.elapsed().as_secs_f64() * 1e3);
        elements = sh(&["nft", "list", "map", "inet", "berth", "dnat4_any_port"])?
            .matches(" : ")
            .count()
            - 1; // the type line has one too
        let t = Instant::now();
        mgr.detach("bridge", &ns).await?;
        detach.push(t.elapsed().as_secs_f64() * 1e3);
        sh(&["ip", "netns", "del", &ns])?;
    }
    mgr.teardown_all().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let (min, max) = (
        attach.iter().copied().fold(f64::INFINITY, f64::min),
        attach.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "{{\"ports\": {ports}, \"samples\": {samples}, \"attach_ms_median\": {:.1}, \"attach_ms_min\": {min:.1}, \"attach_ms_max\": {max:.1}, \"detach_ms_median\": {:.1}, \"elements\": {elements}}}",
        median(&mut attach),
        median(&mut detach)
    );
    Ok(())
}
