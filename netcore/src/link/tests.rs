//! apply_all / apply_best_effort against the recording fake: order, rollback and error lists.

use nix::errno::Errno;

use super::*;

fn bridge() -> Bridge {
    Bridge(BridgeNet {
        bridge: "berth1".into(),
        mtu: None,
        gateways: vec![
            "10.1.0.1/24".parse().unwrap(),
            "fd00:1::1/64".parse().unwrap(),
        ],
    })
}

fn endpoint(ns: &str, host: &str, ip: &str) -> EndpointLink {
    EndpointLink {
        ns: ns.into(),
        ifname: "eth0".into(),
        host_ifname: host.into(),
        mac: None,
        addresses: vec![ip.parse().unwrap()],
        gateways: vec!["10.1.0.1".parse().unwrap()],
        mtu: None,
    }
}

fn delete(ns: NsRef, name: &str) -> LinkOp {
    LinkOp::DeleteLink {
        ns,
        name: name.into(),
    }
}

#[tokio::test]
async fn a_whole_plan_applies_in_order() {
    let b = bridge();
    let ep = endpoint("/run/netns/a", "vetha", "10.1.0.2/24");
    let mut nl = RecordingNetlink::new();
    apply_all(&mut nl, &b.setup()).await.unwrap();
    apply_all(&mut nl, &b.connect(&ep)).await.unwrap();
    let mut expected = b.setup();
    expected.extend(b.connect(&ep));
    assert_eq!(nl.ops, expected);
    assert_eq!(nl.releases, 2);
    assert_eq!(
        nl.links(),
        vec![
            (NsRef::Host, "berth1".to_string()),
            (NsRef::Host, "vetha".to_string()),
            (NsRef::path("/run/netns/a"), "eth0".to_string()),
        ]
    );
    assert!(
        nl.link_exists(&NsRef::path("/run/netns/a"), "eth0")
            .await
            .unwrap()
    );
    // Disconnecting deletes the host end, and the peer with it.
    apply_best_effort(&mut nl, &b.disconnect(&ep))
        .await
        .unwrap();
    apply_best_effort(&mut nl, &b.teardown()).await.unwrap();
    assert!(nl.links().is_empty());
}

#[tokio::test]
async fn a_failure_at_every_step_rolls_back_what_was_created() {
    let b = bridge();
    let ep = endpoint("/run/netns/a", "vetha", "10.1.0.2/24");
    let mut plan = b.setup();
    plan.extend(b.connect(&ep));
    for fail in 0..plan.len() {
        let mut nl = RecordingNetlink::new().fail_at(fail, Errno::ENOMEM);
        let err = apply_all(&mut nl, &plan).await.unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ENOMEM as i32));
        assert!(
            err.to_string()
                .starts_with(&format!("failed to {}", plan[fail].describe())),
            "{err}"
        );
        // Everything up to the failure was attempted, then the created links deleted newest
        // first.
        assert_eq!(&nl.ops[..=fail], &plan[..=fail], "fail at {fail}");
        let created: Vec<LinkOp> = plan[..fail].iter().filter_map(LinkOp::undo).rev().collect();
        assert_eq!(&nl.ops[fail + 1..], created.as_slice(), "fail at {fail}");
        assert!(nl.links().is_empty(), "fail at {fail}: {:?}", nl.links());
        assert_eq!(nl.releases, 1);
    }
}

#[tokio::test]
async fn rollback_after_veth_deletes_the_veth_then_the_bridge() {
    let b = bridge();
    let ep = endpoint("/run/netns/a", "vetha", "10.1.0.2/24");
    let mut plan = b.setup();
    plan.extend(b.connect(&ep));
    // Fail at the container's address, after the bridge and the veth exist.
    let fail = plan
        .iter()
        .position(|op| {
            matches!(
                op,
                LinkOp::AddAddress {
                    ns: NsRef::Path(_),
                    ..
                }
            )
        })
        .unwrap();
    let mut nl = RecordingNetlink::new().fail_at(fail, Errno::EEXIST);
    apply_all(&mut nl, &plan).await.unwrap_err();
    assert_eq!(
        &nl.ops[fail + 1..],
        &[delete(NsRef::Host, "vetha"), delete(NsRef::Host, "berth1")]
    );
}

#[tokio::test]
async fn a_missing_parent_fails_without_creating_anything() {
    let m = Macvlan(MacvlanNet {
        parent: "eno1".into(),
        mode: MacvlanMode::Bridge,
    });
    let ep = endpoint("/run/netns/a", "", "10.1.0.2/24");
    let mut nl = RecordingNetlink::new();
    assert!(!nl.link_exists(&NsRef::Host, "eno1").await.unwrap());
    let err = apply_all(&mut nl, &m.connect(&ep)).await.unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ENODEV as i32));
    assert_eq!(nl.ops.len(), 1, "{:?}", nl.ops);

    let mut nl = RecordingNetlink::new().with_link(NsRef::Host, "eno1");
    apply_all(&mut nl, &m.connect(&ep)).await.unwrap();
    apply_best_effort(&mut nl, &m.disconnect(&ep))
        .await
        .unwrap();
    assert_eq!(nl.links(), vec![(NsRef::Host, "eno1".to_string())]);
}

#[tokio::test]
async fn best_effort_keeps_going_and_returns_every_error() {
    let ops = vec![
        delete(NsRef::Host, "a"),
        delete(NsRef::Host, "b"),
        LinkOp::SetUp {
            ns: NsRef::Host,
            link: "missing".into(),
        },
        delete(NsRef::Host, "c"),
    ];
    let mut nl = RecordingNetlink::new()
        .with_link(NsRef::Host, "a")
        .with_link(NsRef::Host, "b")
        .with_link(NsRef::Host, "c")
        .fail_at(1, Errno::EBUSY);
    let errs = apply_best_effort(&mut nl, &ops).await.unwrap_err();
    assert_eq!(nl.ops, ops);
    assert_eq!(errs.0.len(), 2, "{errs}");
    assert_eq!(errs.0[0].errno(), Some(Errno::EBUSY as i32));
    assert_eq!(errs.0[1].errno(), Some(Errno::ENODEV as i32));
    assert_eq!(nl.links(), vec![(NsRef::Host, "b".to_string())]);
    // Deleting what is already gone is success: a second teardown is clean.
    let mut nl = RecordingNetlink::new();
    apply_best_effort(&mut nl, &[delete(NsRef::Host, "a")])
        .await
        .unwrap();
}

#[tokio::test]
async fn connecting_the_same_endpoint_twice_fails_and_keeps_the_first() {
    let b = bridge();
    let ep = endpoint("/run/netns/a", "vetha", "10.1.0.2/24");
    let mut nl = RecordingNetlink::new();
    apply_all(&mut nl, &b.setup()).await.unwrap();
    apply_all(&mut nl, &b.connect(&ep)).await.unwrap();
    let err = apply_all(&mut nl, &b.connect(&ep)).await.unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EEXIST as i32));
    // Nothing was created by the failed call, so nothing of the first was deleted.
    assert!(nl.link_exists(&NsRef::Host, "vetha").await.unwrap());
}
