//! The embedded resolver against real namespaces: networks made by the network manager, namespaces
//! standing in for containers asking 127.0.0.11, and fake upstream resolvers on the outer
//! namespace's loopback that this test starts. Run through scripts/netns-test.sh.

#[allow(dead_code)]
mod manager_support;
#[path = "../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use manager_support::{Manager, container, open, req, rt, state_dir};
use netcore::dns::{Resolver, ResolverConfig};
use netcore::network::{AttachRequest, CreateRequest};
use netns_support::{Netns, enabled};

/// What a fake upstream does with a name.
#[derive(Clone, Copy)]
enum Behaviour {
    /// One A record.
    Answer(Ipv4Addr),
    /// Over UDP a truncated empty answer; over TCP `n` A records.
    Big(usize),
    /// Nothing at all.
    Silent,
    /// Over UDP first two forgeries (one with another ID, one with the right ID for another
    /// name, both saying 6.6.6.6), then one A record; over TCP just the A record.
    Forged(Ipv4Addr),
}

/// A resolver on 127.0.0.1 (UDP and TCP on one port) that answers from a table, NXDOMAIN
/// otherwise, and counts what it was asked over which protocol.
struct Upstream {
    addr: SocketAddr,
    udp: Arc<AtomicUsize>,
    tcp: Arc<AtomicUsize>,
    /// The last reply it sent, byte for byte.
    last: Arc<Mutex<Vec<u8>>>,
    /// The ID of every query it got over UDP.
    ids: Arc<Mutex<Vec<u16>>>,
}

fn respond(q: &[u8], table: &HashMap<String, Behaviour>, tcp: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(q).ok()?;
    let query = req.queries.first()?.clone();
    let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    let name = query.name().clone();
    m.add_query(query);
    match table.get(&name.to_ascii().to_lowercase()) {
        Some(Behaviour::Silent) => return None,
        Some(Behaviour::Answer(ip) | Behaviour::Forged(ip)) => {
            m.add_answer(Record::from_rdata(name, 42, RData::A(A(*ip))));
        }
        Some(Behaviour::Big(_)) if !tcp => m.metadata.truncation = true,
        Some(Behaviour::Big(n)) => {
            for i in 0..*n {
                let ip = Ipv4Addr::new(198, 51, 100, i as u8);
                m.add_answer(Record::from_rdata(name.clone(), 42, RData::A(A(ip))));
            }
        }
        None => m.metadata.response_code = ResponseCode::NXDomain,
    }
    m.to_vec().ok()
}

/// What [`Behaviour::Forged`] sends before the real answer.
fn forgeries(q: &[u8], table: &HashMap<String, Behaviour>) -> Vec<Vec<u8>> {
    let Ok(req) = Message::from_vec(q) else {
        return Vec::new();
    };
    let Some(query) = req.queries.first() else {
        return Vec::new();
    };
    if !matches!(
        table.get(&query.name().to_ascii().to_lowercase()),
        Some(Behaviour::Forged(_))
    ) {
        return Vec::new();
    }
    let evil = Ipv4Addr::new(6, 6, 6, 6);
    let forge = |id: u16, name: hickory_proto::rr::Name| {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.add_query(hickory_proto::op::Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(name, 42, RData::A(A(evil))));
        m.to_vec().unwrap()
    };
    vec![
        forge(req.metadata.id.wrapping_add(1), query.name().clone()),
        forge(req.metadata.id, "evil.test.".parse().unwrap()),
    ]
}

impl Upstream {
    fn start(table: &[(&str, Behaviour)]) -> Upstream {
        let table: HashMap<String, Behaviour> =
            table.iter().map(|(n, b)| (format!("{n}."), *b)).collect();
        let udp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp_sock.local_addr().unwrap();
        let tcp_sock = std::net::TcpListener::bind(addr).unwrap();
        let up = Upstream {
            addr,
            udp: Arc::default(),
            tcp: Arc::default(),
            last: Arc::default(),
            ids: Arc::default(),
        };
        let (count, last, t) = (up.udp.clone(), up.last.clone(), table.clone());
        let ids = up.ids.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = udp_sock.recv_from(&mut buf) {
                count.fetch_add(1, Ordering::Relaxed);
                let q = &buf[..n];
                if n >= 2 {
                    ids.lock().unwrap().push(u16::from_be_bytes([q[0], q[1]]));
                }
                for forged in forgeries(q, &t) {
                    let _ = udp_sock.send_to(&forged, peer);
                }
                if let Some(r) = respond(q, &t, false) {
                    *last.lock().unwrap() = r.clone();
                    let _ = udp_sock.send_to(&r, peer);
                }
            }
        });
        let (count, last) = (up.tcp.clone(), up.last.clone());
        std::thread::spawn(move || {
            for conn in tcp_sock.incoming() {
                let Ok(mut c) = conn else { return };
                count.fetch_add(1, Ordering::Relaxed);
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len).into()];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(r) = respond(&q, &table, true) {
                    *last.lock().unwrap() = r.clone();
                    let _ = c.write_all(&(r.len() as u16).to_be_bytes());
                    let _ = c.write_all(&r);
                }
            }
        });
        up
    }
}

/// A free UDP port on loopback where nothing listens: queries there are refused at once.
fn dead_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    netcore::dns::fixtures::query(rand_id(), name, rtype, edns)
}

fn rand_id() -> u16 {
    static N: AtomicUsize = AtomicUsize::new(7);
    N.fetch_add(7919, Ordering::Relaxed) as u16
}

/// A UDP socket inside `ns` talking to its resolver.
fn client(ns: &Netns) -> UdpSocket {
    let s = ns.run(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect("127.0.0.11:53").unwrap();
        s
    });
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn exchange(c: &UdpSocket, q: &[u8]) -> Vec<u8> {
    c.send(q).unwrap();
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = c.recv(&mut buf).expect("an answer from 127.0.0.11");
        if buf[..2] == q[..2] {
            return buf[..n].to_vec();
        }
    }
}

fn ask(c: &UdpSocket, name: &str, rtype: RecordType) -> Message {
    Message::from_vec(&exchange(c, &query(name, rtype, None))).unwrap()
}

fn ask_tcp(ns: &Netns, q: Vec<u8>) -> Message {
    let raw = ns.run(move || {
        let mut s = TcpStream::connect("127.0.0.11:53").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut r = vec![0u8; u16::from_be_bytes(len).into()];
        s.read_exact(&mut r).unwrap();
        r
    });
    Message::from_vec(&raw).unwrap()
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn named(ns: &Netns, name: &str, aliases: &[&str]) -> AttachRequest {
    AttachRequest {
        container_name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ..req(ns, &[])
    }
}

async fn network(mgr: &mut Manager, name: &str, internal: bool) {
    mgr.create(CreateRequest {
        name: name.into(),
        internal,
        ..CreateRequest::default()
    })
    .await
    .unwrap();
}

async fn sync(resolver: &mut Resolver, mgr: &Manager) {
    let errors = resolver.update(mgr.state()).await;
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn netns_dns_names_aliases_ptr_scoping_and_tcp() {
    if !enabled("netns_dns_names_aliases_ptr_scoping_and_tcp") {
        return;
    }
    let up = Upstream::start(&[]);
    let dir = state_dir("dns-names");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        network(&mut mgr, "front", false).await;
        network(&mut mgr, "back", false).await;
        let mut resolver = Resolver::new(ResolverConfig {
            upstreams: vec![up.addr],
            ..ResolverConfig::default()
        });
        let (web, db1, db2, far) = (
            container("web"),
            container("db1"),
            container("db2"),
            container("far"),
        );
        let e_web = mgr.attach("front", named(&web, "web", &[])).await.unwrap();
        let e1 = mgr
            .attach("front", named(&db1, "db1", &["db"]))
            .await
            .unwrap();
        let e2 = mgr
            .attach("front", named(&db2, "db2", &["db"]))
            .await
            .unwrap();
        mgr.attach("back", named(&far, "far", &[])).await.unwrap();
        sync(&mut resolver, &mgr).await;
        let web_ip = e_web.ipv4.unwrap().addr();

        let c = client(&db1);
        assert_eq!(addrs(&ask(&c, "web", RecordType::A)), [web_ip]);
        assert_eq!(addrs(&ask(&c, "WEB.front", RecordType::A)), [web_ip]);

        // A shared alias: both addresses every time, the first one rotating.
        let want = {
            let mut v = vec![e1.ipv4.unwrap().addr(), e2.ipv4.unwrap().addr()];
            v.sort();
            v
        };
        let mut firsts = Vec::new();
        for _ in 0..4 {
            let mut got = addrs(&ask(&c, "db", RecordType::A));
            firsts.push(got[0]);
            got.sort();
            assert_eq!(got, want);
        }
        assert_ne!(firsts[0], firsts[1], "answers not rotated: {firsts:?}");

        // PTR for a container address.
        let IpAddr::V4(v4) = web_ip else {
            unreachable!()
        };
        let o = v4.octets();
        let rev = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        let m = ask(&c, &rev, RecordType::PTR);
        match m.answers.first().map(|r| &r.data) {
            Some(RData::PTR(p)) => assert_eq!(p.0.to_ascii(), "web.front."),
            other => panic!("PTR {rev}: {other:?}"),
        }

        // TCP works the same.
        assert_eq!(
            addrs(&ask_tcp(&db2, query("web", RecordType::A, None))),
            [web_ip]
        );

        // Another network's containers are not visible: the query goes upstream (NXDOMAIN).
        let before = up.udp.load(Ordering::Relaxed);
        let m = ask(&client(&far), "web", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.answers.is_empty());
        assert_eq!(up.udp.load(Ordering::Relaxed), before + 1);

        drop(resolver);
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_dns_a_name_answers_right_after_attach_and_goes_with_detach() {
    if !enabled("netns_dns_a_name_answers_right_after_attach_and_goes_with_detach") {
        return;
    }
    let up = Upstream::start(&[]);
    let dir = state_dir("dns-attach");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        network(&mut mgr, "net", false).await;
        let mut resolver = Resolver::new(ResolverConfig {
            upstreams: vec![up.addr],
            ..ResolverConfig::default()
        });
        let asker = container("asker");
        mgr.attach("net", named(&asker, "asker", &[]))
            .await
            .unwrap();
        sync(&mut resolver, &mgr).await;
        let c = client(&asker);

        let fresh = container("fresh");
        let t0 = Instant::now();
        let ep = mgr
            .attach("net", named(&fresh, "fresh", &[]))
            .await
            .unwrap();
        sync(&mut resolver, &mgr).await;
        let m = ask(&c, "fresh", RecordType::A);
        let took = t0.elapsed();
        assert_eq!(addrs(&m), [ep.ipv4.unwrap().addr()]);
        eprintln!("attach to first answer: {took:?}");
        // The new container's own resolver is up at once too.
        assert_eq!(
            addrs(&ask(&client(&fresh), "asker", RecordType::A)).len(),
            1
        );

        mgr.detach("net", &ep.container).await.unwrap();
        sync(&mut resolver, &mgr).await;
        let m = ask(&c, "fresh", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(!resolver.listening().any(|c| c == ep.container));

        drop(resolver);
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_dns_forwarding_truncation_failover_and_internal() {
    if !enabled("netns_dns_forwarding_truncation_failover_and_internal") {
        return;
    }
    let up = Upstream::start(&[
        (
            "example.test",
            Behaviour::Answer(Ipv4Addr::new(192, 0, 2, 7)),
        ),
        ("big.test", Behaviour::Big(40)),
        ("hang.test", Behaviour::Silent),
        (
            "forged.test",
            Behaviour::Forged(Ipv4Addr::new(192, 0, 2, 9)),
        ),
    ]);
    // Silent: bound, never answers (timeouts); dead: nothing there (refused at once).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = state_dir("dns-forward");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        network(&mut mgr, "net", false).await;
        network(&mut mgr, "sealed", true).await;
        let mut resolver = Resolver::new(ResolverConfig {
            upstreams: vec![dead_port(), silent.local_addr().unwrap(), up.addr],
            upstream_timeout: Duration::from_millis(300),
            ..ResolverConfig::default()
        });
        let (a, iso) = (container("a"), container("iso"));
        mgr.attach("net", named(&a, "a", &[])).await.unwrap();
        mgr.attach("sealed", named(&iso, "iso", &[])).await.unwrap();
        sync(&mut resolver, &mgr).await;
        let c = client(&a);

        // Past a refusing and a silent upstream to the one that answers; relayed byte for byte
        // but for the ID, which is the client's again.
        let t0 = Instant::now();
        let asked = query("example.test", RecordType::A, None);
        let reply = exchange(&c, &asked);
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "the silent upstream was skipped"
        );
        assert_eq!(reply[..2], asked[..2]);
        assert_eq!(reply[2..], up.last.lock().unwrap()[2..]);
        assert_eq!(
            addrs(&Message::from_vec(&reply).unwrap()),
            [IpAddr::from([192, 0, 2, 7])]
        );

        // The upstream never sees the container's IDs: eight queries under one ID go out under
        // eight random ones (forged answers must guess them).
        let before = up.ids.lock().unwrap().len();
        for _ in 0..8 {
            let q = netcore::dns::fixtures::query(0x0101, "example.test", RecordType::A, None);
            assert_eq!(exchange(&c, &q)[..2], [1, 1]);
        }
        let mut seen = up.ids.lock().unwrap()[before..].to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() >= 7 && !seen.contains(&0x0101), "{seen:x?}");
        // Answers with another ID, or with the ID for another question, are not taken.
        let m = ask(&c, "forged.test", RecordType::A);
        assert_eq!(addrs(&m), [IpAddr::from([192, 0, 2, 9])]);

        // Truncated over UDP: retried over TCP, the whole answer to a client that can take it.
        let tcp_before = up.tcp.load(Ordering::Relaxed);
        let m = Message::from_vec(&exchange(&c, &query("big.test", RecordType::A, Some(4096))))
            .unwrap();
        assert_eq!(m.answers.len(), 40);
        assert!(!m.metadata.truncation);
        assert!(up.tcp.load(Ordering::Relaxed) > tcp_before);
        // A client limited to 512 bytes gets the truncated answer and retries over TCP itself.
        let m = ask(&c, "big.test", RecordType::A);
        assert!(m.metadata.truncation);
        assert_eq!(
            ask_tcp(&a, query("big.test", RecordType::A, None))
                .answers
                .len(),
            40
        );

        // Every upstream silent for this name: SERVFAIL after the timeouts, not silence.
        let m = ask(&c, "hang.test", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);

        // An internal network: outside names are NXDOMAIN and never leave.
        let (u, t) = (
            up.udp.load(Ordering::Relaxed),
            up.tcp.load(Ordering::Relaxed),
        );
        let ci = client(&iso);
        let m = ask(&ci, "example.test", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            (
                up.udp.load(Ordering::Relaxed),
                up.tcp.load(Ordering::Relaxed)
            ),
            (u, t)
        );
        assert_eq!(addrs(&ask(&ci, "iso", RecordType::A)).len(), 1);

        drop(resolver);
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_dns_a_flood_leaves_the_resolver_answering() {
    if !enabled("netns_dns_a_flood_leaves_the_resolver_answering") {
        return;
    }
    let up = Upstream::start(&[
        ("hang.test", Behaviour::Silent),
        (
            "example.test",
            Behaviour::Answer(Ipv4Addr::new(192, 0, 2, 7)),
        ),
    ]);
    let dir = state_dir("dns-flood");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        network(&mut mgr, "net", false).await;
        let mut resolver = Resolver::new(ResolverConfig {
            upstreams: vec![up.addr],
            upstream_timeout: Duration::from_secs(5),
            max_forwarded: 64,
            max_forwarded_per_container: 16,
            max_tcp: 40,
            max_tcp_per_container: 8,
            ..ResolverConfig::default()
        });
        let (a, b) = (container("a"), container("b"));
        let ea = mgr.attach("net", named(&a, "a", &[])).await.unwrap();
        mgr.attach("net", named(&b, "b", &[])).await.unwrap();
        sync(&mut resolver, &mgr).await;

        // 20,000 garbage datagrams and 5,000 queries that hang upstream, as fast as possible.
        let flood = client(&b);
        flood.set_nonblocking(true).unwrap();
        let hang = query("hang.test", RecordType::A, None);
        for i in 0..25_000u32 {
            let junk = i.to_le_bytes().repeat(1 + (i % 7) as usize);
            let _ = flood.send(if i % 5 == 0 { &hang } else { &junk });
        }
        // Forwarding is capped: queries past the cap get SERVFAIL at once instead of waiting.
        let mut buf = [0u8; 512];
        std::thread::sleep(Duration::from_millis(200));
        let mut servfail = 0;
        while let Ok(n) = flood.recv(&mut buf) {
            if n >= 4 && buf[3] & 0x0f == 2 {
                servfail += 1;
            }
        }
        assert!(servfail > 0, "nothing past the forwarding cap was refused");

        // Local names still answer, promptly, for the flooder and for others.
        let t0 = Instant::now();
        let m = ask(&client(&a), "a", RecordType::A);
        assert_eq!(addrs(&m), [ea.ipv4.unwrap().addr()]);
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        let c = client(&b);
        assert_eq!(
            addrs(&ask(&c, "a", RecordType::A)),
            [ea.ipv4.unwrap().addr()]
        );
        // The flooder holds its own forwarding slots only: another container's outside names
        // are still forwarded and answered.
        let m = ask(&client(&a), "example.test", RecordType::A);
        assert_eq!(addrs(&m), [IpAddr::from([192, 0, 2, 7])]);

        // As many idle TCP connections as everyone's limit, from one container: it keeps its
        // own share, and another container's TCP query is still answered.
        let held: Vec<TcpStream> = b.run(|| {
            (0..40)
                .filter_map(|_| TcpStream::connect("127.0.0.11:53").ok())
                .collect()
        });
        std::thread::sleep(Duration::from_millis(200));
        let m = ask_tcp(&a, query("a", RecordType::A, None));
        assert_eq!(addrs(&m), [ea.ipv4.unwrap().addr()]);
        drop(held);

        drop(resolver);
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}
