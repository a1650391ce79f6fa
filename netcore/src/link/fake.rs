//! A [`Netlink`] that records operations instead of sending them, and keeps a small model of
//! which links exist so plans that name a missing link fail as they would on a kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use nix::errno::Errno;

use super::Netlink;
use super::error::LinkError;
use super::op::LinkOp;
use super::types::NsRef;

/// Records every operation applied (the failing one included), for unit tests without root.
///
/// The model: creating a link that exists fails with EEXIST; acting on a missing link fails with
/// ENODEV; deleting a missing link succeeds (as [`RtNetlink`](super::RtNetlink) does); deleting
/// either end of a veth pair deletes both; `lo` exists in every namespace.
#[derive(Debug, Default)]
pub struct RecordingNetlink {
    /// Every operation applied, in order.
    pub ops: Vec<LinkOp>,
    /// How many times [`Netlink::release_namespaces`] was called.
    pub releases: usize,
    /// What [`Netlink::host_routes`] answers (none unless a test sets some).
    pub routes: Vec<ipnet::IpNet>,
    links: BTreeSet<(NsRef, String)>,
    peers: BTreeMap<(NsRef, String), (NsRef, String)>,
    fail_at: Option<(usize, Errno)>,
}

impl RecordingNetlink {
    /// An empty host: no links but loopback.
    pub fn new() -> RecordingNetlink {
        RecordingNetlink::default()
    }

    /// Adds a link that exists before the test (a macvlan parent, a leftover bridge).
    pub fn with_link(mut self, ns: NsRef, name: &str) -> RecordingNetlink {
        self.links.insert((ns, name.to_string()));
        self
    }

    /// Makes the `index`th apply (0-based, counting every call) fail with `errno`, whatever the
    /// operation, to test rollback at every step of a plan.
    pub fn fail_at(mut self, index: usize, errno: Errno) -> RecordingNetlink {
        self.fail_at = Some((index, errno));
        self
    }

    /// The links the model holds now, sorted (`lo` implied, not listed).
    pub fn links(&self) -> Vec<(NsRef, String)> {
        self.links.iter().cloned().collect()
    }

    fn exists(&self, ns: &NsRef, name: &str) -> bool {
        name == "lo" || self.links.contains(&(ns.clone(), name.to_string()))
    }

    fn create(&mut self, ns: NsRef, name: &str) -> Result<(), Errno> {
        if self.exists(&ns, name) {
            return Err(Errno::EEXIST);
        }
        self.links.insert((ns, name.to_string()));
        Ok(())
    }

    fn need(&self, ns: &NsRef, name: &str) -> Result<(), Errno> {
        if self.exists(ns, name) {
            Ok(())
        } else {
            Err(Errno::ENODEV)
        }
    }

    fn simulate(&mut self, op: &LinkOp) -> Result<(), Errno> {
        match op {
            LinkOp::CreateBridge { name, .. } => self.create(NsRef::Host, name),
            LinkOp::CreateVeth {
                host_name,
                master,
                peer_ns,
                peer_name,
                ..
            } => {
                self.need(&NsRef::Host, master)?;
                let peer = (NsRef::Path(peer_ns.clone()), peer_name.clone());
                if self.exists(&peer.0, &peer.1) {
                    return Err(Errno::EEXIST);
                }
                self.create(NsRef::Host, host_name)?;
                self.links.insert(peer.clone());
                let host = (NsRef::Host, host_name.clone());
                self.peers.insert(host.clone(), peer.clone());
                self.peers.insert(peer, host);
                Ok(())
            }
            LinkOp::CreateMacvlan {
                parent, ns, name, ..
            }
            | LinkOp::CreateIpvlan {
                parent, ns, name, ..
            } => {
                self.need(&NsRef::Host, parent)?;
                self.create(NsRef::Path(ns.clone()), name)
            }
            LinkOp::AddAddress { ns, link, .. }
            | LinkOp::SetUp { ns, link }
            | LinkOp::AddDefaultRoute { ns, link, .. } => self.need(ns, link),
            LinkOp::SetHairpin { link, .. } => self.need(&NsRef::Host, link),
            LinkOp::DeleteLink { ns, name } => {
                let key = (ns.clone(), name.clone());
                self.links.remove(&key);
                if let Some(peer) = self.peers.remove(&key) {
                    self.peers.remove(&peer);
                    self.links.remove(&peer);
                }
                Ok(())
            }
        }
    }
}

impl Netlink for RecordingNetlink {
    async fn apply(&mut self, op: &LinkOp) -> Result<(), LinkError> {
        let index = self.ops.len();
        self.ops.push(op.clone());
        let result = match self.fail_at {
            Some((at, errno)) if at == index => Err(errno),
            _ => self.simulate(op),
        };
        result.map_err(|e| LinkError::from_op(op, io::Error::from_raw_os_error(e as i32)))
    }

    async fn link_exists(&mut self, ns: &NsRef, name: &str) -> Result<bool, LinkError> {
        Ok(self.exists(ns, name))
    }

    fn host_routes(&mut self) -> Vec<ipnet::IpNet> {
        self.routes.clone()
    }

    fn release_namespaces(&mut self) {
        self.releases += 1;
    }
}
