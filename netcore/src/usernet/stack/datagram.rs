//! UDP flows and pings: translated on the fast path without smoltcp, each container flow on a
//! connected host socket, each client of a published UDP port on a source the container answers.

use super::*;

impl Stack {
    // ---- UDP ----

    pub(super) fn udp_out(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let now = self.now_ms();
        // A reply to a published port's client.
        if let Some(&(i, client)) = self.inbound_src.get(&dst) {
            if let (Some(sock), Some(flow)) = (
                self.listeners[i].udp.clone(),
                self.inbound.touch(&(i, client), now),
            ) {
                flow.reply = now;
                let _ = send_now(&sock, payload, Some(client));
            }
            return;
        }
        let key = (src, dst);
        if let Some(flow) = self.udp.touch(&key, now) {
            let _ = send_now(&flow.sock, payload, None);
            return;
        }
        let target = match self.policy.outbound(dst) {
            Ok(t) => t,
            Err(_) => {
                self.counters.refused += 1;
                return;
            }
        };
        let sock = match udp_socket(self.policy.bind_for(&target), target) {
            Ok(s) => Arc::new(s),
            Err(_) => {
                self.counters.refused += 1;
                return;
            }
        };
        let _ = send_now(&sock, payload, None);
        let id = self.id();
        let flow = UdpFlow {
            id,
            sock,
            arm: None,
            reply: 0,
        };
        if let Some((k, old)) = self.udp.insert(key, flow, now) {
            self.counters.table_full += 1;
            self.udp_ids.remove(&old.id);
            if let Some(a) = old.arm {
                a.abort();
            }
            let _ = k;
        }
        self.udp_ids.insert(id, key);
        self.arm_udp(id);
    }

    pub(super) fn arm_udp(&mut self, id: u64) {
        let Some(key) = self.udp_ids.get(&id) else {
            return;
        };
        // Touching at time 0 looks the flow up without counting it as active.
        let Some(flow) = self.udp.touch(key, 0) else {
            return;
        };
        let s = flow.sock.clone();
        let tx = self.tx.clone();
        flow.arm = Some(tokio::spawn(async move {
            let _ = s.readable().await;
            let _ = tx.send(Event::UdpReadable(id));
        }));
    }

    pub(super) fn udp_in(&mut self, id: u64) {
        let Some(&(container, remote)) = self.udp_ids.get(&id) else {
            return;
        };
        let now = self.now_ms();
        let Some(flow) = self.udp.touch(&(container, remote), 0) else {
            return;
        };
        flow.arm = None;
        flow.reply = now;
        let sock = flow.sock.clone();
        let off = frame::udp_payload_offset(&container);
        for _ in 0..BATCH {
            let mut buf = self.dev.buffer();
            match sock.try_recv(&mut buf[off..]) {
                Ok(n) => self.queue_udp(buf, remote, container, n),
                Err(e) => {
                    self.dev.recycle(buf);
                    if would_block(&e) {
                        break;
                    }
                }
            }
        }
        self.arm_udp(id);
    }

    /// Queues the datagram of `n` bytes already in `buf` (at its payload offset) toward the
    /// container, from `src`; dropped (the buffer recycled) when the TX queue is full.
    fn queue_udp(&mut self, mut buf: Vec<u8>, src: SocketAddr, dst: SocketAddr, n: usize) {
        if self.dev.tx.len() < 2 * TX_QUEUE {
            if let Some(len) = frame::write_udp(&mut buf, self.macs(), src, dst, n) {
                buf.truncate(len);
                self.dev.tx.push_back(buf);
                return;
            }
        }
        self.dev.recycle(buf);
    }

    pub(super) fn arm_listener(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        let Some(s) = l.udp.clone() else { return };
        let tx = self.tx.clone();
        l.arm = Some(tokio::spawn(async move {
            let _ = s.readable().await;
            let _ = tx.send(Event::ListenerReadable(i));
        }));
    }

    pub(super) fn listener_in(&mut self, i: usize) {
        let Some(sock) = self.listeners[i].udp.clone() else {
            return;
        };
        let container = self.listeners[i].mapping.container;
        let off = frame::udp_payload_offset(&container);
        let now = self.now_ms();
        for _ in 0..BATCH {
            let mut buf = self.dev.buffer();
            match sock.try_recv_from(&mut buf[off..]) {
                Ok((n, client)) => {
                    let src = match self.inbound.touch(&(i, client), now) {
                        Some(f) => f.src,
                        None => {
                            let port = self.free_port(container);
                            let src = self.policy.inbound_source(
                                client,
                                container.ip(),
                                self.preserve,
                                port,
                            );
                            if let Some((k, old)) =
                                self.inbound
                                    .insert((i, client), InUdp { src, reply: 0 }, now)
                            {
                                self.counters.table_full += 1;
                                self.inbound_src.remove(&old.src);
                                let _ = k;
                            }
                            self.inbound_src.insert(src, (i, client));
                            src
                        }
                    };
                    self.queue_udp(buf, src, container, n);
                }
                Err(e) => {
                    self.dev.recycle(buf);
                    if would_block(&e) {
                        break;
                    }
                }
            }
        }
        self.arm_listener(i);
    }

    // ---- ICMP echo ----

    pub(super) fn ping(&mut self, src: IpAddr, dst: IpAddr, ident: u16, seq: u16, data: &[u8]) {
        let target = match self.policy.outbound(SocketAddr::new(dst, 1)) {
            Ok(t) => t.ip(),
            Err(_) => {
                self.counters.refused += 1;
                return;
            }
        };
        let now = self.now_ms();
        let key = (src, dst, ident);
        let sock = match self.pings.touch(&key, now) {
            Some(f) => f.sock.clone(),
            None => {
                let Ok(s) = ping_socket(target) else {
                    // The host's net.ipv4.ping_group_range leaves this user out: no echo.
                    self.counters.refused += 1;
                    return;
                };
                let s = Arc::new(s);
                let id = self.id();
                if let Some((_, old)) = self.pings.insert(
                    key,
                    PingFlow {
                        id,
                        sock: s.clone(),
                        arm: None,
                        reply: 0,
                    },
                    now,
                ) {
                    self.ping_ids.remove(&old.id);
                    if let Some(a) = old.arm {
                        a.abort();
                    }
                }
                self.ping_ids.insert(id, key);
                self.arm_ping(id);
                s
            }
        };
        let mut msg = Vec::with_capacity(8 + data.len());
        msg.extend_from_slice(&[8, 0, 0, 0]);
        msg.extend_from_slice(&ident.to_be_bytes());
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.extend_from_slice(data);
        let _ = send_now(&sock, &msg, None);
    }

    pub(super) fn arm_ping(&mut self, id: u64) {
        let Some(key) = self.ping_ids.get(&id) else {
            return;
        };
        let Some(flow) = self.pings.touch(key, 0) else {
            return;
        };
        let s = flow.sock.clone();
        let tx = self.tx.clone();
        flow.arm = Some(tokio::spawn(async move {
            let _ = s.readable().await;
            let _ = tx.send(Event::PingReadable(id));
        }));
    }

    pub(super) fn ping_in(&mut self, id: u64) {
        let Some(&(src, dst, ident)) = self.ping_ids.get(&id) else {
            return;
        };
        let now = self.now_ms();
        let Some(flow) = self.pings.touch(&(src, dst, ident), 0) else {
            return;
        };
        flow.reply = now;
        let sock = flow.sock.clone();
        let mut buf = [0u8; 2048];
        for _ in 0..BATCH {
            let Ok(n) = sock.try_recv(&mut buf) else {
                break;
            };
            // The kernel hands back the ICMP header and data; the identifier is its own.
            if n >= 8 && buf[0] == 0 {
                let seq = u16::from_be_bytes([buf[6], buf[7]]);
                let mut out = Vec::new();
                if self.dev.tx.len() < 2 * TX_QUEUE
                    && frame::write_echo_reply(
                        &mut out,
                        self.macs(),
                        dst,
                        src,
                        ident,
                        seq,
                        &buf[8..n],
                    )
                {
                    self.dev.tx.push_back(out);
                }
            }
        }
        self.arm_ping(id);
    }
}

/// Sends a datagram now. tokio's `try_send` answers `WouldBlock` without trying until its
/// reactor has seen the socket writable, which loses the first datagram of every new flow; a
/// datagram that really finds the buffer full is dropped, as UDP may be.
fn send_now(sock: &UdpSocket, payload: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
    let s = socket2::SockRef::from(sock);
    match to {
        Some(to) => s.send_to(payload, &to.into()),
        None => s.send(payload),
    }
}

fn udp_socket(bind: SocketAddr, target: SocketAddr) -> io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(target)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

fn ping_socket(target: IpAddr) -> io::Result<UdpSocket> {
    let IpAddr::V4(_) = target else {
        return Err(io::ErrorKind::Unsupported.into());
    };
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM.nonblocking(),
        Some(socket2::Protocol::ICMPV4),
    )?;
    s.connect(&SocketAddr::new(target, 0).into())?;
    UdpSocket::from_std(s.into())
}
