//! criterion benches of netcore's pure parts: firewall rule generation and IPAM, with 10, 1,000
//! and 10,000 endpoints and published ports.
//!
//! - `firewall_full/N`: `ruleset::elements` + `plan::full` for a state with N endpoints (on
//!   bridges of up to 250, every other one `icc=false`) and N published ports: what berth computes
//!   when it (re)builds its tables whole.
//! - `firewall_publish/plan_incremental/N`: `plan::incremental` for one more port on top of N,
//!   elements of both states precomputed; `firewall_publish/apply_cpu/N`: everything
//!   `Firewall::apply` does on the CPU to publish the N+1st port (the element changes between
//!   the two states, the batch, the JSON nft reads), i.e. the
//!   per-publish cost before the nft process.
//! - `ipam_allocate/N`: N dynamic allocations in a fresh /16 (a new `Ipam` per iteration).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use netcore::firewall::plan;
use netcore::firewall::ruleset::{element_changes, elements};
use netcore::firewall::{BridgeRules, FirewallState};
use netcore::ipam::{Ipam, SubnetRequest};
use portproxy::spec::{Mapping, Protocol};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// N endpoints, 250 per bridge (bridge k has 10.(100 + k / 256).(k % 256).0/24; every other
/// bridge is `icc=false`), each with one published port.
fn state(n: usize) -> FirewallState {
    let mut s = FirewallState::default();
    let per_bridge = 250;
    for k in 0..n.div_ceil(per_bridge) {
        s.bridges.insert(
            format!("br-{k:012x}"),
            BridgeRules {
                subnets: vec![
                    format!("10.{}.{}.0/24", 100 + k / 256, k % 256)
                        .parse()
                        .unwrap(),
                ],
                icc: k % 2 == 0,
                ..BridgeRules::default()
            },
        );
    }
    for i in 0..n {
        let k = i / per_bridge;
        s.ports
            .insert(format!("veth{i:07x}"), format!("br-{k:012x}"));
        s.published.insert(mapping(i));
    }
    s
}

/// Endpoint i's published port: host port 10000 + i on every address to its address, port 80.
fn mapping(i: usize) -> Mapping {
    let k = i / 250;
    let ip = Ipv4Addr::new(
        10,
        (100 + k / 256) as u8,
        (k % 256) as u8,
        (2 + i % 250) as u8,
    );
    Mapping {
        proto: Protocol::Tcp,
        host: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), (10_000 + i) as u16),
        container: SocketAddr::new(IpAddr::V4(ip), 80),
    }
}

fn firewall_full(c: &mut Criterion) {
    let mut g = c.benchmark_group("firewall_full");
    for n in SIZES {
        let s = state(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &s, |b, s| {
            b.iter(|| plan::full(&elements(black_box(s)), s.drop_forwarded))
        });
    }
    g.finish();
}

fn firewall_publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("firewall_publish");
    for n in SIZES {
        let before = state(n);
        let mut after = before.clone();
        after.published.insert(mapping(n));
        let (eb, ea) = (elements(&before), elements(&after));
        g.bench_with_input(
            BenchmarkId::new("plan_incremental", n),
            &(&ea, &eb),
            |b, (ea, eb)| b.iter(|| plan::incremental(black_box(ea), black_box(eb))),
        );
        g.bench_with_input(
            BenchmarkId::new("apply_cpu", n),
            &(&after, &before),
            |b, (after, before)| {
                b.iter(|| {
                    let (removed, added) = element_changes(black_box(after), black_box(before));
                    let batch = plan::changes(&removed, &added);
                    serde_json::to_vec(&batch.to_nftables()).unwrap()
                })
            },
        );
    }
    g.finish();
}

fn ipam_allocate(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipam_allocate");
    g.sample_size(20);
    for n in SIZES {
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || {
                    let mut ipam = Ipam::with_default_bridge();
                    let req = SubnetRequest {
                        subnet: Some("10.20.0.0/16".parse().unwrap()),
                        ..SubnetRequest::default()
                    };
                    ipam.create("bench", &req, None).unwrap();
                    ipam
                },
                |mut ipam| {
                    for _ in 0..n {
                        black_box(ipam.allocate("bench", None, None).unwrap());
                    }
                    ipam
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, firewall_full, firewall_publish, ipam_allocate);
criterion_main!(benches);
