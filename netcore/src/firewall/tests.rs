//! Tests of the rule generator and the firewall's apply logic. Those that hand batches to the
//! kernel use `nft -c` (check only: the kernel validates and discards) and skip without root.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use portproxy::spec::{Mapping, PortSpec, Protocol};
use proptest::prelude::*;

use super::nft::{Nft, NftCommand, RecordingNft};
use super::plan::{self, Batch};
use super::ruleset::{Elem, SetId, elements, skeleton};
use super::*;

fn net(bridge: &str, subnets: &[&str]) -> (String, BridgeRules) {
    (
        bridge.to_string(),
        BridgeRules {
            subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
            ..BridgeRules::default()
        },
    )
}

fn publish(state: &mut FirewallState, spec: &str, container: &str) {
    let spec: PortSpec = spec.parse().unwrap();
    state
        .published
        .extend(spec.mappings(container.parse().unwrap()));
}

/// Two networks (one dual-stack), an internal one, an icc=false one, and every kind of port.
fn sample() -> FirewallState {
    let mut s = FirewallState::default();
    s.bridges.extend([
        net("berth0", &["172.17.0.0/16"]),
        net("br-a", &["172.18.0.0/16", "fd00:18::/64"]),
    ]);
    let (name, mut internal) = net("br-int", &["172.19.0.0/16"]);
    internal.internal = true;
    s.bridges.insert(name, internal);
    let (name, mut closed) = net("br-noicc", &["172.20.0.0/16"]);
    closed.icc = false;
    s.bridges.insert(name, closed);
    s.ports.insert("veth0000001".into(), "berth0".into());
    s.ports.insert("veth0000002".into(), "br-noicc".into());
    s.ports.insert("veth0000003".into(), "br-noicc".into());
    publish(&mut s, "8080:80", "172.17.0.2");
    publish(&mut s, "10.0.0.1:5353:53/udp", "172.17.0.2");
    publish(&mut s, "9000-9009:9000-9009", "172.18.0.2");
    publish(&mut s, "[fd00::1]:8443:443", "fd00:18::2");
    publish(&mut s, "127.0.0.1:7000:70", "172.17.0.2");
    s
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root() && std::process::Command::new("nft").arg("-v").output().is_ok()
}

fn nft_check(batch: &Batch) -> Result<(), FirewallError> {
    NftCommand::check_only().apply(batch)
}

#[test]
fn elements_follow_the_state() {
    let e = elements(&sample());
    let names = |set| e.get(&set).map(|s| s.len()).unwrap_or(0);
    assert_eq!(names(SetId::Bridges), 4);
    assert_eq!(names(SetId::Internal), 1);
    // The internal network is not masqueraded; v4 subnets of the other three are.
    assert_eq!(names(SetId::Masq4), 3);
    assert_eq!(names(SetId::Masq6), 1);
    assert_eq!(names(SetId::NoIccPorts), 2);
    // 8080 (v4 any) + 10 ports of the range; the [::] halves go to v4 containers: proxy only.
    let dnat = |v6, any| {
        let (a, p) = (
            names(SetId::Dnat {
                v6,
                any,
                port: false,
            }),
            names(SetId::Dnat {
                v6,
                any,
                port: true,
            }),
        );
        assert_eq!(a, p, "address and port maps of v6={v6} any={any} differ");
        a
    };
    assert_eq!(dnat(false, true), 11);
    assert_eq!(dnat(false, false), 1);
    assert_eq!(dnat(true, false), 1);
    assert_eq!(dnat(true, true), 0);
    assert!(
        e[&SetId::Dnat {
            v6: false,
            any: true,
            port: true
        }]
            .contains(&Elem::Dnat {
                host: None,
                proto: Protocol::Tcp,
                port: 9005,
                to: "172.18.0.2:9005".parse().unwrap(),
            })
    );
}

#[test]
fn loopback_unknown_and_cross_family_ports_are_left_to_the_proxy() {
    let mut s = FirewallState::default();
    publish(&mut s, "127.0.0.1:7000:70", "172.17.0.2");
    publish(&mut s, "[::1]:7000:70", "fd00::2");
    publish(&mut s, "[::]:7001:70", "172.17.0.2");
    s.published.insert(Mapping {
        proto: Protocol::Tcp,
        host: "0.0.0.0:0".parse().unwrap(),
        container: "172.17.0.2:80".parse().unwrap(),
    });
    assert!(elements(&s).is_empty());
}

#[test]
fn rule_count_does_not_grow_with_ports_or_ranges() {
    let small = plan::full(&elements(&sample()), ForwardDrop::default());
    let mut big = sample();
    for i in 0..10_000u32 {
        let port = 10_000 + i as u16;
        big.published.insert(Mapping {
            proto: Protocol::Tcp,
            host: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port),
            container: SocketAddr::new(IpAddr::from([172, 17, 0, 2 + (i % 200) as u8]), 80),
        });
    }
    publish(&mut big, "20000-29999:20000-29999/udp", "172.18.0.9");
    let big = plan::full(&elements(&big), ForwardDrop::default());
    assert_eq!(small.rules_added(), big.rules_added());
    assert_eq!(small.rules_added(), 20);
    assert_eq!(big.elements_added() - small.elements_added(), 2 * 20_000);
}

#[test]
fn incremental_batches_carry_only_the_difference() {
    let before = sample();
    let mut after = before.clone();
    publish(&mut after, "8081:81", "172.17.0.3");
    let (b, a) = (elements(&before), elements(&after));
    let batch = plan::plan(&a, Some(&b), ForwardDrop::default());
    // One element in the address map and one in the port map.
    assert_eq!(batch.cmds.len(), 2);
    assert_eq!(batch.elements_added(), 2);
    assert_eq!(batch.rules_added(), 0);
    // And back: deletes only.
    let back = plan::plan(&b, Some(&a), ForwardDrop::default());
    assert_eq!(back.cmds.len(), 2);
    assert!(matches!(back.cmds[0], nftables::schema::NfCmd::Delete(_)));
    // Nothing changed: nothing to send.
    assert!(plan::plan(&a, Some(&a), ForwardDrop::default()).is_empty());
    // A port moving to another container: delete then add, one transaction.
    let mut moved = after.clone();
    moved.published.retain(|m| m.host.port() != 8081);
    publish(&mut moved, "8081:81", "172.17.0.4");
    let batch = plan::plan(&elements(&moved), Some(&a), ForwardDrop::default());
    assert_eq!(batch.cmds.len(), 4);
    assert!(matches!(batch.cmds[0], nftables::schema::NfCmd::Delete(_)));
}

#[test]
fn map_elements_encode_as_key_value_pairs() {
    let e = Elem::Dnat {
        host: Some("10.0.0.1".parse().unwrap()),
        proto: Protocol::Udp,
        port: 53,
        to: "172.17.0.2:5353".parse().unwrap(),
    };
    let set = |port| SetId::Dnat {
        v6: false,
        any: false,
        port,
    };
    assert_eq!(
        serde_json::to_value(e.to_expr(set(false), true)).unwrap(),
        serde_json::json!([{"concat": ["10.0.0.1", "udp", 53]}, "172.17.0.2"])
    );
    assert_eq!(
        serde_json::to_value(e.to_expr(set(true), true)).unwrap(),
        serde_json::json!([{"concat": ["10.0.0.1", "udp", 53]}, 5353])
    );
    assert_eq!(
        serde_json::to_value(e.to_expr(set(true), false)).unwrap(),
        serde_json::json!({"concat": ["10.0.0.1", "udp", 53]})
    );
}

#[test]
fn skeleton_rules_are_commented() {
    for obj in skeleton(ForwardDrop {
        ipv4: true,
        ipv6: true,
    }) {
        if let nftables::schema::NfListObject::Rule(r) = obj {
            assert!(
                r.comment.is_some(),
                "rule without a comment in chain {}",
                r.chain
            );
        }
    }
}

#[test]
fn firewall_applies_whole_then_differences_and_recovers() {
    let mut fw = Firewall::new(RecordingNft::default());
    let first = fw.apply(sample()).unwrap();
    assert!(first.full);
    let mut next = sample();
    publish(&mut next, "8082:82", "172.17.0.3");
    let second = fw.apply(next.clone()).unwrap();
    assert!(!second.full);
    assert_eq!(second.commands, 2);
    assert_eq!(fw.apply(next.clone()).unwrap(), Applied::default());
    assert_eq!(fw.nft().batches.len(), 2);

    // Someone flushed berth's tables: the incremental batch is refused, the whole is sent.
    let mut fw2 = Firewall::new(RecordingNft::default());
    fw2.apply(sample()).unwrap();
    fw2.nft.refuse = 1;
    let rebuilt = fw2.apply(next.clone()).unwrap();
    assert!(rebuilt.full);
    assert_eq!(fw2.nft().batches.len(), 3);

    // Both refused: the error comes back and the next apply starts from a whole rebuild.
    fw2.nft.refuse = 2;
    let mut third = next.clone();
    publish(&mut third, "8083:83", "172.17.0.3");
    assert!(fw2.apply(third.clone()).is_err());
    assert!(fw2.apply(third.clone()).unwrap().full);
}

#[test]
fn publish_and_unpublish_send_only_their_elements() {
    let mut fw = Firewall::new(RecordingNft::default());
    fw.apply(sample()).unwrap();
    let mut extra = FirewallState::default();
    publish(&mut extra, "8090-8091:90-91", "172.17.0.3");
    let extra: Vec<Mapping> = extra.published.into_iter().collect();
    let done = fw.publish(&extra).unwrap();
    assert!(!done.full);
    let batch = fw.nft().batches.last().unwrap().clone();
    // 2 ports x (0.0.0.0 -> v4: address + port maps); the [::] halves are proxy-only.
    assert_eq!(batch.elements_added(), 4);
    // The remembered state now has them: an apply of the same state sends nothing...
    let mut whole = sample();
    whole.published.extend(extra.iter().copied());
    assert_eq!(fw.apply(whole.clone()).unwrap(), Applied::default());
    // ...publishing them again sends nothing, and unpublishing deletes exactly them.
    assert_eq!(fw.publish(&extra).unwrap(), Applied::default());
    fw.unpublish(&extra).unwrap();
    let batch = fw.nft().batches.last().unwrap();
    assert_eq!(batch.cmds.len(), 2);
    assert!(
        batch
            .cmds
            .iter()
            .all(|c| matches!(c, nftables::schema::NfCmd::Delete(_)))
    );
    assert_eq!(fw.apply(sample()).unwrap(), Applied::default());
    // A refused change falls back to a whole rebuild that includes it.
    fw.nft_mut().refuse = 1;
    assert!(fw.publish(&extra).unwrap().full);
    assert_eq!(fw.apply(whole).unwrap(), Applied::default());
}

#[test]
fn nft_accepts_the_generated_batches() {
    if !is_root() {
        eprintln!("skipping: nft -c needs root and nft");
        return;
    }
    let a = elements(&sample());
    nft_check(&plan::full(&a, ForwardDrop::default())).unwrap();
    nft_check(&plan::full(&BTreeMap::new(), ForwardDrop::default())).unwrap();
    let both = ForwardDrop {
        ipv4: true,
        ipv6: true,
    };
    nft_check(&plan::full(&a, both)).unwrap();
    nft_check(&plan::remove_all()).unwrap();
    // An incremental batch on top of the whole one, in one transaction.
    let mut next = sample();
    next.bridges.remove("br-a");
    next.published
        .retain(|m| m.container.ip() != "172.18.0.2".parse::<IpAddr>().unwrap());
    publish(&mut next, "8090:90", "172.17.0.5");
    let mut both = plan::full(&a, ForwardDrop::default());
    both.cmds
        .extend(plan::plan(&elements(&next), Some(&a), ForwardDrop::default()).cmds);
    nft_check(&both).unwrap();
}

#[test]
fn nft_names_the_problem_when_it_refuses() {
    if !is_root() {
        eprintln!("skipping: nft -c needs root and nft");
        return;
    }
    // Adding an element to a set that does not exist (no tables in this batch).
    let mut s = FirewallState::default();
    publish(&mut s, "8080:80", "172.17.0.2");
    let batch = plan::plan(
        &elements(&s),
        Some(&BTreeMap::new()),
        ForwardDrop::default(),
    );
    let err = nft_check(&batch).unwrap_err().to_string();
    assert!(err.contains("nft refused"), "{err}");
    assert!(err.contains("No such file"), "{err}");
}

fn arb_state() -> impl Strategy<Value = FirewallState> {
    let bridge = (
        0u8..6,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let port = (0u8..4, any::<bool>(), 1u16.., 1u16.., 0u8..6, any::<u8>());
    (
        proptest::collection::vec(bridge, 0..6),
        proptest::collection::vec(port, 0..40),
    )
        .prop_map(|(bridges, ports)| {
            let mut s = FirewallState::default();
            for (i, internal, masq, icc, v6) in bridges {
                let mut subnets = vec![format!("172.{}.0.0/16", 20 + i).parse().unwrap()];
                if v6 {
                    subnets.push(format!("fd00:{i}::/64").parse().unwrap());
                }
                let name = format!("br-{i}");
                s.ports.insert(format!("veth{i}"), name.clone());
                s.bridges.insert(
                    name,
                    BridgeRules {
                        subnets,
                        internal,
                        masquerade: masq,
                        icc,
                    },
                );
            }
            for (kind, udp, hport, cport, ctr, last) in ports {
                let (host, ctr_ip): (IpAddr, IpAddr) = match kind {
                    0 => ([0, 0, 0, 0].into(), [172, 20 + ctr, 0, last].into()),
                    1 => ([10, 0, 0, last].into(), [172, 20 + ctr, 0, 2].into()),
                    2 => (
                        "::".parse().unwrap(),
                        format!("fd00:{ctr}::{last:x}").parse().unwrap(),
                    ),
                    _ => (
                        format!("fd00:99::{last:x}").parse().unwrap(),
                        format!("fd00:{ctr}::2").parse().unwrap(),
                    ),
                };
                let m = Mapping {
                    proto: if udp { Protocol::Udp } else { Protocol::Tcp },
                    host: SocketAddr::new(host, hport),
                    container: SocketAddr::new(ctr_ip, cport),
                };
                // One host address and port serve one container: the manager refuses a second
                // ("port is already allocated"), so no real state has two.
                if !s
                    .published
                    .iter()
                    .any(|p| p.proto == m.proto && p.host == m.host)
                {
                    s.published.insert(m);
                }
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_state_has_the_same_rules(s in arb_state()) {
        prop_assert_eq!(plan::full(&elements(&s), ForwardDrop::default()).rules_added(), 20);
    }

    #[test]
    fn state_changes_equal_element_differences(a in arb_state(), b in arb_state()) {
        let (removed, added) = super::ruleset::element_changes(&b, &a);
        let via_elements = plan::incremental(&elements(&b), &elements(&a));
        prop_assert_eq!(plan::changes(&removed, &added), via_elements);
    }

    #[test]
    fn applying_the_difference_reaches_the_desired_elements(a in arb_state(), b in arb_state()) {
        // Replay the incremental batch on a model of the sets and compare.
        let (ea, eb) = (elements(&a), elements(&b));
        let batch = plan::plan(&eb, Some(&ea), ForwardDrop::default());
        let mut model: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (set, elems) in &ea {
            model.insert(set.name().into(), elems.iter().map(|e| serde_json::to_string(&e.to_expr(*set, false)).unwrap()).collect());
        }
        for cmd in &batch.cmds {
            let (add, el) = match cmd {
                nftables::schema::NfCmd::Add(nftables::schema::NfListObject::Element(el)) => (true, el),
                nftables::schema::NfCmd::Delete(nftables::schema::NfListObject::Element(el)) => (false, el),
                other => panic!("unexpected command {other:?}"),
            };
            let set = model.entry(el.name.to_string()).or_default();
            for e in el.elem.iter() {
                let key = match e { nftables::expr::Expression::List(kv) => &kv[0], k => k };
                let key = serde_json::to_string(key).unwrap();
                if add { prop_assert!(set.insert(key)); } else { prop_assert!(set.remove(&key)); }
            }
        }
        model.retain(|_, v| !v.is_empty());
        let want: BTreeMap<String, std::collections::BTreeSet<String>> = eb.iter().map(|(set, elems)| (set.name().to_string(), elems.iter().map(|e| serde_json::to_string(&e.to_expr(*set, false)).unwrap()).collect())).collect();
        prop_assert_eq!(model, want);
    }
}

#[test]
fn nft_accepts_random_states() {
    if !is_root() {
        eprintln!("skipping: nft -c needs root and nft");
        return;
    }
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(&arb_state(), |s| {
            nft_check(&plan::full(&elements(&s), s.drop_forwarded))
                .map_err(|e| TestCaseError::fail(e.to_string()))
        })
        .unwrap();
}

#[test]
fn forwarded_traffic_is_dropped_only_for_families_berth_turned_on() {
    let rules_for = |drop: ForwardDrop| plan::full(&elements(&sample()), drop).rules_added();
    let none = rules_for(ForwardDrop::default());
    let v4 = ForwardDrop {
        ipv4: true,
        ipv6: false,
    };
    assert_eq!(rules_for(v4), none + 1);
    assert_eq!(
        rules_for(ForwardDrop {
            ipv4: true,
            ipv6: true
        }),
        none + 2
    );
    // The last rule of the forward chain drops that family only.
    let text = serde_json::to_string(&plan::full(&elements(&sample()), v4).to_nftables()).unwrap();
    assert!(text.contains("IPv4 forwarding berth turned on"), "{text}");
    assert!(!text.contains("IPv6 forwarding berth turned on"), "{text}");
    // A change of the policy rebuilds the tables; the same policy stays incremental.
    let mut fw = Firewall::new(RecordingNft::default());
    fw.apply(sample()).unwrap();
    let mut next = sample();
    next.drop_forwarded = v4;
    assert!(fw.apply(next.clone()).unwrap().full);
    let mut more = next;
    more.published.clear();
    assert!(!fw.apply(more).unwrap().full);
}
