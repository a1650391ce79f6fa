//! The ruleset as data: a fixed skeleton (two tables, their sets and maps, chains and rules)
//! plus the elements those sets and maps hold, computed from a [`FirewallState`].
//!
//! Every per-network, per-endpoint and per-port fact lives in a set or map element, never in a
//! rule: the skeleton has the same rules whether one port is published or 65,535, so a packet
//! costs one hash lookup per map and publishing a port adds one element.
//!
//! Layout (`nft list ruleset` shows it with a comment on every rule):
//! - `table inet berth`: `prerouting`/`output` (nat) jump to `ports`, which DNATs through the
//!   port maps; `postrouting` masquerades traffic leaving a subnet and hairpin traffic;
//!   `forward` (filter) isolates networks, keeps `--internal` ones in, lets published ports in
//!   and containers out, and, for a family whose forwarding berth turned on, drops the rest (as
//!   Docker's FORWARD policy).
//! - `table bridge berth`: `forward` drops IP between ports of `icc=false` bridges (this
//!   kernel has no bridge `meta ibrname`, so the set holds the ports, not the bridge).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem,
};
use nftables::schema::{self, NfListObject, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{JumpTarget, Match, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use portproxy::spec::Protocol;

use super::state::{FirewallState, ForwardDrop, dnat_target};

/// The name of both of berth's tables; berth never touches any other table.
pub const TABLE: &str = "berth";

/// One of the named sets or maps of the skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetId {
    /// Every berth bridge (`ifname`).
    Bridges,
    /// `bridge . bridge` for every bridge: traffic that stays on one bridge.
    SameBridge,
    /// Bridges of `--internal` networks.
    Internal,
    /// `bridge . subnet` (IPv4) for every bridge: DNATed traffic leaving a bridge towards its
    /// own subnet is hairpin traffic and must be masqueraded so replies come back through the
    /// host. (`iifname` is never set in postrouting, so the bridge pair cannot say it.)
    Hairpin4,
    /// As [`SetId::Hairpin4`], IPv6.
    Hairpin6,
    /// IPv4 subnets whose outgoing traffic is masqueraded.
    Masq4,
    /// IPv6 subnets whose outgoing traffic is masqueraded.
    Masq6,
    /// Published ports: the container address (`port: false`) or port (`port: true`) each
    /// published host port translates to, keyed by `[host address .] proto . port` (`any`:
    /// published on every host address, so the key has no address).
    ///
    /// Address and port sit in two maps rather than one map to `addr . port` because nft 1.0.6
    /// (Debian 12) drops a concatenated map data type given as JSON and then crashes.
    Dnat {
        /// IPv6 rather than IPv4.
        v6: bool,
        /// Published on every host address.
        any: bool,
        /// The map of ports rather than of addresses.
        port: bool,
    },
    /// Host-side ports of endpoints on `icc=false` bridges (bridge family table).
    NoIccPorts,
}

impl SetId {
    /// Every set and map, in the order they are declared.
    pub const ALL: [SetId; 16] = [
        SetId::Bridges,
        SetId::SameBridge,
        SetId::Internal,
        SetId::Hairpin4,
        SetId::Hairpin6,
        SetId::Masq4,
        SetId::Masq6,
        SetId::dnat(false, false, false),
        SetId::dnat(false, false, true),
        SetId::dnat(false, true, false),
        SetId::dnat(false, true, true),
        SetId::dnat(true, false, false),
        SetId::dnat(true, false, true),
        SetId::dnat(true, true, false),
        SetId::dnat(true, true, true),
        SetId::NoIccPorts,
    ];

    const fn dnat(v6: bool, any: bool, port: bool) -> SetId {
        SetId::Dnat { v6, any, port }
    }

    /// The set's name in nft.
    pub fn name(self) -> &'static str {
        match self {
            SetId::Bridges => "bridges",
            SetId::SameBridge => "same_bridge",
            SetId::Internal => "internal",
            SetId::Hairpin4 => "hairpin4",
            SetId::Hairpin6 => "hairpin6",
            SetId::Masq4 => "masq4",
            SetId::Masq6 => "masq6",
            SetId::Dnat { v6, any, port } => match (v6, any, port) {
                (false, false, false) => "dnat4_ip_addr",
                (false, false, true) => "dnat4_ip_port",
                (false, true, false) => "dnat4_any_addr",
                (false, true, true) => "dnat4_any_port",
                (true, false, false) => "dnat6_ip_addr",
                (true, false, true) => "dnat6_ip_port",
                (true, true, false) => "dnat6_any_addr",
                (true, true, true) => "dnat6_any_port",
            },
            SetId::NoIccPorts => "no_icc_ports",
        }
    }

    /// The table family the set lives in.
    pub fn family(self) -> NfFamily {
        match self {
            SetId::NoIccPorts => NfFamily::Bridge,
            _ => NfFamily::INet,
        }
    }

    fn declaration(self) -> NfListObject<'static> {
        use SetType::*;
        let single = |t| SetTypeValue::Single(t);
        let concat = |ts: &[SetType]| SetTypeValue::Concatenated(Cow::Owned(ts.to_vec()));
        let (key, data, interval) = match self {
            SetId::Bridges | SetId::Internal | SetId::NoIccPorts => (single(Ifname), None, false),
            SetId::SameBridge => (concat(&[Ifname, Ifname]), None, false),
            SetId::Hairpin4 => (concat(&[Ifname, Ipv4Addr]), None, true),
            SetId::Hairpin6 => (concat(&[Ifname, Ipv6Addr]), None, true),
            SetId::Masq4 => (single(Ipv4Addr), None, true),
            SetId::Masq6 => (single(Ipv6Addr), None, true),
            SetId::Dnat { v6, any, port } => {
                let addr = if v6 { Ipv6Addr } else { Ipv4Addr };
                let key = if any {
                    concat(&[InetProto, InetService])
                } else {
                    concat(&[addr, InetProto, InetService])
                };
                let data = single(if port { InetService } else { addr });
                (key, Some(data), false)
            }
        };
        let flags = interval.then(|| HashSet::from([SetFlag::Interval]));
        match data {
            None => NfListObject::Set(Box::new(schema::Set {
                family: self.family(),
                table: TABLE.into(),
                name: self.name().into(),
                set_type: key,
                flags,
                ..Default::default()
            })),
            Some(data) => NfListObject::Map(Box::new(schema::Map {
                family: self.family(),
                table: TABLE.into(),
                name: self.name().into(),
                set_type: key,
                map: data,
                flags,
                ..Default::default()
            })),
        }
    }
}

/// One element of a set or map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Elem {
    /// An interface name.
    Name(String),
    /// A pair of interface names.
    NamePair(String, String),
    /// A subnet.
    Prefix(IpNet),
    /// An interface name and a subnet.
    NamePrefix(String, IpNet),
    /// A published port: the key (host address when not every address, protocol, port) and the
    /// container address it is translated to.
    Dnat {
        /// The host address, `None` for every local address.
        host: Option<IpAddr>,
        /// The protocol.
        proto: Protocol,
        /// The host port.
        port: u16,
        /// Where the traffic goes.
        to: SocketAddr,
    },
}

impl Elem {
    /// The element as nft JSON: the key alone (for deletion) or, for map elements with
    /// `with_value`, the `[key, value]` pair, the value being what `set` maps to.
    pub(crate) fn to_expr(&self, set: SetId, with_value: bool) -> Expression<'static> {
        match self {
            Elem::Name(n) => Expression::String(n.clone().into()),
            Elem::NamePair(a, b) => Expression::Named(NamedExpression::Concat(vec![
                Expression::String(a.clone().into()),
                Expression::String(b.clone().into()),
            ])),
            Elem::Prefix(net) => prefix(net.network(), net.prefix_len()),
            Elem::NamePrefix(name, net) => Expression::Named(NamedExpression::Concat(vec![
                Expression::String(name.clone().into()),
                prefix(net.network(), net.prefix_len()),
            ])),
            Elem::Dnat {
                host,
                proto,
                port,
                to,
            } => {
                let mut key = Vec::with_capacity(3);
                if let Some(h) = host {
                    key.push(Expression::String(h.to_string().into()));
                }
                key.push(Expression::String(proto.to_string().into()));
                key.push(Expression::Number(u32::from(*port)));
                let key = Expression::Named(NamedExpression::Concat(key));
                if !with_value {
                    return key;
                }
                let value = match set {
                    SetId::Dnat { port: true, .. } => Expression::Number(u32::from(to.port())),
                    _ => Expression::String(to.ip().to_string().into()),
                };
                Expression::List(vec![key, value])
            }
        }
    }
}

/// The elements every set and map should hold; sets with no elements are absent.
pub type Elements = BTreeMap<SetId, BTreeSet<Elem>>;

/// Computes the elements of every set and map from the desired state (pure).
pub fn elements(state: &FirewallState) -> Elements {
    let mut out = Elements::new();
    add_network_elements(&mut out, state);
    for m in &state.published {
        add_published(&mut out, m);
    }
    out
}

/// The elements that differ between `applied` and `desired`: `(to delete, to add)` (pure).
///
/// The same result as diffing [`elements`] of both states, but the published ports, which can be
/// tens of thousands, are compared as two ordered sets in one merge walk with no allocation, and
/// only the changed ones become elements; networks and endpoints are diffed whole only when they
/// changed. So the cost of publishing one more port barely grows with the ports already there.
pub fn element_changes(desired: &FirewallState, applied: &FirewallState) -> (Elements, Elements) {
    let (mut removed, mut added) = (Elements::new(), Elements::new());
    if desired.bridges != applied.bridges || desired.ports != applied.ports {
        let (mut want, mut have) = (Elements::new(), Elements::new());
        add_network_elements(&mut want, desired);
        add_network_elements(&mut have, applied);
        for set in SetId::ALL {
            let (w, h) = (want.remove(&set), have.remove(&set));
            let (w, h) = (w.unwrap_or_default(), h.unwrap_or_default());
            let gone: BTreeSet<Elem> = h.difference(&w).cloned().collect();
            let new: BTreeSet<Elem> = w.difference(&h).cloned().collect();
            if !gone.is_empty() {
                removed.insert(set, gone);
            }
            if !new.is_empty() {
                added.insert(set, new);
            }
        }
    }
    for m in applied.published.difference(&desired.published) {
        add_published(&mut removed, m);
    }
    for m in desired.published.difference(&applied.published) {
        add_published(&mut added, m);
    }
    (removed, added)
}

/// The elements of some published mappings alone (pure).
pub fn published_elements(mappings: &[portproxy::spec::Mapping]) -> Elements {
    let mut out = Elements::new();
    for m in mappings {
        add_published(&mut out, m);
    }
    out
}

/// Elements of the networks and endpoints (everything but published ports).
fn add_network_elements(out: &mut Elements, state: &FirewallState) {
    let mut add = |set: SetId, e: Elem| {
        out.entry(set).or_default().insert(e);
    };
    for (bridge, rules) in &state.bridges {
        add(SetId::Bridges, Elem::Name(bridge.clone()));
        add(
            SetId::SameBridge,
            Elem::NamePair(bridge.clone(), bridge.clone()),
        );
        for net in &rules.subnets {
            let set = match net {
                IpNet::V4(_) => SetId::Hairpin4,
                IpNet::V6(_) => SetId::Hairpin6,
            };
            add(set, Elem::NamePrefix(bridge.clone(), net.trunc()));
        }
        if rules.internal {
            add(SetId::Internal, Elem::Name(bridge.clone()));
        } else if rules.masquerade {
            for net in &rules.subnets {
                let set = match net {
                    IpNet::V4(_) => SetId::Masq4,
                    IpNet::V6(_) => SetId::Masq6,
                };
                add(set, Elem::Prefix(net.trunc()));
            }
        }
    }
    for (port, bridge) in &state.ports {
        if state.bridges.get(bridge).is_some_and(|b| !b.icc) {
            add(SetId::NoIccPorts, Elem::Name(port.clone()));
        }
    }
}

/// The two map elements (address and port) of one published mapping, if DNAT serves it.
fn add_published(out: &mut Elements, m: &portproxy::spec::Mapping) {
    let Some(key) = dnat_target(m) else { return };
    let elem = Elem::Dnat {
        host: (!key.any).then(|| m.host.ip()),
        proto: m.proto,
        port: m.host.port(),
        to: m.container,
    };
    for port in [false, true] {
        out.entry(SetId::dnat(key.v6, key.any, port))
            .or_default()
            .insert(elem.clone());
    }
}

/// The tables, sets, maps, chains and rules, in the order they must be added (pure; the same
/// for every state but for the forward drop of each family).
pub fn skeleton(drop: ForwardDrop) -> Vec<NfListObject<'static>> {
    let mut out = Vec::new();
    for family in [NfFamily::INet, NfFamily::Bridge] {
        out.push(table(family));
        for set in SetId::ALL.iter().filter(|s| s.family() == family) {
            out.push(set.declaration());
        }
    }
    out.push(chain(NfFamily::INet, "ports", None));
    out.push(chain(
        NfFamily::INet,
        "prerouting",
        Some((NfChainType::NAT, NfHook::Prerouting, -100)),
    ));
    out.push(chain(
        NfFamily::INet,
        "output",
        Some((NfChainType::NAT, NfHook::Output, -100)),
    ));
    out.push(chain(
        NfFamily::INet,
        "postrouting",
        Some((NfChainType::NAT, NfHook::Postrouting, 100)),
    ));
    out.push(chain(
        NfFamily::INet,
        "forward",
        Some((NfChainType::Filter, NfHook::Forward, 0)),
    ));
    out.push(chain(
        NfFamily::Bridge,
        "forward",
        Some((NfChainType::Filter, NfHook::Forward, 0)),
    ));
    out.extend(rules());
    for (on, family, comment) in [
        (
            drop.ipv4,
            "ipv4",
            "IPv4 forwarding berth turned on: what is neither to nor from a berth network is dropped",
        ),
        (
            drop.ipv6,
            "ipv6",
            "IPv6 forwarding berth turned on: what is neither to nor from a berth network is dropped",
        ),
    ] {
        if on {
            out.push(rule(
                NfFamily::INet,
                "forward",
                comment,
                vec![
                    matches(meta(MetaKey::Nfproto), Operator::EQ, s(family)),
                    verdict(false),
                ],
            ));
        }
    }
    out
}

fn rules() -> Vec<NfListObject<'static>> {
    let inet = |chain: &'static str, comment: &'static str, expr: Vec<Statement<'static>>| {
        rule(NfFamily::INet, chain, comment, expr)
    };
    let ifname = || meta(MetaKey::Iifname);
    let ofname = || meta(MetaKey::Oifname);
    let pair = || Expression::Named(NamedExpression::Concat(vec![ifname(), ofname()]));
    let dnat_status = || {
        matches(
            ct("status"),
            Operator::IN,
            Expression::String("dnat".into()),
        )
    };
    vec![
        inet(
            "ports",
            "published ports on one IPv4 host address",
            vec![dnat(
                NATFamily::IP,
                vec![
                    payload("ip", "daddr"),
                    meta(MetaKey::L4proto),
                    payload("th", "dport"),
                ],
                false,
                false,
            )],
        ),
        inet(
            "ports",
            "published ports on every IPv4 host address",
            vec![
                matches(meta(MetaKey::Nfproto), Operator::EQ, s("ipv4")),
                dnat(
                    NATFamily::IP,
                    vec![meta(MetaKey::L4proto), payload("th", "dport")],
                    false,
                    true,
                ),
            ],
        ),
        inet(
            "ports",
            "published ports on one IPv6 host address",
            vec![dnat(
                NATFamily::IP6,
                vec![
                    payload("ip6", "daddr"),
                    meta(MetaKey::L4proto),
                    payload("th", "dport"),
                ],
                true,
                false,
            )],
        ),
        inet(
            "ports",
            "published ports on every IPv6 host address",
            vec![
                matches(meta(MetaKey::Nfproto), Operator::EQ, s("ipv6")),
                dnat(
                    NATFamily::IP6,
                    vec![meta(MetaKey::L4proto), payload("th", "dport")],
                    true,
                    true,
                ),
            ],
        ),
        inet(
            "prerouting",
            "traffic to a host address may be a published port",
            vec![local_daddr(), jump("ports")],
        ),
        inet(
            "output",
            "the host reaching its own IPv4 addresses; loopback is left to portproxy",
            vec![
                matches(
                    payload("ip", "daddr"),
                    Operator::NEQ,
                    prefix("127.0.0.0".parse().unwrap(), 8),
                ),
                local_daddr(),
                jump("ports"),
            ],
        ),
        inet(
            "output",
            "the host reaching its own IPv6 addresses; loopback is left to portproxy",
            vec![
                matches(payload("ip6", "daddr"), Operator::NEQ, s("::1")),
                local_daddr(),
                jump("ports"),
            ],
        ),
        inet(
            "postrouting",
            "hairpin: a container reaching a published port on its own bridge (IPv4)",
            vec![
                dnat_status(),
                matches(
                    Expression::Named(NamedExpression::Concat(vec![
                        ofname(),
                        payload("ip", "saddr"),
                    ])),
                    Operator::EQ,
                    set_ref(SetId::Hairpin4),
                ),
                masquerade(),
            ],
        ),
        inet(
            "postrouting",
            "hairpin: a container reaching a published port on its own bridge (IPv6)",
            vec![
                dnat_status(),
                matches(
                    Expression::Named(NamedExpression::Concat(vec![
                        ofname(),
                        payload("ip6", "saddr"),
                    ])),
                    Operator::EQ,
                    set_ref(SetId::Hairpin6),
                ),
                masquerade(),
            ],
        ),
        inet(
            "postrouting",
            "IPv4 traffic leaving a bridge subnet",
            vec![
                matches(payload("ip", "saddr"), Operator::EQ, set_ref(SetId::Masq4)),
                matches(ofname(), Operator::NEQ, set_ref(SetId::Bridges)),
                masquerade(),
            ],
        ),
        inet(
            "postrouting",
            "IPv6 traffic leaving a bridge subnet",
            vec![
                matches(payload("ip6", "saddr"), Operator::EQ, set_ref(SetId::Masq6)),
                matches(ofname(), Operator::NEQ, set_ref(SetId::Bridges)),
                masquerade(),
            ],
        ),
        inet(
            "forward",
            "established flows first: one rule per packet of a running flow",
            vec![
                matches(
                    ct("state"),
                    Operator::IN,
                    Expression::List(vec![s("established"), s("related")]),
                ),
                verdict(true),
            ],
        ),
        inet(
            "forward",
            "traffic within one network (seen here when br_netfilter is on)",
            vec![
                matches(pair(), Operator::EQ, set_ref(SetId::SameBridge)),
                verdict(true),
            ],
        ),
        inet(
            "forward",
            "--internal networks: nothing leaves",
            vec![
                matches(ifname(), Operator::EQ, set_ref(SetId::Internal)),
                verdict(false),
            ],
        ),
        inet(
            "forward",
            "--internal networks: nothing comes in",
            vec![
                matches(ofname(), Operator::EQ, set_ref(SetId::Internal)),
                verdict(false),
            ],
        ),
        inet(
            "forward",
            "published ports, from anywhere",
            vec![
                matches(ofname(), Operator::EQ, set_ref(SetId::Bridges)),
                dnat_status(),
                verdict(true),
            ],
        ),
        inet(
            "forward",
            "isolation: one network cannot reach another",
            vec![
                matches(ifname(), Operator::EQ, set_ref(SetId::Bridges)),
                matches(ofname(), Operator::EQ, set_ref(SetId::Bridges)),
                verdict(false),
            ],
        ),
        inet(
            "forward",
            "containers are reached from outside only through published ports",
            vec![
                matches(ofname(), Operator::EQ, set_ref(SetId::Bridges)),
                verdict(false),
            ],
        ),
        inet(
            "forward",
            "containers reach out",
            vec![
                matches(ifname(), Operator::EQ, set_ref(SetId::Bridges)),
                verdict(true),
            ],
        ),
        rule(
            NfFamily::Bridge,
            "forward",
            "icc=false: no IP between containers of one bridge",
            vec![
                matches(ifname(), Operator::EQ, set_ref(SetId::NoIccPorts)),
                matches(
                    meta(MetaKey::Protocol),
                    Operator::EQ,
                    Expression::Named(NamedExpression::Set(vec![
                        SetItem::Element(s("ip")),
                        SetItem::Element(s("ip6")),
                    ])),
                ),
                verdict(false),
            ],
        ),
    ]
}

pub(crate) fn table(family: NfFamily) -> NfListObject<'static> {
    NfListObject::Table(schema::Table {
        family,
        name: TABLE.into(),
        handle: None,
    })
}

fn chain(
    family: NfFamily,
    name: &'static str,
    base: Option<(NfChainType, NfHook, i32)>,
) -> NfListObject<'static> {
    NfListObject::Chain(schema::Chain {
        family,
        table: TABLE.into(),
        name: name.into(),
        _type: base.map(|b| b.0),
        hook: base.map(|b| b.1),
        prio: base.map(|b| b.2),
        policy: base.map(|_| NfChainPolicy::Accept),
        ..Default::default()
    })
}

fn rule(
    family: NfFamily,
    chain: &'static str,
    comment: &'static str,
    expr: Vec<Statement<'static>>,
) -> NfListObject<'static> {
    NfListObject::Rule(schema::Rule {
        family,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Cow::Owned(expr),
        comment: Some(comment.into()),
        ..Default::default()
    })
}

fn s(v: &'static str) -> Expression<'static> {
    Expression::String(v.into())
}

fn prefix(addr: IpAddr, len: u8) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(addr.to_string().into())),
        len: u32::from(len),
    }))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

fn set_ref(set: SetId) -> Expression<'static> {
    Expression::String(format!("@{}", set.name()).into())
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn local_daddr() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        Operator::EQ,
        s("local"),
    )
}

fn dnat(
    family: NATFamily,
    key: Vec<Expression<'static>>,
    v6: bool,
    any: bool,
) -> Statement<'static> {
    let lookup = |port| {
        Expression::Named(NamedExpression::Map(Box::new(nftables::expr::Map {
            key: Expression::Named(NamedExpression::Concat(key.clone())),
            data: set_ref(SetId::dnat(v6, any, port)),
        })))
    };
    Statement::DNAT(Some(NAT {
        addr: Some(lookup(false)),
        family: Some(family),
        port: Some(lookup(true)),
        flags: None,
    }))
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

fn jump(target: &'static str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: target.into(),
    })
}

fn verdict(accept: bool) -> Statement<'static> {
    if accept {
        Statement::Accept(None)
    } else {
        Statement::Drop(None)
    }
}
