//! Any text as `--subnet`/`--ip-range`/`--gateway` values, then as an IPAM request: parsing and
//! planning never panic, and a created network's gateway and range lie inside its subnet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netcore::ipam::{Ipam, SubnetRequest};
use netcore::options::{parse_ip, parse_subnet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, ' ');
    let subnet = parts.next().and_then(|s| parse_subnet("--subnet", s).ok());
    let ip_range = parts.next().and_then(|s| parse_subnet("--ip-range", s).ok());
    let gateway = parts.next().and_then(|s| parse_ip("--gateway", s).ok());
    let req = SubnetRequest { subnet, ip_range, gateway };
    let mut ipam = Ipam::with_default_bridge();
    if let Ok(n) = ipam.create("fuzz", &req, None) {
        let s = n.subnets[0].clone();
        assert!(s.subnet.contains(&s.gateway));
        assert!(s.subnet.contains(&s.ip_range.network()));
        for _ in 0..4 {
            if let Ok(a) = ipam.allocate("fuzz", None, None) {
                assert!(s.subnet.contains(&a.v4.unwrap()));
            }
        }
    }
});
