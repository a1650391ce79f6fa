//! The running stack: one task that owns the gateway interface, the TAP device and every flow.
//! Frames from the container are classified on the fast path ([`super::frame`]); TCP goes
//! through smoltcp, whose sockets are bridged to host sockets; UDP and pings are translated
//! directly. Host sockets are non-blocking and serviced by this task alone: a readiness wait that
//! fails with `WouldBlock` spawns a tiny task that reports the flow's readiness back (at most one
//! per flow and direction, aborted with the flow), so no lock exists and nothing polls.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portproxy::flows::FlowTable;
use portproxy::listen::Bound;
use portproxy::spec::Mapping;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::device::{GATEWAY_MAC, Queues, TX_QUEUE, gateway};
use super::frame::{self, BROADCAST, Frame, Mac, TcpSeg};
use super::nat::{self, Counters, Policy};
use super::options::{Options, PortHandler};

/// How one stack runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The user's options.
    pub options: Options,
    /// Where the resolver address forwards.
    pub upstream_dns: Option<SocketAddr>,
    /// An idle TCP flow is closed after this long.
    pub tcp_idle: Duration,
    /// An idle UDP or ping flow is forgotten after this long.
    pub udp_idle: Duration,
}

/// A frame source and sink: the TAP device, or a fake in tests.
pub trait Link {
    /// Waits until a frame may be read.
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>>;
    /// Reads one frame without waiting.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one frame without waiting.
    fn try_send(&self, buf: &[u8]) -> io::Result<usize>;
    /// Waits until a frame may be written.
    fn writable(&self) -> impl std::future::Future<Output = io::Result<()>>;
}

impl Link for tun_rs::AsyncDevice {
    async fn readable(&self) -> io::Result<()> {
        tun_rs::AsyncDevice::readable(self).await
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        tun_rs::AsyncDevice::try_recv(self, buf)
    }
    fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        tun_rs::AsyncDevice::try_send(self, buf)
    }
    async fn writable(&self) -> io::Result<()> {
        tun_rs::AsyncDevice::writable(self).await
    }
}

/// Frames handled per wake-up before host events get their turn.
const BATCH: usize = 128;

/// Published connections accepted ahead of the stack; the rest wait in the kernel's backlog.
const ACCEPT_QUEUE: usize = 64;

enum Event {
    Connected(u64, io::Result<TcpStream>),
    Accepted(usize, TcpStream),
    HostReadable(u64),
    HostWritable(u64),
    UdpReadable(u64),
    ListenerReadable(usize),
    PingReadable(u64),
}

struct TcpFlow {
    key: (SocketAddr, SocketAddr),
    handle: Option<SocketHandle>,
    stream: Option<Arc<TcpStream>>,
    syn: Option<(Vec<u8>, TcpSeg)>,
    read_arm: Option<JoinHandle<()>>,
    write_arm: Option<JoinHandle<()>>,
    host_eof: bool,
    host_shut: bool,
    last: u64,
}

struct UdpFlow {
    id: u64,
    sock: Arc<UdpSocket>,
    arm: Option<JoinHandle<()>>,
    reply: u64,
}

struct InUdp {
    src: SocketAddr,
    reply: u64,
}

struct PingFlow {
    id: u64,
    sock: Arc<UdpSocket>,
    arm: Option<JoinHandle<()>>,
    reply: u64,
}

struct Listener {
    mapping: Mapping,
    udp: Option<Arc<UdpSocket>>,
    arm: Option<JoinHandle<()>>,
}

type UdpKey = (SocketAddr, SocketAddr);
type PingKey = (IpAddr, IpAddr, u16);

/// One container's stack.
pub struct Stack {
    cfg: Config,
    policy: Policy,
    preserve: bool,
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Queues,
    container_mac: Mac,
    tcp: HashMap<u64, TcpFlow>,
    tcp_keys: HashMap<(SocketAddr, SocketAddr), u64>,
    connecting: usize,
    udp: FlowTable<UdpKey, UdpFlow>,
    udp_ids: HashMap<u64, UdpKey>,
    inbound: FlowTable<(usize, SocketAddr), InUdp>,
    inbound_src: HashMap<SocketAddr, (usize, SocketAddr)>,
    pings: FlowTable<PingKey, PingFlow>,
    ping_ids: HashMap<u64, PingKey>,
    listeners: Vec<Listener>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    accept_rx: mpsc::Receiver<Event>,
    /// Held so the accept queue never reads as closed (a closed queue is always ready).
    _accept_tx: mpsc::Sender<Event>,
    next_id: u64,
    next_port: u16,
    epoch: std::time::Instant,
    counters: Counters,
    scratch: Vec<u8>,
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_ne_bytes(b)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Stack {
    /// A stack for `cfg`, serving the published sockets `published` (bound by the caller).
    /// Must run inside a tokio runtime.
    pub fn new(cfg: Config, published: Vec<(Mapping, Bound)>) -> io::Result<Stack> {
        let policy = Policy::new(&cfg.options, cfg.upstream_dns);
        let mut dev = Queues::new(cfg.options.mtu);
        let epoch = std::time::Instant::now();
        let iface = gateway(
            &policy.layout,
            &mut dev,
            random_seed(),
            Instant::from_micros(0),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let (accept_tx, accept_rx) = mpsc::channel(ACCEPT_QUEUE);
        let mut listeners = Vec::new();
        for (i, (mapping, bound)) in published.into_iter().enumerate() {
            match bound {
                Bound::Tcp(l) => {
                    let l = tokio::net::TcpListener::from_std(l)?;
                    let tx = accept_tx.clone();
                    // Accepted connections wait in the kernel's backlog until the stack has room.
                    let accept = tokio::spawn(async move {
                        while let Ok((s, _)) = l.accept().await {
                            if tx.send(Event::Accepted(i, s)).await.is_err() {
                                break;
                            }
                        }
                    });
                    listeners.push(Listener {
                        mapping,
                        udp: None,
                        arm: Some(accept),
                    });
                }
                Bound::Udp { socket, .. } => listeners.push(Listener {
                    mapping,
                    udp: Some(Arc::new(UdpSocket::from_std(socket)?)),
                    arm: None,
                }),
            }
        }
        let udp_idle = cfg.udp_idle.as_millis() as u64;
        let mut s = Stack {
            preserve: cfg.options.port_handler == PortHandler::Slirp4netns,
            cfg,
            policy,
            iface,
            sockets: SocketSet::new(vec![]),
            dev,
            container_mac: BROADCAST,
            tcp: HashMap::new(),
            tcp_keys: HashMap::new(),
            connecting: 0,
            udp: FlowTable::new(nat::MAX_UDP, udp_idle),
            udp_ids: HashMap::new(),
            inbound: FlowTable::new(nat::MAX_UDP, udp_idle),
            inbound_src: HashMap::new(),
            pings: FlowTable::new(nat::MAX_PING, udp_idle),
            ping_ids: HashMap::new(),
            listeners,
            tx,
            rx,
            accept_rx,
            _accept_tx: accept_tx,
            next_id: 1,
            next_port: 32768,
            epoch,
            counters: Counters::default(),
            scratch: Vec::new(),
        };
        for i in 0..s.listeners.len() {
            s.arm_listener(i);
        }
        Ok(s)
    }

    /// What the stack counts now.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        c.tcp_flows = self.tcp.len();
        c.udp_flows = self.udp.len() + self.inbound.len();
        c.ping_flows = self.pings.len();
        c
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn macs(&self) -> (Mac, Mac) {
        (GATEWAY_MAC, self.container_mac)
    }

    /// Runs until the link fails (the container's namespace is gone) or `stop` fires. Each
    /// request on `reports` is answered with the counters.
    pub async fn run<L: Link>(
        &mut self,
        link: &L,
        stop: impl std::future::Future<Output = ()>,
        reports: &mut mpsc::Receiver<tokio::sync::oneshot::Sender<Counters>>,
    ) -> io::Result<()> {
        tokio::pin!(stop);
        let mut next_expiry = self.now_ms() + 1000;
        loop {
            let delay = self
                .iface
                .poll_delay(self.now(), &self.sockets)
                .map(|d| Duration::from_micros(d.total_micros()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_millis(
                    next_expiry.saturating_sub(self.now_ms()),
                ));
            let tx_waiting = !self.dev.tx.is_empty();
            tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                r = link.writable(), if tx_waiting => r?,
                r = link.readable() => r?,
                ev = self.rx.recv() => {
                    if let Some(ev) = ev { self.handle(ev); }
                }
                ev = self.accept_rx.recv() => {
                    if let Some(ev) = ev { self.handle(ev); }
                }
                Some(reply) = reports.recv() => {
                    let _ = reply.send(self.counters());
                }
                () = tokio::time::sleep(delay) => {}
            }
            self.step(link)?;
            let now = self.now_ms();
            if now >= next_expiry {
                self.expire(now);
                next_expiry = now + 1000;
            }
        }
    }

    /// One round: frames in, host events, smoltcp, flows, frames out.
    fn step<L: Link>(&mut self, link: &L) -> io::Result<()> {
        self.read_frames(link)?;
        for _ in 0..BATCH {
            match self.rx.try_recv() {
                Ok(ev) => self.handle(ev),
                Err(_) => break,
            }
        }
        self.poll();
        self.service_all();
        self.poll();
        self.flush(link)
    }

    fn poll(&mut self) {
        let now = self.now();
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
    }

    fn read_frames<L: Link>(&mut self, link: &L) -> io::Result<()> {
        for _ in 0..BATCH {
            let mut buf = self.dev.buffer();
            match link.try_recv(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    self.counters.frames_in += 1;
                    self.frame(buf);
                }
                Err(e) if would_block(&e) => {
                    self.dev.recycle(buf);
                    break;
                }
                Err(e) => return Err(e),
            }
            if self.dev.rx.len() >= BATCH {
                // smoltcp takes its frames before more are read.
                self.poll();
            }
        }
        Ok(())
    }

    fn flush<L: Link>(&mut self, link: &L) -> io::Result<()> {
        while let Some(f) = self.dev.tx.front() {
            match link.try_send(f) {
                Ok(_) => {
                    self.counters.frames_out += 1;
                    let f = self.dev.tx.pop_front().expect("front");
                    self.dev.recycle(f);
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Takes one frame from the container.
    fn frame(&mut self, buf: Vec<u8>) {
        let (mac, f) = match frame::classify(&buf) {
            Ok(x) => x,
            Err(_) => {
                self.counters.malformed += 1;
                self.dev.recycle(buf);
                return;
            }
        };
        if mac[0] & 1 == 0 && mac != GATEWAY_MAC {
            self.container_mac = mac;
        }
        let to_smoltcp = self.policy.for_smoltcp(&f);
        match f {
            Frame::Stack => self.dev.rx.push_back(buf),
            Frame::Tcp(seg) => self.tcp_segment(buf, seg),
            Frame::Udp { src, dst, payload } => {
                self.udp_out(src, dst, &buf[payload]);
                self.dev.recycle(buf);
            }
            Frame::Echo {
                src,
                dst,
                ident,
                seq,
                payload,
            } => {
                if to_smoltcp {
                    self.dev.rx.push_back(buf);
                } else {
                    self.ping(src, dst, ident, seq, &buf[payload]);
                    self.dev.recycle(buf);
                }
            }
            Frame::Unsupported => {
                self.counters.unsupported += 1;
                self.dev.recycle(buf);
            }
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    // ---- TCP ----

    fn tcp_segment(&mut self, buf: Vec<u8>, seg: TcpSeg) {
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

    fn reset(&mut self, seg: &TcpSeg) {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        if frame::write_rst(&mut out, self.macs(), seg) {
            self.dev.tx.push_back(out.clone());
        }
        self.scratch = out;
    }

    fn new_socket() -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; nat::TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0u8; nat::TCP_BUFFER]),
        );
        s.set_nagle_enabled(false);
        s
    }

    fn connected(&mut self, id: u64, r: io::Result<TcpStream>) {
        let Some(f) = self.tcp.get_mut(&id) else {
            return;
        };
        self.connecting -= 1;
        let (syn, seg) = f.syn.take().expect("connecting flow has its SYN");
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
                f.handle = Some(self.sockets.add(sock));
                f.stream = Some(Arc::new(stream));
                // Only this SYN is queued, so only it can reach the new listener.
                self.poll();
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

    fn accepted(&mut self, i: usize, stream: TcpStream) {
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
    fn free_port(&mut self, container: SocketAddr) -> u16 {
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

    fn service_all(&mut self) {
        let ids: Vec<u64> = self
            .tcp
            .iter()
            .filter(|(_, f)| f.handle.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.service(id);
        }
    }

    /// Moves what can move between a flow's smoltcp socket and its host socket.
    fn service(&mut self, id: u64) {
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

    fn remove_tcp(&mut self, id: u64) {
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

    // ---- UDP ----

    fn udp_out(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
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

    fn arm_udp(&mut self, id: u64) {
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

    fn udp_in(&mut self, id: u64) {
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
                Ok(n) => {
                    if self.dev.tx.len() < 2 * TX_QUEUE {
                        if let Some(len) =
                            frame::write_udp(&mut buf, self.macs(), remote, container, n)
                        {
                            buf.truncate(len);
                            self.dev.tx.push_back(buf);
                            continue;
                        }
                    }
                    self.dev.recycle(buf);
                }
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

    fn arm_listener(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        let Some(s) = l.udp.clone() else { return };
        let tx = self.tx.clone();
        l.arm = Some(tokio::spawn(async move {
            let _ = s.readable().await;
            let _ = tx.send(Event::ListenerReadable(i));
        }));
    }

    fn listener_in(&mut self, i: usize) {
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
                    if self.dev.tx.len() < 2 * TX_QUEUE {
                        if let Some(len) =
                            frame::write_udp(&mut buf, self.macs(), src, container, n)
                        {
                            buf.truncate(len);
                            self.dev.tx.push_back(buf);
                            continue;
                        }
                    }
                    self.dev.recycle(buf);
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

    fn ping(&mut self, src: IpAddr, dst: IpAddr, ident: u16, seq: u16, data: &[u8]) {
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

    fn arm_ping(&mut self, id: u64) {
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

    fn ping_in(&mut self, id: u64) {
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
        while let Ok(n) = sock.try_recv(&mut buf) {
            // The kernel hands back the ICMP header and data; the identifier is its own.
            if n >= 8 && buf[0] == 0 {
                let seq = u16::from_be_bytes([buf[6], buf[7]]);
                let mut out = Vec::new();
                if frame::write_echo_reply(&mut out, self.macs(), dst, src, ident, seq, &buf[8..n])
                {
                    self.dev.tx.push_back(out);
                }
            }
        }
        self.arm_ping(id);
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Connected(id, r) => self.connected(id, r),
            Event::Accepted(i, s) => self.accepted(i, s),
            Event::HostReadable(id) => {
                if let Some(f) = self.tcp.get_mut(&id) {
                    f.read_arm = None;
                }
                self.service(id);
            }
            Event::HostWritable(id) => {
                if let Some(f) = self.tcp.get_mut(&id) {
                    f.write_arm = None;
                }
                self.service(id);
            }
            Event::UdpReadable(id) => self.udp_in(id),
            Event::ListenerReadable(i) => self.listener_in(i),
            Event::PingReadable(id) => self.ping_in(id),
        }
    }

    fn expire(&mut self, now: u64) {
        for (_, f) in self.udp.expire(now, |f| f.reply) {
            self.udp_ids.remove(&f.id);
            if let Some(a) = f.arm {
                a.abort();
            }
            self.counters.expired += 1;
        }
        for (_, f) in self.inbound.expire(now, |f| f.reply) {
            self.inbound_src.remove(&f.src);
            self.counters.expired += 1;
        }
        for (_, f) in self.pings.expire(now, |f| f.reply) {
            self.ping_ids.remove(&f.id);
            if let Some(a) = f.arm {
                a.abort();
            }
            self.counters.expired += 1;
        }
        let idle = self.cfg.tcp_idle.as_millis() as u64;
        let dead: Vec<u64> = self
            .tcp
            .iter()
            .filter(|(_, f)| f.handle.is_some() && now.saturating_sub(f.last) > idle)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if let Some(h) = self.tcp[&id].handle {
                self.sockets.get_mut::<tcp::Socket>(h).abort();
            }
            self.counters.expired += 1;
            self.poll(); // sends the reset
            self.remove_tcp(id);
        }
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for l in &self.listeners {
            if let Some(a) = &l.arm {
                a.abort();
            }
        }
        for f in self.tcp.values() {
            for a in [&f.read_arm, &f.write_arm].into_iter().flatten() {
                a.abort();
            }
        }
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
