//! The running stack against a fake link (no TAP device, no namespace) and real loopback
//! sockets on the host side: the first datagram of a new flow goes out and its reply comes back
//! as a frame, with no published port (the case where a closed accept queue used to spin the
//! loop and starve every socket task).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use etherparse::PacketBuilder;

use super::frame::{self, Frame};
use super::stack::{Config, Link, Stack};
use super::{Options, device::GATEWAY_MAC};

#[derive(Default)]
struct FakeLink {
    to_stack: RefCell<VecDeque<Vec<u8>>>,
    from_stack: RefCell<Vec<Vec<u8>>>,
    wake: tokio::sync::Notify,
}

impl Link for FakeLink {
    async fn readable(&self) -> io::Result<()> {
        if self.to_stack.borrow().is_empty() {
            self.wake.notified().await;
        }
        Ok(())
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let f = self
            .to_stack
            .borrow_mut()
            .pop_front()
            .ok_or(io::ErrorKind::WouldBlock)?;
        buf[..f.len()].copy_from_slice(&f);
        Ok(f.len())
    }
    fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.from_stack.borrow_mut().push(buf.to_vec());
        Ok(buf.len())
    }
    async fn writable(&self) -> io::Result<()> {
        Ok(())
    }
}

const C: frame::Mac = [2, 0, 0, 0, 0, 1];

#[tokio::test(flavor = "current_thread")]
async fn a_new_udp_flow_is_answered_without_published_ports() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = echo.send_to(&reply, from);
        }
    });
    let cfg = Config {
        options: Options {
            allow_host_loopback: true,
            ..Options::default()
        },
        upstream_dns: None,
        tcp_idle: Duration::from_secs(60),
        udp_idle: Duration::from_secs(60),
    };
    let mut stack = Stack::new(cfg, Vec::new()).unwrap();
    let link = FakeLink::default();
    let mut datagram = Vec::new();
    PacketBuilder::ethernet2(C, GATEWAY_MAC)
        .ipv4([10, 0, 2, 100], [10, 0, 2, 2], 64)
        .udp(5000, port)
        .write(&mut datagram, b"hi")
        .unwrap();
    link.to_stack.borrow_mut().push_back(datagram);
    let (_req, mut reports) = tokio::sync::mpsc::channel(1);
    let done = async {
        for _ in 0..200 {
            if !link.from_stack.borrow().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    stack.run(&link, done, &mut reports).await.unwrap();
    let out = link.from_stack.borrow();
    let reply = out.first().expect("the reply came back as a frame");
    let (_, f) = frame::classify(reply).unwrap();
    let Frame::Udp { src, dst, payload } = f else {
        panic!("{f:?}")
    };
    assert_eq!(
        src,
        SocketAddr::from(([10, 0, 2, 2], port)),
        "from the gateway's address"
    );
    assert_eq!(dst, SocketAddr::from(([10, 0, 2, 100], 5000)));
    assert_eq!(&reply[payload], b"echo:hi");
    assert_eq!(stack.counters().udp_flows, 1);
}
