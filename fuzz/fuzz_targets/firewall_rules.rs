//! Arbitrary firewall states (networks, endpoints, published ports decoded from the bytes)
//! through the rule generator: it never panics, the rule count depends only on the forward
//! drop policy, and every batch,
//! whole or incremental, is JSON that nftables' own schema types read back.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use netcore::firewall::plan;
use netcore::firewall::ruleset::elements;
use netcore::firewall::{BridgeRules, FirewallState, ForwardDrop};
use portproxy::spec::{Mapping, Protocol};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn ip(&mut self, v6: bool) -> Option<IpAddr> {
        Some(if v6 {
            let mut a = [0u8; 16];
            for b in &mut a[12..] {
                *b = self.u8()?;
            }
            a[0] = 0xfd;
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            IpAddr::V4(Ipv4Addr::new(self.u8()?, self.u8()?, self.u8()?, self.u8()?))
        })
    }
}

fn decode(data: &[u8]) -> FirewallState {
    let mut b = Bytes(data);
    let mut s = FirewallState::default();
    let policy = data.first().copied().unwrap_or(0);
    s.drop_forwarded = ForwardDrop {
        ipv4: policy & 0x40 != 0,
        ipv6: policy & 0x80 != 0,
    };
    while let Some(op) = b.u8() {
        match op % 3 {
            0 => {
                let Some(flags) = b.u8() else { break };
                let Some(ip) = b.ip(flags & 1 != 0) else { break };
                let Some(len) = b.u8() else { break };
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let Ok(net) = ipnet::IpNet::new(ip, len % (max + 1)) else { break };
                s.bridges
                    .entry(format!("br-{}", flags >> 4))
                    .or_insert_with(|| BridgeRules {
                        internal: flags & 2 != 0,
                        masquerade: flags & 4 != 0,
                        icc: flags & 8 != 0,
                        ..BridgeRules::default()
                    })
                    .subnets
                    .push(net.trunc());
            }
            1 => {
                let (Some(port), Some(br)) = (b.u8(), b.u8()) else { break };
                s.ports.insert(format!("veth{port}"), format!("br-{}", br >> 4));
            }
            _ => {
                let Some(flags) = b.u8() else { break };
                let host = if flags & 2 != 0 {
                    b.ip(flags & 1 != 0)
                } else if flags & 1 != 0 {
                    Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
                } else {
                    Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                };
                let ctr = b.ip(flags & 4 != 0);
                let (Some(host), Some(ctr), Some(hp), Some(cp)) = (host, ctr, b.u16(), b.u16())
                else {
                    break;
                };
                s.published.insert(Mapping {
                    proto: if flags & 8 != 0 { Protocol::Udp } else { Protocol::Tcp },
                    host: SocketAddr::new(host, hp),
                    container: SocketAddr::new(ctr, cp),
                });
            }
        }
    }
    s
}

fn check(batch: &plan::Batch) {
    let json = serde_json::to_string(&batch.to_nftables()).expect("batches serialise");
    let back: nftables::schema::Nftables = serde_json::from_str(&json).expect("valid nft JSON");
    assert_eq!(back.objects.len(), batch.cmds.len());
}

fuzz_target!(|data: &[u8]| {
    let half = data.len() / 2;
    let (a, b) = (decode(&data[..half]), decode(&data[half..]));
    let (ea, eb) = (elements(&a), elements(&b));
    let full = plan::full(&ea, a.drop_forwarded);
    assert_eq!(full.rules_added(), plan::full(&Default::default(), a.drop_forwarded).rules_added());
    check(&full);
    let inc = plan::plan(&eb, Some(&ea), a.drop_forwarded);
    assert_eq!(inc.rules_added(), 0);
    check(&inc);
    assert!(plan::plan(&ea, Some(&ea), a.drop_forwarded).is_empty());
});
