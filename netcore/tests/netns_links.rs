//! Privileged tests of the link layer against the real kernel: the test process's namespace plays
//! the host (scripts/netns-test.sh makes it a throwaway one) and each test makes its own
//! "container" namespaces, links and subnets. Run through scripts/netns-test.sh.

#[allow(dead_code)]
#[path = "../../portproxy/tests/netns_support/mod.rs"]
mod netns_support;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use netcore::link::{
    Bridge, BridgeNet, EndpointLink, Ipvlan, IpvlanMode, IpvlanNet, LinkDriver, LinkError, LinkOp,
    MacAddr, Macvlan, MacvlanMode, MacvlanNet, Netlink, NoneMode, NsRef, RtNetlink, apply_all,
    apply_best_effort,
};
use netns_support::{Netns, enabled, sh};
use serde_json::Value;
use tokio::runtime::Runtime;

fn rt() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A number unique to this test in this run, for link and namespace names.
fn uid() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    (std::process::id() % 900) * 10 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs a command and returns its stdout, panicking with its output when it fails.
fn out(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(cmd: &str) -> Value {
    let text = out(cmd);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("`{cmd}` printed no JSON ({e}): {text}"))
}

/// The host namespace's links and addresses, as `ip -j` shows them.
fn host_state() -> (Value, Value) {
    (json("ip -j link"), json("ip -j addr"))
}

/// Whether `ping` from namespace `ns` to `to` gets an answer (three tries, for slow ARP/ND).
fn pings(ns: &Netns, to: &str) -> bool {
    let family = if to.contains(':') { "-6" } else { "-4" };
    (0..3).any(|_| {
        Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "busybox", "ping", family, "-c1", "-W2", to,
            ])
            .output()
            .unwrap()
            .status
            .success()
    })
}

fn ns_path(ns: &Netns) -> std::path::PathBuf {
    format!("/run/netns/{}", ns.name).into()
}

fn endpoint(ns: &Netns, ifname: &str, host: &str, addrs: &[&str], gws: &[&str]) -> EndpointLink {
    EndpointLink {
        ns: ns_path(ns),
        ifname: ifname.into(),
        host_ifname: host.into(),
        mac: None,
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        gateways: gws.iter().map(|g| g.parse().unwrap()).collect(),
        mtu: None,
    }
}

fn apply(rt: &Runtime, nl: &mut RtNetlink, ops: &[LinkOp]) {
    rt.block_on(apply_all(nl, ops))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn remove(rt: &Runtime, nl: &mut RtNetlink, ops: &[LinkOp]) {
    rt.block_on(apply_best_effort(nl, ops))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The link names inside namespace `ns`.
fn links_in(ns: &Netns) -> Vec<String> {
    json(&format!("ip -n {} -j link", ns.name))
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// The addresses (without prefix) of `dev` inside `ns`.
fn addrs_of(ns: &Netns, dev: &str) -> Vec<String> {
    json(&format!("ip -n {} -j addr show dev {dev}", ns.name))[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["local"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bridge_connects_namespaces_and_cleans_up() {
    if !enabled("bridge_connects_namespaces_and_cleans_up") {
        return;
    }
    let id = uid();
    let before = host_state();
    let (a, b) = (
        Netns::new(format!("bla{id}")),
        Netns::new(format!("blb{id}")),
    );
    let net = Bridge(BridgeNet {
        bridge: format!("blbr{id}"),
        mtu: Some(1400),
        gateways: vec![
            "10.77.0.1/24".parse().unwrap(),
            "fd00:77::1/64".parse().unwrap(),
        ],
    });
    let gws = ["10.77.0.1", "fd00:77::1"];
    let ep_a = endpoint(
        &a,
        "eth0",
        &format!("blv{id}a"),
        &["10.77.0.2/24", "fd00:77::2/64"],
        &gws,
    );
    let ep_b = endpoint(
        &b,
        "eth0",
        &format!("blv{id}b"),
        &["10.77.0.3/24", "fd00:77::3/64"],
        &gws,
    );
    let rt = rt();
    let mut nl = RtNetlink::new();
    apply(&rt, &mut nl, &net.setup());
    apply(&rt, &mut nl, &net.connect(&ep_a));
    apply(&rt, &mut nl, &net.connect(&ep_b));

    for (from, to) in [
        (&a, "10.77.0.3"),
        (&b, "10.77.0.2"),
        (&a, "fd00:77::3"),
        (&b, "fd00:77::2"),
    ] {
        assert!(pings(from, to), "{} cannot ping {to}", from.name);
    }
    for ns in [&a, &b] {
        assert!(
            pings(ns, "10.77.0.1"),
            "{} cannot ping the gateway",
            ns.name
        );
        assert!(
            pings(ns, "fd00:77::1"),
            "{} cannot ping the v6 gateway",
            ns.name
        );
    }

    // eth0: derived MAC, MTU of the network, default routes through the gateways.
    let eth0 = &json(&format!("ip -n {} -j link show eth0", a.name))[0];
    assert_eq!(
        eth0["address"].as_str().unwrap(),
        MacAddr::from_ipv4("10.77.0.2".parse().unwrap()).to_string()
    );
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(links_in(&a), ["lo", "eth0"]);
    let v4 = json(&format!("ip -n {} -j route show default", a.name));
    assert_eq!(v4[0]["gateway"], "10.77.0.1", "{v4}");
    assert_eq!(v4[0]["dev"], "eth0", "{v4}");
    let v6 = json(&format!("ip -n {} -j -6 route show default", a.name));
    assert_eq!(v6[0]["gateway"], "fd00:77::1", "{v6}");

    // Host side: a port of the bridge, with hairpin on.
    let port = &json(&format!("ip -j -d link show {}", ep_a.host_ifname))[0];
    assert_eq!(port["master"], net.0.bridge.as_str(), "{port}");
    assert_eq!(
        port["linkinfo"]["info_slave_data"]["hairpin"], true,
        "{port}"
    );
    assert_eq!(port["mtu"], 1400);
    assert!(
        rt.block_on(nl.link_exists(&NsRef::Host, &ep_a.host_ifname))
            .unwrap()
    );

    remove(&rt, &mut nl, &net.disconnect(&ep_a));
    remove(&rt, &mut nl, &net.disconnect(&ep_b));
    assert_eq!(links_in(&a), ["lo"]);
    remove(&rt, &mut nl, &net.teardown());
    assert_eq!(host_state(), before);
    // Teardown is idempotent.
    remove(&rt, &mut nl, &net.disconnect(&ep_a));
    remove(&rt, &mut nl, &net.teardown());
    assert_eq!(host_state(), before);
}

#[test]
fn a_second_network_joins_and_leaves_a_live_namespace() {
    if !enabled("a_second_network_joins_and_leaves_a_live_namespace") {
        return;
    }
    let id = uid();
    let before = host_state();
    let c = Netns::new(format!("bl2c{id}"));
    let first = Bridge(BridgeNet {
        bridge: format!("bl2x{id}"),
        mtu: None,
        gateways: vec!["10.79.1.1/24".parse().unwrap()],
    });
    let second = Bridge(BridgeNet {
        bridge: format!("bl2y{id}"),
        mtu: None,
        gateways: vec!["10.79.2.1/24".parse().unwrap()],
    });
    let ep0 = endpoint(
        &c,
        "eth0",
        &format!("bl2v{id}x"),
        &["10.79.1.2/24"],
        &["10.79.1.1"],
    );
    // Not the primary network: no default route.
    let ep1 = endpoint(&c, "eth1", &format!("bl2v{id}y"), &["10.79.2.2/24"], &[]);
    let rt = rt();
    let mut nl = RtNetlink::new();
    apply(&rt, &mut nl, &first.setup());
    apply(&rt, &mut nl, &second.setup());
    apply(&rt, &mut nl, &first.connect(&ep0));
    assert!(pings(&c, "10.79.1.1"));

    apply(&rt, &mut nl, &second.connect(&ep1));
    assert_eq!(links_in(&c), ["lo", "eth0", "eth1"]);
    assert_eq!(addrs_of(&c, "eth1")[0], "10.79.2.2");
    assert!(pings(&c, "10.79.2.1"));
    let routes = json(&format!("ip -n {} -j route show default", c.name));
    assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
    assert_eq!(routes[0]["dev"], "eth0");

    remove(&rt, &mut nl, &second.disconnect(&ep1));
    assert_eq!(links_in(&c), ["lo", "eth0"]);
    let ns = NsRef::Path(ns_path(&c));
    assert!(!rt.block_on(nl.link_exists(&ns, "eth1")).unwrap());
    assert!(rt.block_on(nl.link_exists(&ns, "eth0")).unwrap());
    assert!(pings(&c, "10.79.1.1"), "eth0 lost its connectivity");

    remove(&rt, &mut nl, &first.disconnect(&ep0));
    remove(&rt, &mut nl, &second.teardown());
    remove(&rt, &mut nl, &first.teardown());
    assert_eq!(host_state(), before);
}

#[test]
fn a_failed_connect_leaves_nothing_behind() {
    if !enabled("a_failed_connect_leaves_nothing_behind") {
        return;
    }
    let id = uid();
    let before = host_state();
    let c = Netns::new(format!("blfc{id}"));
    let net = Bridge(BridgeNet {
        bridge: format!("blfb{id}"),
        mtu: None,
        gateways: vec!["10.80.0.1/24".parse().unwrap()],
    });
    // The gateway is not on the endpoint's subnet: the route fails after the veth exists.
    let ep = endpoint(
        &c,
        "eth0",
        &format!("blfv{id}"),
        &["10.80.0.2/24"],
        &["10.99.0.1"],
    );
    let rt = rt();
    let mut nl = RtNetlink::new();
    apply(&rt, &mut nl, &net.setup());
    let err = rt
        .block_on(apply_all(&mut nl, &net.connect(&ep)))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "failed to add default route via 10.99.0.1 on eth0 in netns /run/netns/{}: ",
            c.name
        )),
        "{text}"
    );
    assert_eq!(err.errno(), Some(nix::libc::ENETUNREACH), "{text}");
    assert_eq!(links_in(&c), ["lo"]);
    assert!(
        !rt.block_on(nl.link_exists(&NsRef::Host, &ep.host_ifname))
            .unwrap()
    );

    // A namespace that no longer exists has no links left to delete.
    let gone = LinkOp::DeleteLink {
        ns: NsRef::path(format!("/run/netns/blgone{id}")),
        name: "eth0".into(),
    };
    remove(&rt, &mut nl, &[gone]);
    remove(&rt, &mut nl, &net.teardown());
    assert_eq!(host_state(), before);
}

/// A veth pair in the host namespace, both ends up, to stand in for a NIC (this kernel has no
/// dummy driver).
struct Parent(String);

impl Parent {
    fn new(name: String) -> Parent {
        sh(&format!("ip link add {name} type veth peer name {name}p"));
        sh(&format!("ip link set {name}p up"));
        sh(&format!("ip link set {name} up"));
        Parent(name)
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn macvlan_endpoints_talk_through_the_parent() {
    if !enabled("macvlan_endpoints_talk_through_the_parent") {
        return;
    }
    let id = uid();
    let before = host_state();
    let parent = Parent::new(format!("blmp{id}"));
    let (a, b) = (
        Netns::new(format!("blma{id}")),
        Netns::new(format!("blmb{id}")),
    );
    let net = Macvlan(MacvlanNet {
        parent: parent.0.clone(),
        mode: MacvlanMode::Bridge,
    });
    let ep_a = endpoint(&a, "eth0", "", &["10.78.0.2/24"], &["10.78.0.1"]);
    let ep_b = endpoint(&b, "eth0", "", &["10.78.0.3/24"], &["10.78.0.1"]);
    let rt = rt();
    let mut nl = RtNetlink::new();
    assert!(
        rt.block_on(nl.link_exists(&NsRef::Host, &parent.0))
            .unwrap()
    );
    let with_parent = host_state();
    apply(&rt, &mut nl, &net.setup());
    apply(&rt, &mut nl, &net.connect(&ep_a));
    apply(&rt, &mut nl, &net.connect(&ep_b));
    assert_eq!(
        host_state(),
        with_parent,
        "a macvlan appeared in the host namespace"
    );

    let eth0 = &json(&format!("ip -n {} -j -d link show eth0", a.name))[0];
    assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan", "{eth0}");
    assert_eq!(eth0["linkinfo"]["info_data"]["mode"], "bridge", "{eth0}");
    assert_eq!(
        eth0["address"].as_str().unwrap(),
        MacAddr::from_ipv4("10.78.0.2".parse().unwrap()).to_string()
    );
    let route = json(&format!("ip -n {} -j route show default", a.name));
    assert_eq!(route[0]["gateway"], "10.78.0.1", "{route}");
    assert!(pings(&a, "10.78.0.3"));
    assert!(pings(&b, "10.78.0.2"));

    remove(&rt, &mut nl, &net.disconnect(&ep_a));
    remove(&rt, &mut nl, &net.disconnect(&ep_b));
    remove(&rt, &mut nl, &net.teardown());
    assert_eq!(links_in(&a), ["lo"]);
    assert_eq!(links_in(&b), ["lo"]);
    assert_eq!(host_state(), with_parent);
    drop(parent);
    assert_eq!(host_state(), before);
}

#[test]
fn ipvlan_works_or_reports_a_kernel_without_it() {
    if !enabled("ipvlan_works_or_reports_a_kernel_without_it") {
        return;
    }
    let id = uid();
    let before = host_state();
    let parent = Parent::new(format!("blip{id}"));
    let (a, b) = (
        Netns::new(format!("blia{id}")),
        Netns::new(format!("blib{id}")),
    );
    let net = Ipvlan(IpvlanNet {
        parent: parent.0.clone(),
        mode: IpvlanMode::L2,
    });
    let ep_a = endpoint(&a, "eth0", "", &["10.81.0.2/24"], &["10.81.0.1"]);
    let ep_b = endpoint(&b, "eth0", "", &["10.81.0.3/24"], &["10.81.0.1"]);
    let rt = rt();
    let mut nl = RtNetlink::new();
    let with_parent = host_state();
    match rt.block_on(apply_all(&mut nl, &net.connect(&ep_a))) {
        Err(e @ LinkError::KernelUnsupported { .. }) => {
            eprintln!("ipvlan unsupported here (errno {:?}): {e}", e.errno());
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "cannot create ipvlan link eth0 in netns /run/netns/{}: this kernel has no \
                     ipvlan support (CONFIG_IPVLAN): ",
                    a.name
                )),
                "{text}"
            );
            assert_eq!(links_in(&a), ["lo"]);
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(()) => {
            apply(&rt, &mut nl, &net.connect(&ep_b));
            let eth0 = &json(&format!("ip -n {} -j -d link show eth0", a.name))[0];
            assert_eq!(eth0["linkinfo"]["info_kind"], "ipvlan", "{eth0}");
            assert!(pings(&a, "10.81.0.3"));
            remove(&rt, &mut nl, &net.disconnect(&ep_a));
            remove(&rt, &mut nl, &net.disconnect(&ep_b));
            assert_eq!(links_in(&a), ["lo"]);
        }
    }
    assert_eq!(host_state(), with_parent);
    drop(parent);
    assert_eq!(host_state(), before);
}

#[test]
fn none_mode_brings_up_loopback_only() {
    if !enabled("none_mode_brings_up_loopback_only") {
        return;
    }
    let id = uid();
    let before = host_state();
    let c = Netns::new(format!("blnc{id}"));
    sh(&format!("ip -n {} link set lo down", c.name));
    let ep = endpoint(&c, "eth0", "", &[], &[]);
    let rt = rt();
    let mut nl = RtNetlink::new();
    apply(&rt, &mut nl, &NoneMode.connect(&ep));
    let links = json(&format!("ip -n {} -j link", c.name));
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links[0]["ifname"], "lo");
    let flags: Vec<&str> = links[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(flags.contains(&"UP"), "{flags:?}");
    assert!(pings(&c, "127.0.0.1"));
    remove(&rt, &mut nl, &NoneMode.disconnect(&ep));
    assert_eq!(host_state(), before);
}

#[test]
fn a_deleted_namespace_takes_its_veth_with_it() {
    if !enabled("a_deleted_namespace_takes_its_veth_with_it") {
        return;
    }
    let id = uid();
    let before = host_state();
    let c = Netns::new(format!("bldc{id}"));
    let net = Bridge(BridgeNet {
        bridge: format!("bldb{id}"),
        mtu: None,
        gateways: vec!["10.82.0.1/24".parse().unwrap()],
    });
    let ep = endpoint(
        &c,
        "eth0",
        &format!("bldv{id}"),
        &["10.82.0.2/24"],
        &["10.82.0.1"],
    );
    let rt = rt();
    let mut nl = RtNetlink::new();
    apply(&rt, &mut nl, &net.setup());
    apply(&rt, &mut nl, &net.connect(&ep));
    assert!(
        rt.block_on(nl.link_exists(&NsRef::Host, &ep.host_ifname))
            .unwrap()
    );
    // The container goes away without a disconnect. RtNetlink must not hold the namespace open
    // (a netlink socket inside it would keep it, and the veth, alive).
    drop(c);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while rt
        .block_on(nl.link_exists(&NsRef::Host, &ep.host_ifname))
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the veth outlived its namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Disconnecting afterwards is harmless.
    remove(&rt, &mut nl, &net.disconnect(&ep));
    remove(&rt, &mut nl, &net.teardown());
    assert_eq!(host_state(), before);
}
