//! Privileged end-to-end tests of the proxy between network namespaces: an outside client, the
//! host running the proxy, and a "container". Run through scripts/netns-test.sh.

mod netns_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use netns_support::{Topo, enabled, sh};
use portproxy::{Proxy, ProxyConfig, ProxyError, PublishRequest};
use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn publish(proxy: &Proxy, spec: &str, ctr: &str, transparent: bool) -> portproxy::PublishedInfo {
    proxy
        .publish(&PublishRequest {
            spec: spec.parse().unwrap(),
            container_ip: ctr.parse().unwrap(),
            transparent,
        })
        .unwrap_or_else(|e| panic!("publish {spec} -> {ctr}: {e}"))
}

/// A dual-stack TCP listener on `[::]:port` inside the container namespace.
fn ctr_tcp(topo: &Topo, port: u16) -> TcpListener {
    let l = topo
        .ctr
        .run(move || std::net::TcpListener::bind(("::", port)).unwrap());
    l.set_nonblocking(true).unwrap();
    TcpListener::from_std(l).unwrap()
}

/// Unconnected client sockets opened in the outside-client namespace.
fn cli_sockets(topo: &Topo, n: usize, v6: bool) -> Vec<TcpSocket> {
    let socks = topo.cli.run(move || {
        (0..n)
            .map(|_| {
                let d = if v6 { Domain::IPV6 } else { Domain::IPV4 };
                Socket::new(d, Type::STREAM, None).unwrap()
            })
            .collect::<Vec<_>>()
    });
    socks
        .into_iter()
        .map(|s| {
            s.set_nonblocking(true).unwrap();
            TcpSocket::from_std_stream(s.into())
        })
        .collect()
}

async fn cli_connect(topo: &Topo, to: SocketAddr) -> TcpStream {
    let s = cli_sockets(topo, 1, to.is_ipv6()).pop().unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.connect(to))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect {to}: {e}"))
}

fn spawn_echo(l: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
}

fn spawn_udp_echo(s: UdpSocket) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
}

async fn echo_once(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(got, msg);
}

#[test]
fn tcp_and_udp_echo_over_v4_and_v6() {
    if !enabled("tcp_and_udp_echo_over_v4_and_v6") {
        return;
    }
    let topo = Topo::new();
    rt().block_on(async {
        spawn_echo(ctr_tcp(&topo, 7));
        let udp = topo
            .ctr
            .run(|| std::net::UdpSocket::bind("[::]:7").unwrap());
        udp.set_nonblocking(true).unwrap();
        spawn_udp_echo(UdpSocket::from_std(udp).unwrap());

        let proxy = Proxy::new(ProxyConfig::default());
        // No host IP: 0.0.0.0 and ::, both forwarding to the IPv4 container address.
        publish(&proxy, "8007:7", &topo.ctr_v4(), false);
        publish(&proxy, "8007:7/udp", &topo.ctr_v4(), false);
        // IPv6 to an IPv6 container too.
        publish(
            &proxy,
            &format!("[{}]:8008:7", topo.host_v6()),
            &topo.ctr_v6(),
            false,
        );

        for host in [
            format!("{}:8007", topo.host_v4()),
            format!("[{}]:8007", topo.host_v6()),
            format!("[{}]:8008", topo.host_v6()),
        ] {
            let mut c = cli_connect(&topo, host.parse().unwrap()).await;
            echo_once(&mut c, format!("hello via {host}").as_bytes()).await;
        }

        for host in [
            format!("{}:8007", topo.host_v4()),
            format!("[{}]:8007", topo.host_v6()),
        ] {
            let to: SocketAddr = host.parse().unwrap();
            let v6 = to.is_ipv6();
            let c = topo.cli.run(move || {
                std::net::UdpSocket::bind(if v6 { "[::]:0" } else { "0.0.0.0:0" }).unwrap()
            });
            c.set_nonblocking(true).unwrap();
            let c = UdpSocket::from_std(c).unwrap();
            c.connect(to).await.unwrap();
            for i in 0..5u8 {
                let msg = [i; 100];
                c.send(&msg).await.unwrap();
                let mut buf = [0u8; 200];
                // `connect` filters on the source: a reply from any other address than the one
                // the client sent to (the wildcard socket's pktinfo path) would never arrive.
                let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("no UDP reply from {to}"))
                    .unwrap();
                assert_eq!(&buf[..n], &msg);
            }
        }
    });
}

#[test]
fn transfer_100mb_with_checksum_and_half_close() {
    if !enabled("transfer_100mb_with_checksum_and_half_close") {
        return;
    }
    let topo = Topo::new();
    rt().block_on(async {
        // The "container" hashes everything until EOF, then answers with the digest: the answer
        // can only come after the client's half-close crossed the proxy.
        let l = ctr_tcp(&topo, 9000);
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            s.write_all(&h.finalize()).await.unwrap();
            s.shutdown().await.unwrap();
        });
        let proxy = Proxy::new(ProxyConfig::default());
        let info = publish(&proxy, "9000:9000", &topo.ctr_v4(), false);
        let mut c = cli_connect(&topo, format!("{}:9000", topo.host_v4()).parse().unwrap()).await;
        let mut h = Sha256::new();
        let mut block = vec![0u8; 1 << 20];
        for i in 0..100u32 {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (i as usize * 31 + j * 7) as u8;
            }
            h.update(&block);
            c.write_all(&block).await.unwrap();
        }
        c.shutdown().await.unwrap();
        let mut digest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), c.read_to_end(&mut digest))
            .await
            .expect("no digest after half-close")
            .unwrap();
        assert_eq!(digest, h.finalize().to_vec(), "100 MB arrived corrupted");
        let stats = proxy.get(info.id).unwrap().stats;
        assert_eq!(stats.bytes_to_container, 100 << 20);
        assert_eq!(stats.bytes_from_container, 32);
    });
}

#[test]
fn thousand_concurrent_connections() {
    if !enabled("thousand_concurrent_connections") {
        return;
    }
    let topo = Topo::new();
    rt().block_on(async {
        spawn_echo(ctr_tcp(&topo, 7100));
        let proxy = Proxy::new(ProxyConfig::default());
        let info = publish(&proxy, "7100:7100", &topo.ctr_v4(), false);
        let to: SocketAddr = format!("{}:7100", topo.host_v4()).parse().unwrap();
        let mut open = Vec::new();
        for s in cli_sockets(&topo, 1000, false) {
            open.push(s.connect(to).await.unwrap());
        }
        // All 1,000 are open at once; each still gets its own bytes back.
        let tasks: Vec<_> = open
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                tokio::spawn(async move {
                    echo_once(&mut c, format!("conn {i}").as_bytes()).await;
                    c
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            held.push(t.await.unwrap());
        }
        let s = proxy.get(info.id).unwrap().stats;
        assert_eq!(s.connections_active, 1000);
        assert_eq!(s.connections_total, 1000);
        assert_eq!(proxy.open_connections(), 1000);
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(proxy.get(info.id).unwrap().stats.connections_active, 0);
    });
}

#[test]
fn live_publish_and_unpublish_leave_other_connections_alone() {
    if !enabled("live_publish_and_unpublish_leave_other_connections_alone") {
        return;
    }
    let topo = Topo::new();
    rt().block_on(async {
        spawn_echo(ctr_tcp(&topo, 7200));
        let proxy = Proxy::new(ProxyConfig::default());
        let a = publish(&proxy, "7200:7200", &topo.ctr_v4(), false);
        let a_addr: SocketAddr = format!("{}:7200", topo.host_v4()).parse().unwrap();
        let mut c = cli_connect(&topo, a_addr).await;
        echo_once(&mut c, b"before").await;

        let b = publish(&proxy, "7201-7205:7200-7204", &topo.ctr_v4(), false);
        let mut cb = cli_connect(&topo, format!("{}:7201", topo.host_v4()).parse().unwrap()).await;
        echo_once(&mut cb, b"through b").await;
        echo_once(&mut c, b"during").await;
        proxy.unpublish(b.id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = cli_sockets(&topo, 1, false)
            .pop()
            .unwrap()
            .connect(format!("{}:7202", topo.host_v4()).parse().unwrap())
            .await;
        assert!(refused.is_err(), "7202 still listening after unpublish");
        echo_once(&mut c, b"after").await;
        // A new connection to the surviving publication works too.
        let mut c2 = cli_connect(&topo, a_addr).await;
        echo_once(&mut c2, b"new").await;
        assert_eq!(proxy.list().len(), 1);
        assert_eq!(proxy.list()[0].id, a.id);
    });
}

#[test]
fn port_conflict_is_reported_and_nothing_is_left_listening() {
    if !enabled("port_conflict_is_reported_and_nothing_is_left_listening") {
        return;
    }
    let topo = Topo::new();
    rt().block_on(async {
        let squatter = std::net::TcpListener::bind(format!("{}:7305", topo.host_v4())).unwrap();
        let proxy = Proxy::new(ProxyConfig::default());
        let err = proxy
            .publish(&PublishRequest {
                spec: format!("{}:7300-7305:80-85", topo.host_v4())
                    .parse()
                    .unwrap(),
                container_ip: topo.ctr_v4().parse().unwrap(),
                transparent: false,
            })
            .unwrap_err();
        assert!(matches!(err, ProxyError::AddrInUse { .. }), "{err}");
        assert!(err.to_string().contains(":7305"), "{err}");
        // 7300-7304 were opened before the conflict and must have been closed again.
        for p in 7300..7305 {
            std::net::TcpListener::bind(format!("{}:{p}", topo.host_v4()))
                .unwrap_or_else(|e| panic!("port {p} left behind: {e}"));
        }
        assert!(proxy.list().is_empty());
        drop(squatter);
    });
}

#[test]
fn transparent_mode_shows_the_real_client_address_tcp_and_udp() {
    if !enabled("transparent_mode_shows_the_real_client_address_tcp_and_udp") {
        return;
    }
    let topo = Topo::new();
    // The host routing transparent mode needs (see portproxy::transparent).
    let script = portproxy::transparent::routing_nft();
    sh(&format!("printf '%s' '{script}' | nft -f -"));
    for c in portproxy::transparent::ROUTING_IP_COMMANDS {
        sh(c);
    }
    rt().block_on(async {
        // The container answers with the address it sees as its peer.
        let l = ctr_tcp(&topo, 7400);
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = l.accept().await {
                let ip = peer.ip().to_canonical().to_string();
                let _ = s.write_all(ip.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        let proxy = Proxy::new(ProxyConfig::default());
        publish(&proxy, "7400:7400", &topo.ctr_v4(), true);
        publish(&proxy, "7401:7400", &topo.ctr_v4(), false);
        let seen = |port: u16| {
            let to: SocketAddr = format!("{}:{port}", topo.host_v4()).parse().unwrap();
            let topo = &topo;
            async move {
                let mut c = cli_connect(topo, to).await;
                let mut s = String::new();
                tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut s))
                    .await
                    .expect("no answer")
                    .unwrap();
                s
            }
        };
        assert_eq!(
            seen(7400).await,
            topo.cli_v4(),
            "transparent mode hid the client"
        );
        // Without it the container sees the host side, as with docker-proxy.
        assert_eq!(seen(7401).await, format!("10.{}.1.1", topo.id));

        // UDP: the container answers each datagram with the sender address it saw.
        let u = topo
            .ctr
            .run(|| std::net::UdpSocket::bind("[::]:7402").unwrap());
        u.set_nonblocking(true).unwrap();
        let u = UdpSocket::from_std(u).unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((_, from)) = u.recv_from(&mut buf).await {
                let ip = from.ip().to_canonical().to_string();
                let _ = u.send_to(ip.as_bytes(), from).await;
            }
        });
        publish(&proxy, "7402:7402/udp", &topo.ctr_v4(), true);
        let c = topo
            .cli
            .run(|| std::net::UdpSocket::bind("0.0.0.0:0").unwrap());
        c.set_nonblocking(true).unwrap();
        let c = UdpSocket::from_std(c).unwrap();
        c.connect(format!("{}:7402", topo.host_v4())).await.unwrap();
        c.send(b"who am i").await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf))
            .await
            .expect("no UDP answer in transparent mode")
            .unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), topo.cli_v4());
    });
    sh("nft delete table ip berth_tproxy");
    sh("ip -4 rule del fwmark 0x6265 lookup 25189 priority 100");
    sh("ip -4 route del local 0.0.0.0/0 dev lo table 25189");
}

#[test]
fn udp_flow_table_stays_bounded() {
    if !enabled("udp_flow_table_stays_bounded") {
        return;
    }
    let topo = Topo::new();
    rt().block_on(async {
        let udp = topo
            .ctr
            .run(|| std::net::UdpSocket::bind("[::]:5300").unwrap());
        udp.set_nonblocking(true).unwrap();
        spawn_udp_echo(UdpSocket::from_std(udp).unwrap());
        let proxy = Proxy::new(ProxyConfig {
            udp_max_flows: 16,
            udp_idle_timeout: Duration::from_millis(400),
            ..ProxyConfig::default()
        });
        let info = publish(&proxy, "5300:5300/udp", &topo.ctr_v4(), false);
        let to: SocketAddr = format!("{}:5300", topo.host_v4()).parse().unwrap();
        let clients = topo.cli.run(|| {
            (0..40)
                .map(|_| std::net::UdpSocket::bind("0.0.0.0:0").unwrap())
                .collect::<Vec<_>>()
        });
        let clients: Vec<Arc<UdpSocket>> = clients
            .into_iter()
            .map(|c| {
                c.set_nonblocking(true).unwrap();
                Arc::new(UdpSocket::from_std(c).unwrap())
            })
            .collect();
        for c in &clients {
            c.send_to(b"x", to).await.unwrap();
            let mut b = [0u8; 4];
            tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut b))
                .await
                .expect("no reply")
                .unwrap();
        }
        let s = proxy.get(info.id).unwrap().stats;
        assert_eq!(s.flows_total, 40);
        assert_eq!(s.flows_active, 16, "the table grew past its bound");
        // A client that only sends keeps its flow; the others expire.
        for _ in 0..8 {
            clients[0].send_to(b"k", to).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s = proxy.get(info.id).unwrap().stats;
        assert_eq!(
            s.flows_active, 1,
            "idle flows were not expired or the live one was"
        );
    });
}

/// As many concurrent connections as the descriptor hard limit allows (10,000 where it is at least
/// ~21,000; 9,500 on a machine limited to 20,000) held open through the `berth-proxy` binary, each
/// echoing its own bytes, and a new connection still served while they are all open.
#[test]
fn many_concurrent_connections_through_the_binary() {
    if !enabled("many_concurrent_connections_through_the_binary") {
        return;
    }
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    // Each side holds two descriptors per connection: the proxy (client + upstream) and this test
    // (client + accepted), so both processes need 2n plus a margin.
    let n = 10_000.min((hard.saturating_sub(1_000) / 2) as usize);
    eprintln!("holding {n} concurrent connections (RLIMIT_NOFILE hard limit {hard})");
    let dir = std::env::temp_dir().join(format!("berth-many-{}", std::process::id()));
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_berth-proxy"))
        .arg("--exec-root")
        .arg(&dir)
        .args([
            "--log-level",
            "warn",
            "serve",
            "-p",
            "127.0.0.1:7600:7601@127.0.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    rt().block_on(async {
        let l = TcpListener::bind("127.0.0.1:7601").await.unwrap();
        spawn_echo(l);
        let to: SocketAddr = "127.0.0.1:7600".parse().unwrap();
        let start = std::time::Instant::now();
        while TcpStream::connect(to).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "proxy never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let mut c = TcpStream::connect(to)
                .await
                .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
            c.write_all(b"x").await.unwrap();
            held.push(c);
        }
        for (i, c) in held.iter_mut().enumerate() {
            let mut b = [0u8; 1];
            tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut b))
                .await
                .unwrap_or_else(|_| panic!("connection {i} got no echo"))
                .unwrap();
        }
        let mut extra = cli_free_connect(to).await;
        echo_once(&mut extra, b"still serving").await;
        drop(held);
    });
    kill_and_wait(&mut proxy);
    let _ = std::fs::remove_dir_all(dir);
}

async fn cli_free_connect(to: SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to))
        .await
        .expect("connect timed out")
        .unwrap()
}

fn kill_and_wait(child: &mut std::process::Child) {
    use nix::sys::signal::{Signal, kill};
    let _ = kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    let _ = child.wait();
}
