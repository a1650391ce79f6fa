//! The frame fast path: what a frame from the container is, read with etherparse without
//! copying, and the few frames the stack writes itself (UDP datagrams, TCP resets, echo replies).
//! Pure functions over byte slices; every frame from the container is untrusted.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use etherparse::{
    EtherType, Icmpv4Type, IpNumber, Ipv4Header, Ipv6Header, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice, UdpHeader,
};

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC, used toward the container until its own MAC is learned.
pub const BROADCAST: Mac = [0xff; 6];

/// Ethernet header length.
pub const ETH_LEN: usize = 14;

/// What a frame from the container asks of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// ARP, NDP, ICMP to the gateway, TCP: smoltcp's part.
    Stack,
    /// A TCP segment (also handed to smoltcp, after the flow table saw it).
    Tcp(TcpSeg),
    /// A UDP datagram, forwarded by the fast path; `payload` indexes the frame.
    Udp {
        /// The container's end.
        src: SocketAddr,
        /// Where it is sent.
        dst: SocketAddr,
        /// The payload's bytes in the frame.
        payload: Range<usize>,
    },
    /// An ICMPv4 echo request.
    Echo {
        /// The container's address.
        src: IpAddr,
        /// The pinged address.
        dst: IpAddr,
        /// Echo identifier.
        ident: u16,
        /// Echo sequence number.
        seq: u16,
        /// The echo data's bytes in the frame.
        payload: Range<usize>,
    },
    /// Something the stack does not forward (other EtherTypes, fragments, other ICMP types).
    Unsupported,
}

/// What the flow table needs of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSeg {
    /// The container's end.
    pub src: SocketAddr,
    /// The remote end.
    pub dst: SocketAddr,
    /// A connection request: SYN without ACK.
    pub syn: bool,
    /// The segment's sequence number.
    pub seq: u32,
    /// RST set.
    pub rst: bool,
}

/// Why a frame was dropped as malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct Malformed(pub String);

/// The source MAC and meaning of `frame`.
pub fn classify(frame: &[u8]) -> Result<(Mac, Frame), Malformed> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| Malformed(e.to_string()))?;
    let src_mac = match &p.link {
        Some(etherparse::LinkSlice::Ethernet2(e)) => e.source(),
        _ => return Err(Malformed("no Ethernet header".into())),
    };
    let (src_ip, dst_ip, fragmented) = match &p.net {
        None => return Ok((src_mac, Frame::Unsupported)),
        Some(NetSlice::Arp(_)) => return Ok((src_mac, Frame::Stack)),
        Some(NetSlice::Ipv4(v4)) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
            v4.is_payload_fragmented(),
        ),
        Some(NetSlice::Ipv6(v6)) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
            v6.is_payload_fragmented(),
        ),
    };
    if fragmented || !usable_source(src_ip) {
        // An unspecified, multicast, broadcast or loopback source has no answer to get (smoltcp
        // would assert on answering it); IPv6 duplicate address detection, from `::`, gets no
        // answer either, which tells the container its address is its own.
        return Ok((src_mac, Frame::Unsupported));
    }
    let base = frame.as_ptr() as usize;
    let range_of = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let f = match &p.transport {
        Some(TransportSlice::Tcp(t)) => Frame::Tcp(TcpSeg {
            src: SocketAddr::new(src_ip, t.source_port()),
            dst: SocketAddr::new(dst_ip, t.destination_port()),
            syn: t.syn() && !t.ack(),
            seq: t.sequence_number(),
            rst: t.rst(),
        }),
        Some(TransportSlice::Udp(u)) => Frame::Udp {
            src: SocketAddr::new(src_ip, u.source_port()),
            dst: SocketAddr::new(dst_ip, u.destination_port()),
            payload: range_of(u.payload()),
        },
        Some(TransportSlice::Icmpv4(i)) => match i.icmp_type() {
            Icmpv4Type::EchoRequest(h) => Frame::Echo {
                src: src_ip,
                dst: dst_ip,
                ident: h.id,
                seq: h.seq,
                payload: range_of(i.payload()),
            },
            _ => Frame::Stack,
        },
        // ICMPv6 carries NDP, which smoltcp answers for the gateway.
        Some(TransportSlice::Icmpv6(_)) => Frame::Stack,
        None => Frame::Unsupported,
    };
    Ok((src_mac, f))
}

/// Whether a container may send from `ip`: a unicast address that is not loopback.
pub fn usable_source(ip: IpAddr) -> bool {
    !(ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_loopback()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()))
}

/// Where a UDP payload starts in a frame the stack writes toward `dst`.
pub fn udp_payload_offset(dst: &SocketAddr) -> usize {
    ETH_LEN
        + match dst {
            SocketAddr::V4(_) => Ipv4Header::MIN_LEN,
            SocketAddr::V6(_) => Ipv6Header::LEN,
        }
        + UdpHeader::LEN
}

/// Writes the headers of a UDP datagram from `src` to `dst` in front of the `len` payload bytes
/// already at [`udp_payload_offset`] in `buf`; returns the frame's length. `None` when the
/// families differ or the payload does not fit one IP packet.
pub fn write_udp(
    buf: &mut [u8],
    macs: (Mac, Mac),
    src: SocketAddr,
    dst: SocketAddr,
    len: usize,
) -> Option<usize> {
    let off = udp_payload_offset(&dst);
    let end = off.checked_add(len)?;
    if end > buf.len() {
        return None;
    }
    let (head, payload) = buf.split_at_mut(off);
    let payload = &payload[..len];
    let eth = etherparse::Ethernet2Header {
        source: macs.0,
        destination: macs.1,
        ether_type: match dst {
            SocketAddr::V4(_) => EtherType::IPV4,
            SocketAddr::V6(_) => EtherType::IPV6,
        },
    };
    head[..ETH_LEN].copy_from_slice(&eth.to_bytes());
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            let mut ip = Ipv4Header::new(
                u16::try_from(UdpHeader::LEN + len).ok()?,
                64,
                IpNumber::UDP,
                s.ip().octets(),
                d.ip().octets(),
            )
            .ok()?;
            ip.header_checksum = ip.calc_header_checksum();
            let udp = UdpHeader::with_ipv4_checksum(s.port(), d.port(), &ip, payload).ok()?;
            head[ETH_LEN..ETH_LEN + Ipv4Header::MIN_LEN].copy_from_slice(&ip.to_bytes());
            head[off - UdpHeader::LEN..off].copy_from_slice(&udp.to_bytes());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            let ip = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: u16::try_from(UdpHeader::LEN + len).ok()?,
                next_header: IpNumber::UDP,
                hop_limit: 64,
                source: s.ip().octets(),
                destination: d.ip().octets(),
            };
            let udp = UdpHeader::with_ipv6_checksum(s.port(), d.port(), &ip, payload).ok()?;
            head[ETH_LEN..ETH_LEN + Ipv6Header::LEN].copy_from_slice(&ip.to_bytes());
            head[off - UdpHeader::LEN..off].copy_from_slice(&udp.to_bytes());
        }
        _ => return None,
    }
    Some(end)
}

/// The reset answering a connection request `syn` the stack refuses, appended to `out`.
pub fn write_rst(out: &mut Vec<u8>, macs: (Mac, Mac), syn: &TcpSeg) -> bool {
    let b = PacketBuilder::ethernet2(macs.0, macs.1);
    let b = match (syn.dst.ip(), syn.src.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        _ => return false,
    };
    b.tcp(syn.dst.port(), syn.src.port(), 0, 0)
        .rst()
        .ack(syn.seq.wrapping_add(1))
        .write(out, &[])
        .is_ok()
}

/// The echo reply from `from` to `to`, appended to `out`.
pub fn write_echo_reply(
    out: &mut Vec<u8>,
    macs: (Mac, Mac),
    from: IpAddr,
    to: IpAddr,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> bool {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (from, to) else {
        return false;
    };
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(s.octets(), d.octets(), 64)
        .icmpv4_echo_reply(ident, seq)
        .write(out, data)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Mac = [2, 0, 0, 0, 0, 1];
    const G: Mac = [0x52, 0x55, 10, 0, 2, 2];

    fn udp(src: &str, dst: &str, data: &[u8]) -> Vec<u8> {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let mut buf = vec![0u8; udp_payload_offset(&d) + data.len()];
        let off = udp_payload_offset(&d);
        buf[off..].copy_from_slice(data);
        let n = write_udp(&mut buf, (C, G), s, d, data.len()).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn udp_frames_written_in_place_read_back_both_families() {
        for (s, d) in [
            ("10.0.2.100:5353", "1.2.3.4:53"),
            ("[fd00::100]:5353", "[2001:db8::1]:53"),
        ] {
            let f = udp(s, d, b"hello");
            let (mac, frame) = classify(&f).unwrap();
            assert_eq!(mac, C);
            let Frame::Udp { src, dst, payload } = frame else {
                panic!("{frame:?}")
            };
            assert_eq!(
                (src.to_string(), dst.to_string()),
                (s.to_string(), d.to_string())
            );
            assert_eq!(&f[payload], b"hello");
            // The checksum the fast path wrote is the one etherparse computes.
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(TransportSlice::Udp(u)) = p.transport else {
                panic!()
            };
            let want = match p.net {
                Some(NetSlice::Ipv4(ref v)) => {
                    let h = v.header().to_header();
                    assert_eq!(
                        h.header_checksum,
                        h.calc_header_checksum(),
                        "IPv4 header checksum"
                    );
                    u.to_header().calc_checksum_ipv4(&h, b"hello").unwrap()
                }
                Some(NetSlice::Ipv6(ref v)) => u
                    .to_header()
                    .calc_checksum_ipv6(&v.header().to_header(), b"hello")
                    .unwrap(),
                _ => panic!(),
            };
            assert_eq!(u.checksum(), want);
        }
        // Mixed families and payloads that do not fit are refused, not written.
        let mut buf = vec![0u8; 100];
        assert!(
            write_udp(
                &mut buf,
                (C, G),
                "1.1.1.1:1".parse().unwrap(),
                "[::1]:1".parse().unwrap(),
                1
            )
            .is_none()
        );
        assert!(
            write_udp(
                &mut buf,
                (C, G),
                "1.1.1.1:1".parse().unwrap(),
                "2.2.2.2:1".parse().unwrap(),
                90
            )
            .is_none()
        );
    }

    #[test]
    fn syn_gets_a_reset_that_acks_it() {
        let mut syn = Vec::new();
        PacketBuilder::ethernet2(C, G)
            .ipv4([10, 0, 2, 100], [10, 0, 2, 2], 64)
            .tcp(40000, 80, 1000, 64000)
            .syn()
            .write(&mut syn, &[])
            .unwrap();
        let (_, Frame::Tcp(seg)) = classify(&syn).unwrap() else {
            panic!()
        };
        assert!(seg.syn && !seg.rst);
        assert_eq!(seg.seq, 1000);
        let mut out = Vec::new();
        assert!(write_rst(&mut out, (G, C), &seg));
        let (_, Frame::Tcp(rst)) = classify(&out).unwrap() else {
            panic!()
        };
        assert!(rst.rst && !rst.syn);
        assert_eq!((rst.src, rst.dst), (seg.dst, seg.src));
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!()
        };
        assert_eq!(t.acknowledgment_number(), 1001);
    }

    #[test]
    fn echo_requests_and_garbage() {
        let mut ping = Vec::new();
        PacketBuilder::ethernet2(C, G)
            .ipv4([10, 0, 2, 100], [192, 0, 2, 1], 64)
            .icmpv4_echo_request(7, 9)
            .write(&mut ping, b"abc")
            .unwrap();
        let (_, f) = classify(&ping).unwrap();
        let Frame::Echo {
            ident: 7,
            seq: 9,
            ref payload,
            ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(&ping[payload.clone()], b"abc");
        assert!(classify(&[0u8; 5]).is_err());
        // From an address nothing can answer (the fuzzer's find: smoltcp asserts on replying to
        // 0.0.0.0): not for the stack.
        for src in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
        ] {
            let mut f = Vec::new();
            PacketBuilder::ethernet2(C, G)
                .ipv4(src, [10, 0, 2, 2], 64)
                .tcp(1, 80, 0, 0)
                .write(&mut f, &[])
                .unwrap();
            assert_eq!(classify(&f).unwrap().1, Frame::Unsupported, "{src:?}");
        }
        let mut truncated = ping.clone();
        truncated.truncate(20);
        assert!(classify(&truncated).is_err());
    }
}
