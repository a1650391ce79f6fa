//! The container-facing side of the stack without any I/O: a smoltcp [`Device`] over two frame
//! queues (frames read from the TAP device go in `rx`, frames smoltcp sends come out of `tx`),
//! and the gateway interface built for a [`Layout`]. The TAP loop fills and drains the queues;
//! tests drive the same interface with hand-made frames.

use std::cell::RefCell;
use std::collections::VecDeque;

use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

use super::frame::Mac;
use super::options::Layout;

/// The gateway's MAC, slirp4netns' own.
pub const GATEWAY_MAC: Mac = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];

/// Frames smoltcp may have queued toward the container before it is told to wait (the TAP
/// device is not writable): a bound, not a buffer of the whole stream.
pub const TX_QUEUE: usize = 256;

/// The frame queues, with a pool of reused buffers so the steady state allocates nothing.
#[derive(Debug)]
pub struct Queues {
    /// Frames from the container, for smoltcp.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames toward the container.
    pub tx: VecDeque<Vec<u8>>,
    pool: RefCell<Vec<Vec<u8>>>,
    frame_len: usize,
}

impl Queues {
    /// Queues for frames of at most `mtu` bytes of IP.
    pub fn new(mtu: u16) -> Queues {
        Queues {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            pool: RefCell::new(Vec::new()),
            frame_len: usize::from(mtu) + super::frame::ETH_LEN,
        }
    }

    /// The largest frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// A buffer of [`Self::frame_len`] bytes from the pool.
    pub fn buffer(&self) -> Vec<u8> {
        let mut b = self.pool.borrow_mut().pop().unwrap_or_default();
        b.resize(self.frame_len, 0);
        b
    }

    /// Gives a buffer back to the pool (bounded: extra buffers are freed).
    pub fn recycle(&self, b: Vec<u8>) {
        recycle(&self.pool, b);
    }
}

fn recycle(pool: &RefCell<Vec<Vec<u8>>>, b: Vec<u8>) {
    let mut p = pool.borrow_mut();
    if p.len() < 2 * TX_QUEUE {
        p.push(b);
    }
}

/// A received frame handed to smoltcp.
#[derive(Debug)]
pub struct Rx<'a> {
    buf: Vec<u8>,
    pool: &'a RefCell<Vec<Vec<u8>>>,
}

/// Room for one frame toward the container.
#[derive(Debug)]
pub struct Tx<'a> {
    tx: &'a mut VecDeque<Vec<u8>>,
    pool: &'a RefCell<Vec<Vec<u8>>>,
}

impl smoltcp::phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.buf);
        recycle(self.pool, self.buf);
        r
    }
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = self.pool.borrow_mut().pop().unwrap_or_default();
        b.clear();
        b.resize(len, 0);
        let r = f(&mut b);
        self.tx.push_back(b);
        r
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let buf = self.rx.pop_front()?;
        Some((
            Rx {
                buf,
                pool: &self.pool,
            },
            Tx {
                tx: &mut self.tx,
                pool: &self.pool,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        (self.tx.len() < TX_QUEUE).then_some(Tx {
            tx: &mut self.tx,
            pool: &self.pool,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.frame_len;
        // The container's kernel checksums what it sends over a TAP device without offloads; a
        // container that lies only hurts itself. What the stack sends is checksummed.
        let mut sums = ChecksumCapabilities::default();
        sums.ipv4 = Checksum::Tx;
        sums.tcp = Checksum::Tx;
        sums.udp = Checksum::Tx;
        caps.checksum = sums;
        caps
    }
}

/// The gateway interface: the gateway's and the resolver's addresses, answering ARP, NDP and
/// pings for them, and (any-IP) accepting TCP for every address routed through the gateway.
pub fn gateway(layout: &Layout, dev: &mut Queues, seed: u64, now: Instant) -> Interface {
    let mut cfg = Config::new(EthernetAddress(GATEWAY_MAC).into());
    cfg.random_seed = seed;
    let mut iface = Interface::new(cfg, dev, now);
    let prefix = layout.cidr.prefix_len();
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(layout.gateway), prefix));
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(layout.dns), prefix));
        if layout.cidr6.is_some() {
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(layout.gateway6), 64));
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(layout.dns6), 64));
        }
    });
    iface.set_any_ip(true);
    let _ = iface.routes_mut().add_default_ipv4_route(layout.gateway);
    if layout.cidr6.is_some() {
        let _ = iface.routes_mut().add_default_ipv6_route(layout.gateway6);
    }
    iface
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usernet::frame::{Frame, classify};
    use crate::usernet::options::Options;
    use etherparse::{ArpHardwareId, ArpOperation, ArpPacket, EtherType, PacketBuilder};
    use smoltcp::iface::SocketSet;

    const C: Mac = [2, 0, 0, 0, 0, 1];

    #[test]
    fn the_gateway_answers_arp_and_ping_and_nothing_else_without_a_tap() {
        let layout = Options::default().layout();
        let mut dev = Queues::new(1500);
        let mut iface = gateway(&layout, &mut dev, 1, Instant::from_millis(0));
        let mut sockets = SocketSet::new(vec![]);

        let mut arp = Vec::new();
        PacketBuilder::ethernet2(C, [0xff; 6])
            .arp(
                ArpPacket::new(
                    ArpHardwareId::ETHERNET,
                    EtherType::IPV4,
                    ArpOperation::REQUEST,
                    &C,
                    &layout.container.octets(),
                    &[0; 6],
                    &layout.gateway.octets(),
                )
                .unwrap(),
            )
            .write(&mut arp)
            .unwrap();
        dev.rx.push_back(arp);
        let mut ping = Vec::new();
        PacketBuilder::ethernet2(C, GATEWAY_MAC)
            .ipv4(layout.container.octets(), layout.gateway.octets(), 64)
            .icmpv4_echo_request(3, 1)
            .write(&mut ping, b"hi")
            .unwrap();
        dev.rx.push_back(ping);
        iface.poll(Instant::from_millis(1), &mut dev, &mut sockets);

        assert_eq!(dev.tx.len(), 2, "an ARP reply and an echo reply");
        {
            let reply = etherparse::SlicedPacket::from_ethernet(&dev.tx[0]).unwrap();
            let Some(etherparse::NetSlice::Arp(a)) = reply.net else {
                panic!()
            };
            assert_eq!(a.sender_hw_addr(), GATEWAY_MAC);
            assert_eq!(a.target_hw_addr(), C);
            let echo = etherparse::SlicedPacket::from_ethernet(&dev.tx[1]).unwrap();
            let Some(etherparse::TransportSlice::Icmpv4(i)) = echo.transport else {
                panic!()
            };
            assert!(
                matches!(i.icmp_type(), etherparse::Icmpv4Type::EchoReply(h) if h.id == 3 && h.seq == 1)
            );
            assert_eq!(i.payload(), b"hi");
        }

        // A TCP segment to an address nothing listens on is reset by the stack itself.
        dev.tx.clear();
        let mut ack = Vec::new();
        PacketBuilder::ethernet2(C, GATEWAY_MAC)
            .ipv4(layout.container.octets(), [192, 0, 2, 9], 64)
            .tcp(40000, 80, 5, 1000)
            .ack(9)
            .write(&mut ack, &[])
            .unwrap();
        dev.rx.push_back(ack);
        iface.poll(Instant::from_millis(2), &mut dev, &mut sockets);
        assert_eq!(dev.tx.len(), 1);
        let (_, Frame::Tcp(rst)) = classify(&dev.tx[0]).unwrap() else {
            panic!()
        };
        assert!(rst.rst);
    }
}
