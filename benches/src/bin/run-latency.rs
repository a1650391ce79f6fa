//! Times berth's `docker run --rm IMAGE true` (create, start through berth-shim and the OCI
//! runtime, wait, remove) and starting N containers that each publish a port, with the engine
//! held in this process as berthd will hold it. Run as root inside a throwaway namespace;
//! benches/run-compare.sh drives it next to Docker and podman.
//!
//! Usage: run-latency --root DIR --network bridge|none [--samples K] [--containers N]
//! Prints one JSON line: {"network", "samples", "run_ms_median", "run_ms_min", "run_ms_max",
//! "containers", "start_all_ms"}.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use engine::container::{CreateOptions, Engine, EngineConfig};
use engine::image::layer::fixtures::busybox_rootfs;
use engine::image::store::ImageStore;

const IMAGE: &str = "berth-bench/busybox";

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let (mut root, mut network, mut samples, mut containers) =
        (None, "bridge".to_string(), 20usize, 0usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().context("missing value");
        match a.as_str() {
            "--root" => root = Some(PathBuf::from(val()?)),
            "--network" => network = val()?,
            "--samples" => samples = val()?.parse()?,
            "--containers" => containers = val()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let root = root.context("--root DIR is required")?;
    let me = std::env::current_exe()?;
    let shim = me.with_file_name("berth-shim");
    ensure!(
        shim.exists(),
        "{} missing: cargo build --release -p engine --bin berth-shim",
        shim.display()
    );
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("resolv.conf"), "nameserver 127.0.0.1\n")?;
    ImageStore::open(&root.join("data/image"))?.import(&busybox_rootfs()?[..], Some(IMAGE))?;
    let mut e = Engine::open(EngineConfig {
        data_root: root.join("data"),
        exec_root: root.join("run"),
        runtime: None,
        runtimes: Default::default(),
        shim,
        proxy: me.with_file_name("berth-proxy"),
        resolv_conf: root.join("resolv.conf"),
        cgroup_parent: "berth-bench".into(),
        slirp: me.with_file_name("berth-slirp"),
    })
    .await?;
    let run = |name: Option<String>, cmd: &[&str], publish: Vec<String>, rm: bool| CreateOptions {
        name,
        image: IMAGE.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        network: Some(network.clone()),
        publish: publish
            .iter()
            .map(|p| p.parse().expect("a -p spec"))
            .collect(),
        auto_remove: rm,
        ..Default::default()
    };
    let mut times = Vec::new();
    for i in 0..samples + 2 {
        let t0 = Instant::now();
        let id = e.create(run(None, &["true"], vec![], true))?;
        e.start(&id).await?;
        let (code, _) = e.wait(&id).await?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        ensure!(code == 0, "true exited {code}");
        ensure!(e.get(&id).is_err(), "--rm removed the container");
        if i >= 2 {
            times.push(ms); // the first two warm the page cache and the runtime
        }
    }
    let start_all_ms = if containers > 0 {
        let t0 = Instant::now();
        let mut ids = Vec::new();
        for i in 0..containers {
            let id = e.create(run(
                None,
                &["sleep", "600"],
                vec![format!("{}:80", 30000 + i)],
                false,
            ))?;
            e.start(&id).await?;
            ids.push(id);
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        for id in ids {
            e.remove(&id, true, true).await?;
        }
        Some(ms)
    } else {
        None
    };
    let min = times.iter().copied().fold(f64::MAX, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "{{\"network\":\"{network}\",\"samples\":{samples},\"run_ms_median\":{:.1},\"run_ms_min\":{min:.1},\"run_ms_max\":{max:.1},\"containers\":{containers},\"start_all_ms\":{}}}",
        median(&mut times),
        start_all_ms.map_or("null".into(), |m| format!("{m:.0}"))
    );
    Ok(())
}
