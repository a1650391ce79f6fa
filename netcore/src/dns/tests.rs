//! The resolver's decisions over a fixed set of networks: what each container sees, how answers
//! are rotated, truncated and encoded, and what malformed input gets.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use proptest::prelude::*;

use super::answer::{Outcome, Transport, arpa_addr, handle, split_frame};
use super::fixtures;
use super::records::Records;
use crate::network::fixtures::{bridge_network as network, endpoint};
use crate::network::{ContainerLink, State};

const UP: &str = "127.0.0.1:5353";

/// net1: web (v4+v6), db1 and db2 (alias db), client (links db1 as primary);
/// net2: other; internal network int: iso; default bridge: legacy.
fn state() -> State {
    let mut s = State::default();
    for (n, internal) in [
        ("net1", false),
        ("net2", false),
        ("int", true),
        ("bridge", false),
    ] {
        s.networks.insert(n.into(), network(n, internal));
    }
    let mut client = endpoint("client", "net1", "10.1.0.5", None, &[]);
    client.links.push(ContainerLink {
        container: "db1".into(),
        alias: "primary".into(),
    });
    let mut other = endpoint("other", "net2", "10.2.0.2", None, &[]);
    other.dns_servers.push("127.0.0.1:6000".parse().unwrap());
    for ep in [
        endpoint("web", "net1", "10.1.0.2", Some("fd00:1::2"), &["www"]),
        endpoint("db1", "net1", "10.1.0.3", None, &["db"]),
        endpoint("db2", "net1", "10.1.0.4", None, &["db"]),
        client,
        other,
        endpoint("iso", "int", "10.3.0.2", None, &[]),
        endpoint("legacy", "bridge", "172.17.0.2", None, &[]),
    ] {
        s.endpoints.insert(ep.id.clone(), ep);
    }
    s
}

fn records() -> Records {
    Records::build(&state(), &[UP.parse().unwrap()])
}

fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    fixtures::query(0x4242, name, rtype, edns)
}

fn ask(r: &Records, who: &str, q: &[u8], t: Transport) -> (Outcome, Option<Message>) {
    let mut out = Vec::new();
    let outcome = handle(r, who, q, t, 600, &mut out);
    let msg = (outcome == Outcome::Reply).then(|| Message::from_vec(&out).expect("reply parses"));
    (outcome, msg)
}

fn answer(r: &Records, who: &str, name: &str, rtype: RecordType) -> Message {
    match ask(r, who, &query(name, rtype, None), Transport::Udp) {
        (Outcome::Reply, Some(m)) => m,
        (o, _) => panic!("{who} asking {name}: {o:?}"),
    }
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_container_name_resolves_for_a_neighbour() {
    let r = records();
    let m = answer(&r, "client", "WeB", RecordType::A);
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.metadata.recursion_desired);
    assert_eq!(addrs(&m), [ip("10.1.0.2")]);
    assert_eq!(m.answers[0].ttl, 600);
    // The question comes back as asked, case included.
    assert_eq!(m.queries[0].name().to_string(), "WeB.");
    assert_eq!(m.answers[0].name.to_string(), "WeB.");
    assert_eq!(
        addrs(&answer(&r, "client", "web.net1.", RecordType::A)),
        [ip("10.1.0.2")]
    );
    assert_eq!(
        addrs(&answer(&r, "client", "www", RecordType::A)),
        [ip("10.1.0.2")]
    );
    assert_eq!(
        addrs(&answer(&r, "client", "web", RecordType::AAAA)),
        [ip("fd00:1::2")]
    );
}

#[test]
fn a_name_without_the_asked_family_is_nodata_not_nxdomain() {
    let m = answer(&records(), "client", "db1", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    let m = answer(&records(), "client", "db1", RecordType::MX);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn a_shared_alias_answers_every_address_rotated_per_query() {
    let r = records();
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let got = addrs(&answer(&r, "client", "db", RecordType::A));
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, [ip("10.1.0.3"), ip("10.1.0.4")]);
        firsts.push(got[0]);
    }
    assert_ne!(firsts[0], firsts[1]);
    assert_eq!(firsts[0], firsts[2]);
}

#[test]
fn link_aliases_resolve_only_for_the_linking_container() {
    let r = records();
    assert_eq!(
        addrs(&answer(&r, "client", "primary", RecordType::A)),
        [ip("10.1.0.3")]
    );
    let (o, _) = ask(
        &r,
        "web",
        &query("primary", RecordType::A, None),
        Transport::Udp,
    );
    assert_eq!(
        o,
        Outcome::Forward([UP.parse::<SocketAddr>().unwrap()].into())
    );
}

#[test]
fn ptr_names_container_dot_network() {
    let r = records();
    for (rev, want) in [
        ("2.0.1.10.in-addr.arpa", "web.net1."),
        (
            "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.",
            "web.net1.",
        ),
    ] {
        let m = answer(&r, "client", rev, RecordType::PTR);
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_string(), want),
            other => panic!("{other:?}"),
        }
    }
    // Another network's address is not this container's to name.
    let (o, _) = ask(
        &r,
        "other",
        &query("2.0.1.10.in-addr.arpa", RecordType::PTR, None),
        Transport::Udp,
    );
    assert!(matches!(o, Outcome::Forward(_)), "{o:?}");
}

#[test]
fn names_of_other_networks_are_forwarded_to_the_askers_upstreams() {
    let r = records();
    let (o, _) = ask(
        &r,
        "other",
        &query("web", RecordType::A, None),
        Transport::Udp,
    );
    assert_eq!(
        o,
        Outcome::Forward(["127.0.0.1:6000".parse::<SocketAddr>().unwrap()].into())
    );
    let (o, _) = ask(
        &r,
        "client",
        &query("example.com", RecordType::A, None),
        Transport::Udp,
    );
    assert_eq!(
        o,
        Outcome::Forward([UP.parse::<SocketAddr>().unwrap()].into())
    );
}

#[test]
fn internal_networks_get_nxdomain_for_outside_names() {
    let m = answer(&records(), "iso", "example.com", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        addrs(&answer(&records(), "iso", "iso", RecordType::A)),
        [ip("10.3.0.2")]
    );
}

#[test]
fn without_upstreams_outside_names_fail_fast() {
    let r = Records::build(&state(), &[]);
    let m = answer(&r, "client", "example.com", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn default_bridge_containers_are_not_served() {
    let r = records();
    assert!(!r.listeners.contains_key("legacy"));
    let m = answer(&r, "legacy", "web", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!r.names.contains_key(&Name::from_ascii("legacy.").unwrap()));
}

#[test]
fn malformed_queries_get_formerr_notimp_or_nothing() {
    let r = records();
    let mut out = Vec::new();
    assert_eq!(
        handle(&r, "client", &[0u8; 11], Transport::Udp, 600, &mut out),
        Outcome::Drop
    );
    let mut resp = query("web", RecordType::A, None);
    resp[2] |= 0x80;
    assert_eq!(
        handle(&r, "client", &resp, Transport::Udp, 600, &mut out),
        Outcome::Drop
    );

    let mut no_question = query("web", RecordType::A, None);
    no_question[5] = 0;
    let (_, m) = ask(&r, "client", &no_question, Transport::Udp);
    assert_eq!(m.unwrap().metadata.response_code, ResponseCode::FormErr);

    let mut cut = query("web", RecordType::A, None);
    cut.truncate(14);
    let (_, m) = ask(&r, "client", &cut, Transport::Udp);
    assert_eq!(m.unwrap().metadata.response_code, ResponseCode::FormErr);

    let mut update = query("web", RecordType::A, None);
    update[2] = (update[2] & 0x87) | (5 << 3);
    let (_, m) = ask(&r, "client", &update, Transport::Udp);
    let m = m.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(m.metadata.id, 0x4242);
}

fn many(n: u32) -> State {
    let mut s = State::default();
    s.networks.insert("big".into(), network("big", false));
    for i in 0..n {
        let mut ep = endpoint(
            &format!("w{i}"),
            "big",
            &format!("10.9.{}.{}", i / 250, i % 250 + 2),
            None,
            &["pool"],
        );
        ep.container_name = format!("w{i}");
        s.endpoints.insert(ep.id.clone(), ep);
    }
    s
}

#[test]
fn answers_that_do_not_fit_set_tc_and_edns_or_tcp_lift_the_limit() {
    let r = Records::build(&many(60), &[]);
    let (_, m) = ask(
        &r,
        "w0",
        &query("pool", RecordType::A, None),
        Transport::Udp,
    );
    let m = m.unwrap();
    assert!(m.metadata.truncation);
    assert!(m.answers.len() < 60 && !m.answers.is_empty());
    assert!(m.to_vec().unwrap().len() <= 512);

    let (_, m) = ask(
        &r,
        "w0",
        &query("pool", RecordType::A, Some(4096)),
        Transport::Udp,
    );
    let m = m.unwrap();
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 60);
    assert_eq!(
        m.edns.as_ref().map(|e| e.max_payload()),
        Some(super::answer::EDNS_PAYLOAD)
    );

    let (_, m) = ask(
        &r,
        "w0",
        &query("pool", RecordType::A, None),
        Transport::Tcp,
    );
    assert_eq!(m.unwrap().answers.len(), 60);
}

#[test]
fn a_compressed_question_is_formerr_and_the_reply_still_parses() {
    // Found by the dns_query fuzz target: "web" then a pointer back into the header. Echoed
    // behind the reply's header the pointer would read different bytes.
    // The pointer reads "\x01" from the query's ID and flags; in an NXDOMAIN reply (the asker is
    // on an internal network) the same offsets hold a reserved label type.
    let q = [
        0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, b'w', b'e',
        b'b', 0xc0, 0x01, 0x00, 0x01, 0x00, 0x01,
    ];
    let (o, m) = ask(&records(), "iso", &q, Transport::Udp);
    assert_eq!(o, Outcome::Reply);
    assert_eq!(
        m.expect("reply parses").metadata.response_code,
        ResponseCode::FormErr
    );
    let (_, m) = ask(&records(), "client", &q, Transport::Tcp);
    assert_eq!(
        m.expect("reply parses").metadata.response_code,
        ResponseCode::FormErr
    );
}

#[test]
fn reverse_names_parse_strictly() {
    let n = |s: &str| Name::from_ascii(s).unwrap();
    assert_eq!(arpa_addr(&n("4.3.2.1.in-addr.arpa.")), Some(ip("1.2.3.4")));
    assert_eq!(arpa_addr(&n("4.3.2.1.IN-ADDR.ARPA")), Some(ip("1.2.3.4")));
    assert_eq!(arpa_addr(&n("3.2.1.in-addr.arpa.")), None);
    assert_eq!(arpa_addr(&n("256.3.2.1.in-addr.arpa.")), None);
    assert_eq!(arpa_addr(&n("04.3.2.1.in-addr.arpa.")), None);
    assert_eq!(arpa_addr(&n("web.net1.")), None);
}

#[test]
fn tcp_frames_split_only_when_whole() {
    assert_eq!(split_frame(&[0]), None);
    assert_eq!(split_frame(&[0, 3, 1, 2]), None);
    assert_eq!(
        split_frame(&[0, 3, 1, 2, 3, 9]),
        Some((&[1u8, 2, 3][..], 5))
    );
    assert_eq!(split_frame(&[0, 0, 7]), Some((&[][..], 2)));
}

proptest! {
    #[test]
    fn no_input_panics_and_every_reply_echoes_the_id(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let r = records();
        let mut out = Vec::new();
        for t in [Transport::Udp, Transport::Tcp] {
            if handle(&r, "client", &bytes, t, 600, &mut out) == Outcome::Reply {
                prop_assert!(out.len() >= 12);
                prop_assert_eq!(&out[..2], &bytes[..2]);
                prop_assert!(out[2] & 0x80 != 0);
            }
        }
    }

    #[test]
    fn mangled_real_queries_never_panic(pos in 0usize..40, val in any::<u8>(), cut in 0usize..45) {
        let r = records();
        let mut q = query("db", RecordType::A, Some(1232));
        if pos < q.len() { q[pos] = val; }
        q.truncate(cut.max(12));
        let mut out = Vec::new();
        let _ = handle(&r, "client", &q, Transport::Udp, 600, &mut out);
    }
}

#[test]
fn trailing_bytes_or_cut_records_are_formerr() {
    let r = records();
    let mut q = query("web", RecordType::A, Some(1232));
    q.push(0);
    let (_, m) = ask(&r, "client", &q, Transport::Udp);
    assert_eq!(m.unwrap().metadata.response_code, ResponseCode::FormErr);
    let mut q = query("web", RecordType::A, Some(1232));
    q.truncate(q.len() - 3);
    let (_, m) = ask(&r, "client", &q, Transport::Udp);
    assert_eq!(m.unwrap().metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn an_upstream_answer_is_taken_only_with_the_id_and_the_question() {
    use super::forward::answers;
    let q = fixtures::query(0x1234, "Example.test", RecordType::A, None);
    let reply = |id: u16, name: &str, rtype: RecordType| {
        let mut m = Message::from_vec(&fixtures::query(id, name, rtype, None)).unwrap();
        m.metadata.message_type = MessageType::Response;
        m.to_vec().unwrap()
    };
    assert!(answers(&q, &reply(0x1234, "Example.test", RecordType::A)));
    // 0x20 case: the name without case.
    assert!(answers(&q, &reply(0x1234, "eXAMPLE.TEST", RecordType::A)));
    assert!(!answers(&q, &reply(0x1235, "Example.test", RecordType::A)));
    assert!(!answers(&q, &reply(0x1234, "evil.test", RecordType::A)));
    assert!(!answers(&q, &reply(0x1234, "Example.tesu", RecordType::A)));
    assert!(!answers(
        &q,
        &reply(0x1234, "Example.test", RecordType::AAAA)
    ));
    // A query is not an answer; nor is a response without its question, unless it is a bare
    // error (FORMERR, SERVFAIL, NOTIMP, REFUSED) with nothing in it.
    assert!(!answers(&q, &q));
    let mut bare = reply(0x1234, "Example.test", RecordType::A);
    bare[5] = 0;
    bare.truncate(12);
    assert!(!answers(&q, &bare), "a bare NOERROR");
    for rcode in [1u8, 2, 4, 5] {
        bare[3] = (bare[3] & 0xf0) | rcode;
        assert!(answers(&q, &bare), "rcode {rcode}");
    }
    bare[3] = (bare[3] & 0xf0) | 3;
    assert!(!answers(&q, &bare), "a bare NXDOMAIN could deny a name");
    bare[3] = (bare[3] & 0xf0) | 2;
    bare[7] = 1;
    assert!(!answers(&q, &bare), "records without a question");
    // Cut anywhere: never taken, never a panic.
    let full = reply(0x1234, "Example.test", RecordType::A);
    for n in 0..full.len() {
        assert!(!answers(&q, &full[..n]), "{n}");
    }
}
