//! The host's IPv4 routes, read from `/proc/self/net/route` (the main table of berthd's own
//! network namespace): an automatically chosen network subnet must not overlap one, as Docker's
//! must not, or the host would lose the way to that network. The parser is pure.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

/// `RTF_GATEWAY` of `/proc/net/route`'s flags.
const RTF_GATEWAY: u32 = 0x2;

/// The destinations of `/proc/net/route`'s text reached without a gateway (the host's own
/// networks), the default route left out.
pub fn parse_proc_net_route(text: &str) -> Vec<IpNet> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            let (dest, flags, mask) = (hex(f.get(1)?)?, hex(f.get(3)?)?, hex(f.get(7)?)?);
            // Routes through a gateway are not the host's own networks (a VPN's 0.0.0.0/1
            // would otherwise rule out every pool); Docker 23+ skips them too.
            if flags & RTF_GATEWAY != 0 {
                return None;
            }
            // The kernel prints the address's bytes as a number in the host's byte order.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let mask = u32::from_be_bytes(mask.to_ne_bytes());
            if mask.count_ones() != mask.leading_ones() {
                return None;
            }
            let len = u8::try_from(mask.count_ones()).ok()?;
            if len == 0 {
                return None;
            }
            Some(IpNet::V4(Ipv4Net::new(dest, len).ok()?.trunc()))
        })
        .collect()
}

/// The host's routed IPv4 destinations (none when the file cannot be read).
pub fn host_routes() -> Vec<IpNet> {
    std::fs::read_to_string("/proc/self/net/route")
        .map(|t| parse_proc_net_route(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_s_table() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            v0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            tun0\t00000000\t0100080A\t0003\t0\t0\t0\t00000080\t0\t0\t0\n\
            bad\tzz\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            odd\t000012AC\t00000000\t0001\t0\t0\t0\t00FF00FF\t0\t0\t0\n";
        let got: Vec<String> = parse_proc_net_route(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        if cfg!(target_endian = "little") {
            assert_eq!(got, ["192.168.2.0/24", "172.18.0.0/16"]);
        }
    }
}
