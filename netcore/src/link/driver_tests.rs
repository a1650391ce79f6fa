//! Plans of every driver, checked op by op.

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ctr() -> NsRef {
    NsRef::path("/run/netns/c1")
}

fn endpoint(addresses: &[&str], gateways: &[&str]) -> EndpointLink {
    EndpointLink {
        ns: "/run/netns/c1".into(),
        ifname: "eth0".into(),
        host_ifname: "veth1a2b3c4".into(),
        mac: None,
        addresses: addresses.iter().map(|a| net(a)).collect(),
        gateways: gateways.iter().map(|g| ip(g)).collect(),
        mtu: None,
    }
}

fn bridge() -> Bridge {
    Bridge(BridgeNet {
        bridge: "berth0".into(),
        mtu: Some(1450),
        gateways: vec![net("172.17.0.1/16"), net("fd00::1/64")],
    })
}

#[test]
fn bridge_setup_creates_addresses_and_raises_the_bridge() {
    let b = bridge();
    assert_eq!(b.kind(), "bridge");
    assert_eq!(
        b.setup(),
        vec![
            LinkOp::CreateBridge {
                name: "berth0".into(),
                mtu: Some(1450)
            },
            LinkOp::AddAddress {
                ns: NsRef::Host,
                link: "berth0".into(),
                addr: net("172.17.0.1/16"),
                nodad: false
            },
            LinkOp::AddAddress {
                ns: NsRef::Host,
                link: "berth0".into(),
                addr: net("fd00::1/64"),
                nodad: true
            },
            LinkOp::SetUp {
                ns: NsRef::Host,
                link: "berth0".into()
            },
        ]
    );
    assert_eq!(
        b.teardown(),
        vec![LinkOp::DeleteLink {
            ns: NsRef::Host,
            name: "berth0".into()
        }]
    );
}

#[test]
fn bridge_connect_dual_stack() {
    let ep = endpoint(&["172.17.0.2/16", "fd00::2/64"], &["172.17.0.1", "fd00::1"]);
    assert_eq!(
        bridge().connect(&ep),
        vec![
            LinkOp::CreateVeth {
                host_name: "veth1a2b3c4".into(),
                master: "berth0".into(),
                mtu: Some(1450),
                peer_ns: "/run/netns/c1".into(),
                peer_name: "eth0".into(),
                peer_mac: Some("02:42:ac:11:00:02".parse().unwrap()),
            },
            LinkOp::SetHairpin {
                link: "veth1a2b3c4".into(),
                on: true
            },
            LinkOp::SetUp {
                ns: NsRef::Host,
                link: "veth1a2b3c4".into()
            },
            LinkOp::AddAddress {
                ns: ctr(),
                link: "eth0".into(),
                addr: net("172.17.0.2/16"),
                nodad: false
            },
            LinkOp::AddAddress {
                ns: ctr(),
                link: "eth0".into(),
                addr: net("fd00::2/64"),
                nodad: true
            },
            LinkOp::SetUp {
                ns: ctr(),
                link: "eth0".into()
            },
            LinkOp::AddDefaultRoute {
                ns: ctr(),
                link: "eth0".into(),
                via: RouteVia::Gateway(ip("172.17.0.1"))
            },
            LinkOp::AddDefaultRoute {
                ns: ctr(),
                link: "eth0".into(),
                via: RouteVia::Gateway(ip("fd00::1"))
            },
        ]
    );
    assert_eq!(
        bridge().disconnect(&ep),
        vec![LinkOp::DeleteLink {
            ns: NsRef::Host,
            name: "veth1a2b3c4".into()
        }]
    );
}

#[test]
fn internal_bridge_endpoint_gets_no_default_route() {
    let ep = endpoint(&["172.18.0.2/16"], &[]);
    let ops = bridge().connect(&ep);
    assert!(
        !ops.iter()
            .any(|op| matches!(op, LinkOp::AddDefaultRoute { .. })),
        "{ops:?}"
    );
    assert_eq!(
        ops.last(),
        Some(&LinkOp::SetUp {
            ns: ctr(),
            link: "eth0".into()
        })
    );
}

#[test]
fn endpoint_choices_win_over_network_defaults() {
    let mut ep = endpoint(&["fd00::5/64"], &[]);
    // IPv6 only, no MAC given: the kernel picks one.
    match &bridge().connect(&ep)[0] {
        LinkOp::CreateVeth { peer_mac, mtu, .. } => {
            assert_eq!(*peer_mac, None);
            assert_eq!(*mtu, Some(1450));
        }
        op => panic!("unexpected {op:?}"),
    }
    let mac: MacAddr = "02:00:00:00:00:09".parse().unwrap();
    ep.mac = Some(mac);
    ep.mtu = Some(9000);
    match &bridge().connect(&ep)[0] {
        LinkOp::CreateVeth { peer_mac, mtu, .. } => {
            assert_eq!(*peer_mac, Some(mac));
            assert_eq!(*mtu, Some(9000));
        }
        op => panic!("unexpected {op:?}"),
    }
}

#[test]
fn macvlan_is_created_in_the_container_with_routes() {
    let m = Macvlan(MacvlanNet {
        parent: "eno1".into(),
        mode: MacvlanMode::Private,
    });
    assert_eq!(m.kind(), "macvlan");
    assert!(m.setup().is_empty() && m.teardown().is_empty());
    let ep = endpoint(&["192.168.1.20/24"], &["192.168.1.1"]);
    assert_eq!(
        m.connect(&ep),
        vec![
            LinkOp::CreateMacvlan {
                parent: "eno1".into(),
                ns: "/run/netns/c1".into(),
                name: "eth0".into(),
                mode: MacvlanMode::Private,
                mac: Some("02:42:c0:a8:01:14".parse().unwrap()),
                mtu: None,
            },
            LinkOp::AddAddress {
                ns: ctr(),
                link: "eth0".into(),
                addr: net("192.168.1.20/24"),
                nodad: false
            },
            LinkOp::SetUp {
                ns: ctr(),
                link: "eth0".into()
            },
            LinkOp::AddDefaultRoute {
                ns: ctr(),
                link: "eth0".into(),
                via: RouteVia::Gateway(ip("192.168.1.1"))
            },
        ]
    );
    assert_eq!(
        m.disconnect(&ep),
        vec![LinkOp::DeleteLink {
            ns: ctr(),
            name: "eth0".into()
        }]
    );
}

#[test]
fn ipvlan_l2_routes_via_gateway_and_l3_via_device() {
    let ep = endpoint(
        &["192.168.1.20/24", "fd00:1::20/64"],
        &["192.168.1.1", "fd00:1::1"],
    );
    let l2 = Ipvlan(IpvlanNet {
        parent: "eno1".into(),
        mode: IpvlanMode::L2,
    });
    let ops = l2.connect(&ep);
    assert_eq!(
        ops[0],
        LinkOp::CreateIpvlan {
            parent: "eno1".into(),
            ns: "/run/netns/c1".into(),
            name: "eth0".into(),
            mode: IpvlanMode::L2,
            mtu: None
        }
    );
    let routes = |ops: &[LinkOp]| -> Vec<RouteVia> {
        ops.iter()
            .filter_map(|op| match op {
                LinkOp::AddDefaultRoute { via, .. } => Some(*via),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        routes(&ops),
        vec![
            RouteVia::Gateway(ip("192.168.1.1")),
            RouteVia::Gateway(ip("fd00:1::1"))
        ]
    );
    let l3 = Ipvlan(IpvlanNet {
        parent: "eno1".into(),
        mode: IpvlanMode::L3,
    });
    assert_eq!(
        routes(&l3.connect(&ep)),
        vec![
            RouteVia::Device(IpFamily::V4),
            RouteVia::Device(IpFamily::V6)
        ]
    );
    // No gateway asked for (internal): no device route either.
    assert!(routes(&l3.connect(&endpoint(&["10.0.0.2/24"], &[]))).is_empty());
    assert_eq!(
        l2.disconnect(&ep),
        Macvlan(MacvlanNet {
            parent: "eno1".into(),
            mode: MacvlanMode::Bridge
        })
        .disconnect(&ep)
    );
}

#[test]
fn special_modes() {
    let ep = endpoint(&[], &[]);
    assert_eq!(
        NoneMode.connect(&ep),
        vec![LinkOp::SetUp {
            ns: ctr(),
            link: "lo".into()
        }]
    );
    assert!(NoneMode.disconnect(&ep).is_empty());
    let drivers: [&dyn LinkDriver; 2] = [&HostMode, &ContainerMode];
    for d in drivers {
        assert!(d.setup().is_empty() && d.teardown().is_empty());
        assert!(d.connect(&ep).is_empty() && d.disconnect(&ep).is_empty());
    }
    assert_eq!(
        [HostMode.kind(), NoneMode.kind(), ContainerMode.kind()],
        ["host", "none", "container"]
    );
}
