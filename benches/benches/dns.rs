//! criterion benches of the embedded resolver's lookup-and-encode path (`dns::handle`: parse the
//! query, find the name in the asker's scope, write the reply into a reused buffer), with 10,
//! 1,000 and 10,000 containers on one network, and of building the records snapshot a change
//! swaps in.
//!
//! - `dns_answer/name/N`: A query for one container's name.
//! - `dns_answer/alias8/N`: A query for an alias 8 containers share (8 answers, rotated).
//! - `dns_answer/ptr/N`: PTR query for a container address.
//! - `dns_answer/outside/N`: a name no network knows: the decision to forward.
//! - `dns_records_build/N`: `Records::build` for N containers (the cost of one change).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hickory_proto::rr::RecordType;
use netcore::dns::{Outcome, Records, Transport, handle};
use netcore::network::State;
use netcore::network::fixtures::{bridge_network, endpoint};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// N containers c0..cN-1 on network `net` (10.x.y.z), the first 8 sharing the alias `pool`.
fn state(n: usize) -> State {
    let mut s = State::default();
    s.networks
        .insert("net".into(), bridge_network("net", false));
    for i in 0..n {
        let v4 = format!("10.{}.{}.{}", 1 + i / 65_536, (i / 256) % 256, i % 256);
        let aliases: &[&str] = if i < 8 { &["pool"] } else { &[] };
        let ep = endpoint(&format!("c{i}"), "net", &v4, None, aliases);
        s.endpoints.insert(ep.id.clone(), ep);
    }
    s
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    netcore::dns::fixtures::query(0x1234, name, rtype, None)
}

fn answer(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns_answer");
    for n in SIZES {
        let records = Records::build(&state(n), &["127.0.0.1:53".parse().unwrap()]);
        let target = n / 2;
        let last = format!("c{target}");
        let cases = [
            ("name", query(&last, RecordType::A), true),
            ("alias8", query("pool", RecordType::A), true),
            (
                "ptr",
                query(
                    &format!(
                        "{}.{}.{}.10.in-addr.arpa",
                        target % 256,
                        (target / 256) % 256,
                        1 + target / 65_536
                    ),
                    RecordType::PTR,
                ),
                true,
            ),
            ("outside", query("example.com", RecordType::A), false),
        ];
        let mut out = Vec::with_capacity(4096);
        for (case, q, local) in cases {
            let o = handle(&records, "c0", &q, Transport::Udp, 600, &mut out);
            assert_eq!(o == Outcome::Reply, local, "{case}/{n}: {o:?}");
            g.bench_with_input(BenchmarkId::new(case, n), &q, |b, q| {
                b.iter(|| {
                    black_box(handle(
                        &records,
                        "c0",
                        black_box(q),
                        Transport::Udp,
                        600,
                        &mut out,
                    ))
                })
            });
        }
    }
    g.finish();
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns_records_build");
    g.sample_size(10);
    for n in SIZES {
        let s = state(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &s, |b, s| {
            b.iter(|| Records::build(black_box(s), &[]))
        });
    }
    g.finish();
}

criterion_group!(benches, answer, build);
criterion_main!(benches);
