//! What each message carries, and that it survives emit + parse unchanged (so the kernel reads
//! what we meant).

use rtnetlink::packet_core::{Emitable, Parseable};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoIpVlan, InfoMacVlan, InfoPortData, InfoPortKind, LinkFlags, LinkInfo,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteScope};

use super::*;

fn round_trip(msg: &LinkMessage) -> LinkMessage {
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    LinkMessage::parse(buf.as_slice()).unwrap()
}

fn link_infos(msg: &LinkMessage) -> &[LinkInfo] {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => Some(infos.as_slice()),
            _ => None,
        })
        .expect("IFLA_LINKINFO")
}

fn has(msg: &LinkMessage, attr: &LinkAttribute) -> bool {
    msg.attributes.contains(attr)
}

#[test]
fn ipvlan_message_carries_kind_mode_parent_and_namespace() {
    let msg = ipvlan("eth0", 7, IpvlanMode::L3, Some(1400), 12);
    assert!(has(&msg, &LinkAttribute::IfName("eth0".into())));
    assert!(has(&msg, &LinkAttribute::Link(7)));
    assert!(has(&msg, &LinkAttribute::NetNsFd(12)));
    assert!(has(&msg, &LinkAttribute::Mtu(1400)));
    assert_eq!(
        link_infos(&msg),
        &[
            LinkInfo::Kind(InfoKind::IpVlan),
            LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(nl::IpVlanMode::L3)])),
        ]
    );
    assert_eq!(round_trip(&msg), msg);
    let l2 = ipvlan("eth1", 3, IpvlanMode::L2, None, 5);
    assert!(
        link_infos(&l2).contains(&LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(
            nl::IpVlanMode::L2
        )])))
    );
    assert!(
        !l2.attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Mtu(_)))
    );
    assert_eq!(round_trip(&l2), l2);
}

#[test]
fn macvlan_message_carries_kind_mode_parent_mac_and_namespace() {
    let mac: MacAddr = "02:42:0a:00:00:02".parse().unwrap();
    for (mode, wire) in [
        (MacvlanMode::Bridge, nl::MacVlanMode::Bridge),
        (MacvlanMode::Private, nl::MacVlanMode::Private),
        (MacvlanMode::Vepa, nl::MacVlanMode::Vepa),
        (MacvlanMode::Passthru, nl::MacVlanMode::Passthrough),
    ] {
        let msg = macvlan("eth0", 4, mode, Some(mac), None, 9);
        assert!(has(&msg, &LinkAttribute::IfName("eth0".into())));
        assert!(has(&msg, &LinkAttribute::Link(4)));
        assert!(has(&msg, &LinkAttribute::NetNsFd(9)));
        assert!(has(&msg, &LinkAttribute::Address(mac.0.to_vec())));
        assert_eq!(
            link_infos(&msg),
            &[
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(wire)])),
            ]
        );
        // Created down: SetUp comes after the addresses.
        assert!(!msg.header.flags.contains(LinkFlags::Up));
        assert_eq!(round_trip(&msg), msg);
    }
}

#[test]
fn veth_peer_is_created_in_the_container_with_its_final_name() {
    let mac: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
    let msg = veth("veth1a2b", 5, Some(1450), "eth0", Some(mac), 11);
    assert!(has(&msg, &LinkAttribute::IfName("veth1a2b".into())));
    assert!(has(&msg, &LinkAttribute::Controller(5)));
    assert!(has(&msg, &LinkAttribute::Mtu(1450)));
    // The host end stays in the calling namespace.
    assert!(
        !msg.attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::NetNsFd(_)))
    );
    let infos = link_infos(&msg);
    assert_eq!(infos[0], LinkInfo::Kind(InfoKind::Veth));
    let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &infos[1] else {
        panic!("no peer in {infos:?}");
    };
    for attr in [
        LinkAttribute::IfName("eth0".into()),
        LinkAttribute::NetNsFd(11),
        LinkAttribute::Address(mac.0.to_vec()),
        LinkAttribute::Mtu(1450),
    ] {
        assert!(has(peer, &attr), "peer lacks {attr:?}: {peer:?}");
    }
    assert_eq!(round_trip(&msg), msg);
}

#[test]
fn bridge_up_hairpin_and_delete_messages() {
    let msg = bridge("berth1", Some(9000));
    assert_eq!(link_infos(&msg), &[LinkInfo::Kind(InfoKind::Bridge)]);
    assert!(has(&msg, &LinkAttribute::Mtu(9000)));
    assert!(!msg.header.flags.contains(LinkFlags::Up));
    assert_eq!(round_trip(&msg), msg);

    let up = set_up("eth0");
    assert_eq!(up.header.index, 0);
    assert!(up.header.flags.contains(LinkFlags::Up));
    assert!(up.header.change_mask.contains(LinkFlags::Up));
    assert_eq!(round_trip(&up), up);

    let hp = hairpin(8, true);
    assert_eq!(hp.header.index, 8);
    assert_eq!(
        link_infos(&hp),
        &[
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true
            )])),
        ]
    );
    assert_eq!(round_trip(&hp), hp);

    let del = delete("veth9");
    assert_eq!(del.attributes, vec![LinkAttribute::IfName("veth9".into())]);
}

#[test]
fn addresses_carry_prefix_and_nodad() {
    let msg = address(3, "fd00::2/64".parse().unwrap(), true);
    assert_eq!(msg.header.index, 3);
    assert_eq!(msg.header.prefix_len, 64);
    assert!(msg.header.flags.contains(AddressHeaderFlags::Nodad));
    assert!(
        msg.attributes
            .contains(&AddressAttribute::Local("fd00::2".parse().unwrap()))
    );
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    let parsed = AddressMessage::parse(buf.as_slice()).unwrap();
    assert_eq!(parsed, msg);

    let v4 = address(3, "10.0.0.2/24".parse().unwrap(), false);
    assert!(!v4.header.flags.contains(AddressHeaderFlags::Nodad));
    assert!(
        v4.attributes
            .contains(&AddressAttribute::Broadcast("10.0.0.255".parse().unwrap()))
    );
}

#[test]
fn default_routes_via_gateway_or_device() {
    let msg = default_route(4, RouteVia::Gateway("10.0.0.1".parse().unwrap()));
    assert_eq!(msg.header.destination_prefix_length, 0);
    assert!(msg.attributes.contains(&RouteAttribute::Oif(4)));
    assert!(
        msg.attributes
            .contains(&RouteAttribute::Gateway(RouteAddress::Inet(
                "10.0.0.1".parse().unwrap()
            )))
    );
    assert_eq!(msg.header.scope, RouteScope::Universe);
    let dev = default_route(4, RouteVia::Device(IpFamily::V6));
    assert_eq!(dev.header.scope, RouteScope::Link);
    assert!(
        !dev.attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Gateway(_)))
    );
    for m in [msg, dev] {
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        assert_eq!(RouteMessage::parse(buf.as_slice()).unwrap(), m);
    }
}
