//! Any bytes as a query to the embedded resolver, as one UDP datagram and as a TCP stream of
//! length-prefixed messages, through the whole answer path with real records: it never panics,
//! every reply echoes the query's ID, is marked a response and parses as DNS. The same bytes as
//! an upstream's answer: matching them against a query never panics, and a match has its ID.
#![no_main]

use std::sync::OnceLock;

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use netcore::dns::answer::split_frame;
use netcore::dns::forward::answers;
use netcore::dns::{Outcome, Records, Transport, handle};
use netcore::network::fixtures::{bridge_network, endpoint};
use netcore::network::{ContainerLink, State};

fn records() -> &'static Records {
    static R: OnceLock<Records> = OnceLock::new();
    R.get_or_init(|| {
        let mut s = State::default();
        for (name, internal) in [("front", false), ("sealed", true)] {
            s.networks.insert(name.into(), bridge_network(name, internal));
        }
        for (i, (c, net, aliases)) in [
            ("web", "front", &["www", "pool"][..]),
            ("db", "front", &["pool"][..]),
            ("iso", "sealed", &[][..]),
        ]
        .into_iter()
        .enumerate()
        {
            let (v4, v6) = (format!("10.0.0.{}", i + 2), format!("fd00::{}", i + 2));
            let mut ep = endpoint(c, net, &v4, Some(&v6), aliases);
            ep.links.push(ContainerLink {
                container: "db".into(),
                alias: "primary".into(),
            });
            s.endpoints.insert(ep.id.clone(), ep);
        }
        Records::build(&s, &["127.0.0.1:53".parse().unwrap()])
    })
}

fn check(query: &[u8], transport: Transport, out: &mut Vec<u8>) {
    for who in ["web", "iso", "stranger"] {
        if handle(records(), who, query, transport, 600, out) == Outcome::Reply {
            assert!(out.len() >= 12 && out[..2] == query[..2] && out[2] & 0x80 != 0);
            if transport == Transport::Udp {
                assert!(out.len() <= 65_535);
            }
            if let Err(e) = Message::from_vec(out) {
                panic!("reply does not parse: {e}: {out:02x?}");
            }
        }
    }
}

fn upstream_query() -> &'static [u8] {
    static Q: OnceLock<Vec<u8>> = OnceLock::new();
    Q.get_or_init(|| {
        netcore::dns::fixtures::query(
            0x4242,
            "Web.example",
            hickory_proto::rr::RecordType::A,
            Some(1232),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let q = upstream_query();
    if answers(q, data) {
        assert!(data[..2] == q[..2] && data[2] & 0x80 != 0);
    }
    let _ = answers(data, data);
    let mut out = Vec::new();
    check(data, Transport::Udp, &mut out);
    let mut rest = data;
    while let Some((msg, used)) = split_frame(rest) {
        check(msg, Transport::Tcp, &mut out);
        rest = &rest[used..];
    }
});
