//! The network manager against the real kernel: netlink links, nft tables, forwarding. Network
//! namespaces stand in for containers and for an outside client. Run through
//! scripts/netns-test.sh (a throwaway outer namespace: berth0 and berth's tables there are
//! invisible to the machine); each test tears down everything it created.

#[allow(dead_code)]
mod manager_support;
#[path = "../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use manager_support::{container, open, req, rt, state_dir};
use netcore::ipam::SubnetRequest;
use netcore::network::CreateRequest;
use netns_support::{Netns, Topo, enabled, sh};

/// Listens on `port` inside `ns` and answers each connection with the peer's address, as a
/// container's server would see it.
fn serve(ns: &Netns, port: u16) -> JoinHandle<()> {
    let listener = ns.run(move || TcpListener::bind(("::", port)).unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let peer = c.peer_addr().unwrap();
            let _ = c.write_all(peer.ip().to_canonical().to_string().as_bytes());
        }
    })
}

/// Connects from inside `ns` (or from the host when `None`) and returns what the server said.
fn ask(ns: Option<&Netns>, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let f = move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(700))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    match ns {
        Some(ns) => ns.run(f),
        None => f(),
    }
}

fn snapshot() -> [String; 3] {
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .replace("\"tentative\":true,", "")
    };
    [
        run(&["ip", "-j", "link"]),
        run(&["ip", "-j", "addr"]),
        run(&["nft", "-j", "list", "ruleset"]),
    ]
}

#[test]
fn netns_bridge_reachability_isolation_and_teardown() {
    if !enabled("netns_bridge_reachability_isolation_and_teardown") {
        return;
    }
    let topo = Topo::new();
    let before = snapshot();
    let dir = state_dir("bridge");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        mgr.create(CreateRequest {
            name: "other".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
        let (a, b, c) = (container("a"), container("b"), container("c"));
        let ea = mgr.attach("bridge", req(&a, &[])).await.unwrap();
        let eb = mgr.attach("bridge", req(&b, &[])).await.unwrap();
        let ec = mgr.attach("other", req(&c, &[])).await.unwrap();
        let ip = |e: &netcore::network::Endpoint| e.ipv4.unwrap().addr();
        let _sb = serve(&b, 80);
        let _sc = serve(&c, 80);
        let _scli = serve(&topo.cli, 80);

        // Same network: reachable, and b sees a's own address.
        assert_eq!(
            ask(Some(&a), &format!("{}:80", ip(&eb))).unwrap(),
            ip(&ea).to_string()
        );
        // Another network: not reachable.
        assert!(ask(Some(&a), &format!("{}:80", ip(&ec))).is_err());
        assert!(ask(Some(&c), &format!("{}:80", ip(&eb))).is_err());
        // Egress to the outside is masqueraded behind the host's address.
        assert_eq!(
            ask(Some(&a), &format!("{}:80", topo.cli_v4())).unwrap(),
            topo.host_v4()
        );
        // The outside cannot reach a container directly.
        assert!(ask(Some(&topo.cli), &format!("{}:80", ip(&eb))).is_err());

        // Connect and disconnect on a running container.
        let a2 = mgr.attach("other", req(&a, &[])).await.unwrap();
        assert_eq!(a2.ifname.as_deref(), Some("eth1"));
        assert_eq!(
            ask(Some(&a), &format!("{}:80", ip(&ec))).unwrap(),
            ip(&a2).to_string()
        );
        mgr.detach("other", &a.name).await.unwrap();
        assert!(ask(Some(&a), &format!("{}:80", ip(&ec))).is_err());
        let links = Command::new("ip")
            .args(["-n", &a.name, "-j", "link"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&links.stdout).contains("eth1"));

        for (net, ns) in [("bridge", &a), ("bridge", &b), ("other", &c)] {
            mgr.detach(net, &ns.name).await.unwrap();
        }
        mgr.remove("other").await.unwrap();
        mgr.teardown_all().await.unwrap();
    });
    assert_eq!(
        snapshot(),
        before,
        "links, addresses or nft rules were left behind"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_published_ports_dnat_keep_the_client_address_and_hairpin() {
    if !enabled("netns_published_ports_dnat_keep_the_client_address_and_hairpin") {
        return;
    }
    let topo = Topo::new();
    let dir = state_dir("ports");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        let web = container("web");
        let other = container("other");
        mgr.attach("bridge", req(&web, &["8080:80"])).await.unwrap();
        mgr.attach("bridge", req(&other, &[])).await.unwrap();
        let _s = serve(&web, 80);
        let published = format!("{}:8080", topo.host_v4());

        // From outside: DNAT, and the container sees the client's real address.
        assert_eq!(ask(Some(&topo.cli), &published).unwrap(), topo.cli_v4());
        // From the host to its own address (output chain).
        assert!(ask(None, &published).is_ok());
        // Hairpin: the container through its own published port, and a neighbour too.
        assert!(ask(Some(&web), &published).is_ok(), "hairpin to itself");
        assert!(ask(Some(&other), &published).is_ok());
        // A 1,000-port container: the last port works.
        let many = container("many");
        mgr.attach("bridge", req(&many, &["20000-20999:20000-20999"]))
            .await
            .unwrap();
        let _m = serve(&many, 20999);
        assert_eq!(
            ask(Some(&topo.cli), &format!("{}:20999", topo.host_v4())).unwrap(),
            topo.cli_v4()
        );

        // Unpublished (detached): the port is gone.
        mgr.detach("bridge", &web.name).await.unwrap();
        assert!(ask(Some(&topo.cli), &published).is_err());
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_internal_and_icc_false() {
    if !enabled("netns_internal_and_icc_false") {
        return;
    }
    let topo = Topo::new();
    let dir = state_dir("internal");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        mgr.create(CreateRequest {
            name: "secret".into(),
            internal: true,
            ..CreateRequest::default()
        })
        .await
        .unwrap();
        mgr.create(CreateRequest {
            name: "closed".into(),
            options: [(
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            )]
            .into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
        let (x, y) = (container("x"), container("y"));
        let (p, q) = (container("p"), container("q"));
        mgr.attach("secret", req(&x, &[])).await.unwrap();
        let ey = mgr.attach("secret", req(&y, &[])).await.unwrap();
        mgr.attach("closed", req(&p, &[])).await.unwrap();
        let eq = mgr.attach("closed", req(&q, &[])).await.unwrap();
        for ns in [&y, &q, &topo.cli] {
            std::mem::forget(serve(ns, 80));
        }
        let host_listener = TcpListener::bind("0.0.0.0:8099").unwrap();
        std::thread::spawn(move || {
            for c in host_listener.incoming().flatten() {
                drop(c);
            }
        });
        let ip = |e: &netcore::network::Endpoint| e.ipv4.unwrap().addr();

        // Internal: neighbours yes, outside no.
        assert!(ask(Some(&x), &format!("{}:80", ip(&ey))).is_ok());
        assert!(ask(Some(&x), &format!("{}:80", topo.cli_v4())).is_err());
        // icc=false: neighbours no, the gateway (host) yes, the outside yes.
        assert!(ask(Some(&p), &format!("{}:80", ip(&eq))).is_err());
        let gw = mgr.inspect("closed").unwrap().ipam.config[0]
            .gateway
            .clone();
        assert!(ask(Some(&p), &format!("{gw}:8099")).is_ok());
        assert!(ask(Some(&p), &format!("{}:80", topo.cli_v4())).is_ok());
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_start_reconciles_only_berths_tables() {
    if !enabled("netns_start_reconciles_only_berths_tables") {
        return;
    }
    let _topo = Topo::new();
    let dir = state_dir("reconcile");
    let ours = || {
        let out = Command::new("nft")
            .args(["list", "table", "inet", "berth"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        let web = container("rweb");
        mgr.attach("bridge", req(&web, &["8080:80"])).await.unwrap();
        let good = ours();
        drop(mgr);
        // Someone adds a stale rule to berth's table, deletes one of ours and has a table of
        // their own.
        sh("nft add rule inet berth forward tcp dport 9999 accept");
        sh("nft flush chain inet berth ports");
        sh("nft add table inet foreign; nft add chain inet foreign c; nft add rule inet foreign c tcp dport 1 accept");
        assert_ne!(ours(), good);
        let mgr = open(&dir).await;
        assert_eq!(ours(), good);
        let foreign = Command::new("nft").args(["list", "table", "inet", "foreign"]).output().unwrap();
        assert!(String::from_utf8_lossy(&foreign.stdout).contains("tcp dport 1 accept"));
        sh("nft delete table inet foreign");
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_state_survives_a_restart() {
    if !enabled("netns_state_survives_a_restart") {
        return;
    }
    let _topo = Topo::new();
    let dir = state_dir("restart");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        mgr.create(CreateRequest {
            name: "keep".into(),
            ipv4: SubnetRequest {
                subnet: Some("10.123.0.0/24".parse().unwrap()),
                ..SubnetRequest::default()
            },
            ..CreateRequest::default()
        })
        .await
        .unwrap();
        let a = container("ka");
        let ea = mgr.attach("keep", req(&a, &[])).await.unwrap();
        let inspect = mgr.inspect("keep").unwrap();
        drop(mgr);
        let mut mgr = open(&dir).await;
        assert_eq!(mgr.inspect("keep").unwrap(), inspect);
        // The next address continues after the one already given.
        let b = container("kb");
        let eb = mgr.attach("keep", req(&b, &[])).await.unwrap();
        assert_ne!(eb.ipv4, ea.ipv4);
        assert_eq!(eb.ipv4.unwrap().to_string(), "10.123.0.3/24");
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn netns_forwarding_that_is_not_berths_is_dropped() {
    if !enabled("netns_forwarding_that_is_not_berths_is_dropped") {
        return;
    }
    // Two namespaces routed through the host, neither on a berth network: a router's traffic.
    let topo = Topo::new();
    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    let _scli = serve(&topo.cli, 80);
    let v6 = format!("[fd00:{}:2::2]:80", topo.id);
    let routed = |topo: &Topo| {
        [format!("{}:80", topo.cli_v4()), v6.clone()].map(|addr| ask(Some(&topo.ctr), &addr).ok())
    };
    let direct = [Some(topo.ctr_v4()), Some(topo.ctr_v6())];
    // Fresh links: IPv6 may need a moment (neighbour discovery) before it forwards.
    let settled = |topo: &Topo, want: &[Option<String>; 2]| {
        let mut last = routed(topo);
        for _ in 0..10 {
            if last == *want {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            last = routed(topo);
        }
        last
    };
    assert_eq!(settled(&topo, &direct), direct, "routed before berth");

    // A host that already routes keeps routing: berth turned nothing on (as Docker, which sets
    // the FORWARD policy to DROP only when it enabled forwarding itself).
    let dir = state_dir("fwkeep");
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        let a = container("fk");
        mgr.attach("bridge", req(&a, &[])).await.unwrap();
        assert_eq!(routed(&topo), direct, "berth dropped a router's traffic");
        mgr.detach("bridge", &a.name).await.unwrap();
        mgr.teardown_all().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(dir);

    // IPv4 forwarding off: berth turns it on, and drops IPv4 forwarded traffic that is not its
    // own; IPv6 forwarding, on already, is left alone.
    sh("sysctl -qw net.ipv4.ip_forward=0");
    let dir = state_dir("fwdrop");
    let v4_dropped = [None, Some(topo.ctr_v6())];
    rt().block_on(async {
        let mut mgr = open(&dir).await;
        let a = container("fa");
        mgr.attach("bridge", req(&a, &[])).await.unwrap();
        assert_eq!(
            routed(&topo),
            v4_dropped,
            "forwarded traffic outside berth passed"
        );
        // ... while a container still reaches out, masqueraded.
        assert_eq!(
            ask(Some(&a), &format!("{}:80", topo.cli_v4())).unwrap(),
            topo.host_v4()
        );
        // A restart finds forwarding on, and keeps the drop (it is in the records).
        drop(mgr);
        let mut mgr = open(&dir).await;
        assert_eq!(routed(&topo), v4_dropped, "the drop went with a restart");
        let chain = Command::new("nft")
            .args(["list", "chain", "inet", "berth", "forward"])
            .output()
            .unwrap();
        let chain = String::from_utf8_lossy(&chain.stdout).into_owned();
        assert!(chain.contains("IPv4 forwarding berth turned on"), "{chain}");
        assert!(
            !chain.contains("IPv6 forwarding berth turned on"),
            "{chain}"
        );
        mgr.detach("bridge", &a.name).await.unwrap();
        mgr.teardown_all().await.unwrap();
    });
    // berth's tables gone: the host routes again.
    assert_eq!(settled(&topo, &direct), direct, "routed after berth left");
    let _ = std::fs::remove_dir_all(dir);
}
