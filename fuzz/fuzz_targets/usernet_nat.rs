//! Any sequence of frames from a hostile container against the stack's container side, without
//! I/O: the frames are classified, connection requests the NAT's policy lets out open a
//! listening smoltcp socket as the running stack does, and the gateway interface (any-IP, ARP,
//! NDP, echo) takes everything else. Nothing panics, every frame the stack sends back parses,
//! and the socket table stays within the bound the stack keeps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netcore::usernet::device::{Queues, gateway};
use netcore::usernet::frame::{self, Frame};
use netcore::usernet::nat::Policy;
use netcore::usernet::Options;
use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpListenEndpoint;

const MAX_SOCKETS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let options = Options { allow_host_loopback: data.first().is_some_and(|b| b & 1 == 1), ..Options::default() };
    let policy = Policy::new(&options, Some("192.0.2.53:53".parse().unwrap()));
    let mut dev = Queues::new(1500);
    let mut iface = gateway(&policy.layout, &mut dev, 7, Instant::from_millis(0));
    let mut sockets = SocketSet::new(vec![]);
    let mut now = 0i64;
    // Frames: a 2-byte length, then that many bytes; a zero length advances the clock.
    let mut rest = data.get(1..).unwrap_or_default();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1600;
        rest = &rest[2..];
        if len == 0 {
            now += 1_000;
        }
        let len = len.min(rest.len());
        let (f, tail) = rest.split_at(len);
        rest = tail;
        // What the running stack hands to smoltcp, and only that.
        let Ok((_, classified)) = frame::classify(f) else { continue };
        if !policy.for_smoltcp(&classified) {
            continue;
        }
        if let Frame::Tcp(seg) = classified {
            if seg.syn && policy.outbound(seg.dst).is_ok() && sockets.iter().count() < MAX_SOCKETS {
                let mut s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 4096]),
                    tcp::SocketBuffer::new(vec![0; 4096]),
                );
                if s.listen(IpListenEndpoint { addr: Some(seg.dst.ip().into()), port: seg.dst.port() }).is_ok() {
                    sockets.add(s);
                }
            }
        }
        dev.rx.push_back(f.to_vec());
        now += 1;
        iface.poll(Instant::from_millis(now), &mut dev, &mut sockets);
        for out in dev.tx.drain(..) {
            frame::classify(&out).expect("the stack's own frames parse");
        }
        let done: Vec<_> = sockets
            .iter()
            .filter(|(_, s)| {
                // TCP is the only socket kind the stack builds with.
                let smoltcp::socket::Socket::Tcp(t) = s;
                matches!(t.state(), tcp::State::Closed | tcp::State::TimeWait)
            })
            .map(|(h, _)| h)
            .collect();
        for h in done {
            sockets.remove(h);
        }
        // Data the container sent is read, as the stack forwards it.
        for (_, s) in sockets.iter_mut() {
            let smoltcp::socket::Socket::Tcp(t) = s;
            let _ = t.recv(|b| (b.len(), ()));
            if t.can_send() {
                let _ = t.send_slice(b"reply");
            }
        }
        assert!(sockets.iter().count() <= MAX_SOCKETS);
    }
});
