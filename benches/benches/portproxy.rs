//! criterion benches of the proxy's pure parser and its per-connection set-up path.
//!
//! `connection_setup/*` measures connect + one echoed byte + close on loopback, directly and through
//! the proxy, so the difference is what the proxy adds per connection (accept, upstream connect,
//! relay start, teardown).

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use portproxy::{PortSpec, Proxy, ProxyConfig, PublishRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("spec_parse");
    for s in [
        "8080:80",
        "127.0.0.1:8000-8100:8000-8100/udp",
        "[fd00::1]:443:8443/tcp",
    ] {
        g.bench_function(s, |b| b.iter(|| black_box(s).parse::<PortSpec>().unwrap()));
    }
    let spec: PortSpec = "8000-8999:8000-8999".parse().unwrap();
    let ip = "172.17.0.2".parse().unwrap();
    g.bench_function("expand_1000_ports", |b| {
        b.iter(|| black_box(&spec).mappings(ip))
    });
    g.finish();
}

async fn one_round_trip(to: SocketAddr) {
    let mut s = tokio::net::TcpStream::connect(to).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
}

fn setup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (backend, front) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    if s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&b).await;
                    }
                });
            }
        });
        let proxy = Proxy::new(ProxyConfig::default());
        let info = proxy
            .publish(&PublishRequest {
                spec: format!("127.0.0.1::{}", backend.port()).parse().unwrap(),
                container_ip: backend.ip(),
                transparent: false,
            })
            .unwrap();
        std::mem::forget(proxy); // keep serving for the whole bench
        (backend, info.mappings[0].host)
    });
    let mut g = c.benchmark_group("connection_setup");
    g.bench_function("direct", |b| {
        b.to_async(&rt).iter(|| one_round_trip(backend))
    });
    g.bench_function("through_proxy", |b| {
        b.to_async(&rt).iter(|| one_round_trip(front))
    });
    g.finish();
}

criterion_group!(benches, parse, setup);
criterion_main!(benches);
