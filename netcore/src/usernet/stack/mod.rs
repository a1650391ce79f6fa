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
    flow_ids: Vec<u64>,
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
                        loop {
                            match l.accept().await {
                                Ok((s, _)) => {
                                    if tx.send(Event::Accepted(i, s)).await.is_err() {
                                        break;
                                    }
                                }
                                // Out of descriptors or buffers: the port stays published and
                                // tries again (the client waits in the backlog).
                                Err(e) => {
                                    tracing::warn!(error = %e, "accepting a published connection");
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
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
            flow_ids: Vec::new(),
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
        // Published connections are taken every round, however busy the TAP device keeps the
        // loop.
        for _ in 0..BATCH {
            match self.accept_rx.try_recv() {
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
        let handshake = nat::HANDSHAKE_TIMEOUT.as_millis() as u64;
        let sockets = &self.sockets;
        let dead: Vec<u64> = self
            .tcp
            .iter()
            .filter(|(_, f)| {
                let Some(h) = f.handle else { return false };
                let quiet = now.saturating_sub(f.last);
                // A handshake the container never finishes holds its slot (and the host
                // connection made for it) only briefly.
                let opening = matches!(
                    sockets.get::<tcp::Socket>(h).state(),
                    tcp::State::SynSent | tcp::State::SynReceived
                );
                quiet > idle || (opening && quiet > handshake)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &dead {
            if let Some(h) = self.tcp[id].handle {
                self.sockets.get_mut::<tcp::Socket>(h).abort();
            }
            self.counters.expired += 1;
        }
        if !dead.is_empty() {
            self.poll(); // sends the resets
        }
        for id in dead {
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

mod datagram;
mod stream;
