//! TCP flows: a container's connection request held until the host connection is made, then
//! a smoltcp socket bridged to the host socket; published TCP ports accepted into the stack.

use super::*;

impl Stack {
    pub(super) fn tcp_segment(&mut self, buf: Vec<u8>, seg: TcpSeg) {
        let key = (seg.src, seg.dst);
        if let Some(id) = self.tcp_keys.get(&key) {
            let now = self.now_ms();
            let f = self.tcp.get_mut(id).expect("keyed flow");
            f.last = now;
            if f.handle.is_some() {
                self.dev.rx.push_back(buf);
            } else {
                self.dev.recycle(buf); // a retransmitted SYN while the host connects
            }
            return;
        }
        if !seg.syn || seg.rst {
            // smoltcp resets what belongs to no connection.
            self.dev.rx.push_back(buf);
            return;
        }
        let target = match self.policy.outbound(seg.dst) {
            Ok(t) => t,
            Err(_) => {
                self.counters.refused += 1;
                self.reset(&seg);
                self.dev.recycle(buf);
                return;
            }
        };
        if self.tcp.len() >= nat::MAX_TCP || self.connecting >= nat::MAX_CONNECTING {
            self.counters.table_full += 1;
            self.reset(&seg);
            self.dev.recycle(buf);
            return;
        }
        let id = self.id();
        let bind = self.policy.bind_for(&target);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let r = tokio::time::timeout(nat::CONNECT_TIMEOUT, connect(bind, target))
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
            let _ = tx.send(Event::Connected(id, r));
        });
        self.connecting += 1;
        self.tcp_keys.insert(key, id);
        self.tcp.insert(
            id,
            TcpFlow {
                key,
                handle: None,
                stream: None,
                syn: Some((buf, seg)),
                read_arm: None,
                write_arm: None,
                host_eof: false,
                host_shut: false,
                last: self.now_ms(),
            },
        );
    }

    pub(super) fn reset(&mut self, seg: &TcpSeg) {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        // Never from an address nothing may send from (a SYN to a multicast group).
        if self.dev.tx.len() < 2 * TX_QUEUE
            && frame::usable_source(seg.dst.ip())
            && frame::write_rst(&mut out, self.macs(), seg)
        {
            self.dev.tx.push_back(out.clone());
        }
        self.scratch = out;
    }

    pub(super) fn new_socket() -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; nat::TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0u8; nat::TCP_BUFFER]),
        );
        s.set_nagle_enabled(false);
        s
    }

    pub(super) fn connected(&mut self, id: u64, r: io::Result<TcpStream>) {
        let Some((syn, seg)) = self.tcp.get_mut(&id).and_then(|f| f.syn.take()) else {
            return;
        };
        self.connecting -= 1;
        match r {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let mut sock = Self::new_socket();
                let ep = IpListenEndpoint {
                    addr: Some(seg.dst.ip().into()),
                    port: seg.dst.port(),
                };
                if sock.listen(ep).is_err() {
                    self.remove_tcp(id);
                    return;
                }
                // smoltcp takes every frame queued so far before the listener exists, so the
                // only segment that can reach it is this SYN (a listener accepts any SYN).
                self.poll();
                let handle = self.sockets.add(sock);
                if let Some(f) = self.tcp.get_mut(&id) {
                    f.handle = Some(handle);
                    f.stream = Some(Arc::new(stream));
                }
                self.dev.rx.push_back(syn);
                self.poll();
            }
            Err(_) => {
                self.dev.recycle(syn);
                self.reset(&seg);
                self.remove_tcp(id);
            }
        }
    }

    pub(super) fn accepted(&mut self, i: usize, stream: TcpStream) {
        if self.tcp.len() >= nat::MAX_TCP {
            self.counters.table_full += 1;
            return;
        }
        let Ok(client) = stream.peer_addr() else {
            return;
        };
        let container = self.listeners[i].mapping.container;
        let port = self.free_port(container);
        let src = self
            .policy
            .inbound_source(client, container.ip(), self.preserve, port);
        let key = (container, src);
        if self.tcp_keys.contains_key(&key) {
            return;
        }
        let mut sock = Self::new_socket();
        let remote: IpEndpoint = container.into();
        let local = IpListenEndpoint {
            addr: Some(src.ip().into()),
            port: src.port(),
        };
        if sock.connect(self.iface.context(), remote, local).is_err() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let id = self.id();
        self.tcp_keys.insert(key, id);
        let handle = self.sockets.add(sock);
        self.tcp.insert(
            id,
            TcpFlow {
                key,
                handle: Some(handle),
                stream: Some(Arc::new(stream)),
                syn: None,
                read_arm: None,
                write_arm: None,
                host_eof: false,
                host_shut: false,
                last: self.now_ms(),
            },
        );
    }

    /// A source port toward `container` no flow uses.
    pub(super) fn free_port(&mut self, container: SocketAddr) -> u16 {
        for _ in 0..28232 {
            self.next_port = if self.next_port >= 60999 {
                32768
            } else {
                self.next_port + 1
            };
            let p = self.next_port;
            let gw = SocketAddr::new(self.policy.layout.gateway_for(container.ip()), p);
            if !self.tcp_keys.contains_key(&(container, gw)) && !self.inbound_src.contains_key(&gw)
            {
                return p;
            }
        }
        self.next_port
    }

    pub(super) fn service_all(&mut self) {
        // The list is reused round to round: no allocation in the steady state.
        let mut ids = std::mem::take(&mut self.flow_ids);
        ids.clear();
        ids.extend(
            self.tcp
                .iter()
                .filter(|(_, f)| f.handle.is_some())
                .map(|(id, _)| *id),
        );
        for &id in &ids {
            self.service(id);
        }
        self.flow_ids = ids;
    }

    /// Moves what can move between a flow's smoltcp socket and its host socket.
    pub(super) fn service(&mut self, id: u64) {
        let now = self.now_ms();
        let tx = self.tx.clone();
        let Some(f) = self.tcp.get_mut(&id) else {
            return;
        };
        let (Some(h), Some(stream)) = (f.handle, f.stream.clone()) else {
            return;
        };
        let sock = self.sockets.get_mut::<tcp::Socket>(h);
        let mut fail = false;
        // Container -> host.
        while sock.can_recv() && f.write_arm.is_none() {
            match sock.recv(|b| match stream.try_write(b) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            }) {
                Ok(Ok(_)) => f.last = now,
                Ok(Err(e)) if would_block(&e) => {
                    let s = stream.clone();
                    let tx = tx.clone();
                    f.write_arm = Some(tokio::spawn(async move {
                        let _ = s.writable().await;
                        let _ = tx.send(Event::HostWritable(id));
                    }));
                }
                _ => {
                    fail = true;
                    break;
                }
            }
        }
        use tcp::State::*;
        if !f.host_shut
            && sock.recv_queue() == 0
            && matches!(sock.state(), CloseWait | LastAck | Closing | TimeWait)
        {
            let _ = socket2::SockRef::from(&*stream).shutdown(Shutdown::Write);
            f.host_shut = true;
        }
        // Host -> container.
        if !f.host_eof && f.read_arm.is_none() && sock.may_send() {
            while sock.can_send() {
                match sock.send(|b| {
                    if b.is_empty() {
                        return (0, Ok(usize::MAX));
                    }
                    match stream.try_read(b) {
                        Ok(n) => (n, Ok(n)),
                        Err(e) => (0, Err(e)),
                    }
                }) {
                    Ok(Ok(usize::MAX)) => break,
                    Ok(Ok(0)) => {
                        f.host_eof = true;
                        sock.close();
                        break;
                    }
                    Ok(Ok(_)) => f.last = now,
                    Ok(Err(e)) if would_block(&e) => {
                        let s = stream.clone();
                        let tx = tx.clone();
                        f.read_arm = Some(tokio::spawn(async move {
                            let _ = s.readable().await;
                            let _ = tx.send(Event::HostReadable(id));
                        }));
                        break;
                    }
                    _ => {
                        fail = true;
                        break;
                    }
                }
            }
        }
        if fail {
            sock.abort();
        }
        let state = sock.state();
        if matches!(state, Closed | TimeWait | Listen) {
            // Listen: the SYN this socket was made for did not open it.
            self.remove_tcp(id);
        }
    }

    pub(super) fn remove_tcp(&mut self, id: u64) {
        let Some(f) = self.tcp.remove(&id) else {
            return;
        };
        self.tcp_keys.remove(&f.key);
        for arm in [f.read_arm, f.write_arm].into_iter().flatten() {
            arm.abort();
        }
        if let Some((buf, _)) = f.syn {
            self.connecting -= 1;
            self.dev.recycle(buf);
        }
        if let Some(h) = f.handle {
            self.sockets.remove(h);
        }
    }
}

async fn connect(bind: SocketAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let s = match target {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if !bind.ip().is_unspecified() {
        s.bind(bind)?;
    }
    s.connect(target).await
}
