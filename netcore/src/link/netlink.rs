//! [`RtNetlink`]: the real [`Netlink`], over rtnetlink, one connection per network namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::LinkMessage;
use tokio::task::JoinHandle;

use super::Netlink;
use super::error::LinkError;
use super::message;
use super::op::LinkOp;
use super::types::NsRef;

/// Errnos meaning "the thing to delete is already gone".
const GONE: [i32; 3] = [nix::libc::ENODEV, nix::libc::ENOENT, nix::libc::ESRCH];

/// Sends link operations to the kernel. A netlink socket belongs to the namespace it was opened
/// in for its whole life, so each namespace gets its own connection: opened from a short-lived
/// thread that has entered the namespace (the calling threads never change namespace), then
/// driven on the caller's tokio runtime. Namespaces are identified by the device and inode of
/// their file, so two paths to one namespace share a connection and a recreated namespace under
/// the same path does not reuse a stale one.
///
/// Must be used inside a tokio runtime (any flavour).
#[derive(Debug, Default)]
pub struct RtNetlink {
    conns: HashMap<NsKey, Conn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NsKey {
    Host,
    Inode { dev: u64, ino: u64 },
}

#[derive(Debug)]
struct Conn {
    handle: Handle,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closes the socket now rather than whenever the task notices, releasing the namespace.
        self.task.abort();
    }
}

impl RtNetlink {
    /// No connection is opened until an operation needs one.
    pub fn new() -> RtNetlink {
        RtNetlink::default()
    }

    /// Closes the connection into `ns`, if one is open.
    pub fn release(&mut self, ns: &NsRef) {
        match ns {
            NsRef::Host => {
                self.conns.remove(&NsKey::Host);
            }
            NsRef::Path(p) => {
                if let Ok(key) = key_of(p) {
                    self.conns.remove(&key);
                }
            }
        }
    }

    /// A handle for `ns`, opening the connection on first use.
    async fn handle(&mut self, ns: &NsRef) -> Result<Handle, OpFailure> {
        let key = match ns {
            NsRef::Host => NsKey::Host,
            NsRef::Path(p) => key_of(p).map_err(|e| OpFailure::Namespace(p.clone(), e))?,
        };
        if let Some(c) = self.conns.get(&key) {
            if !c.task.is_finished() {
                return Ok(c.handle.clone());
            }
        }
        let (conn, handle) = match ns {
            NsRef::Host => {
                let (conn, handle, _unsolicited) = rtnetlink::new_connection()?;
                (conn, handle)
            }
            NsRef::Path(p) => connect_in(p)
                .await
                .map_err(|e| OpFailure::Namespace(p.clone(), e))?,
        };
        let task = tokio::spawn(conn);
        self.conns.insert(
            key,
            Conn {
                handle: handle.clone(),
                task,
            },
        );
        Ok(handle)
    }

    /// The index of `name` in the namespace of `handle`; ENODEV when there is none.
    async fn index(handle: &Handle, name: &str) -> io::Result<u32> {
        let mut links = handle.link().get().match_name(name).execute();
        match links.try_next().await.map_err(to_io)? {
            Some(msg) => Ok(msg.header.index),
            None => Err(io::Error::from_raw_os_error(nix::libc::ENODEV)),
        }
    }

    /// Creates a link whose kernel request names a host link (a veth's master, a macvlan's or
    /// ipvlan's parent) by index and carries the target namespace's descriptor, so the device
    /// (or veth peer) is born inside that namespace.
    async fn create_beside(
        &mut self,
        host_link: &str,
        ns: &Path,
        msg: impl FnOnce(u32, RawFd) -> LinkMessage,
    ) -> Result<(), OpFailure> {
        let h = self.handle(&NsRef::Host).await?;
        let index = Self::index(&h, host_link)
            .await
            .map_err(|e| lookup(host_link, e))?;
        let ns = open_ns(ns)?;
        h.link()
            .add(msg(index, ns.as_raw_fd()))
            .execute()
            .await
            .map_err(to_io)?;
        Ok(())
    }

    async fn run(&mut self, op: &LinkOp) -> Result<(), OpFailure> {
        match op {
            LinkOp::CreateBridge { name, mtu } => {
                let h = self.handle(&NsRef::Host).await?;
                h.link()
                    .add(message::bridge(name, *mtu))
                    .execute()
                    .await
                    .map_err(to_io)?;
            }
            LinkOp::CreateVeth {
                host_name,
                master,
                mtu,
                peer_ns,
                peer_name,
                peer_mac,
            } => {
                self.create_beside(master, peer_ns, |master, fd| {
                    message::veth(host_name, master, *mtu, peer_name, *peer_mac, fd)
                })
                .await?;
            }
            LinkOp::CreateMacvlan {
                parent,
                ns,
                name,
                mode,
                mac,
                mtu,
            } => {
                self.create_beside(parent, ns, |parent, fd| {
                    message::macvlan(name, parent, *mode, *mac, *mtu, fd)
                })
                .await?;
            }
            LinkOp::CreateIpvlan {
                parent,
                ns,
                name,
                mode,
                mtu,
            } => {
                self.create_beside(parent, ns, |parent, fd| {
                    message::ipvlan(name, parent, *mode, *mtu, fd)
                })
                .await?;
            }
            LinkOp::AddAddress {
                ns,
                link,
                addr,
                nodad,
            } => {
                let h = self.handle(ns).await?;
                let index = Self::index(&h, link).await?;
                let mut req = h.address().add(index, addr.addr(), addr.prefix_len());
                *req.message_mut() = message::address(index, *addr, *nodad);
                req.execute().await.map_err(to_io)?;
            }
            LinkOp::SetUp { ns, link } => {
                let h = self.handle(ns).await?;
                h.link()
                    .set(message::set_up(link))
                    .execute()
                    .await
                    .map_err(to_io)?;
            }
            LinkOp::SetHairpin { link, on } => {
                let h = self.handle(&NsRef::Host).await?;
                let index = Self::index(&h, link).await?;
                h.link()
                    .set_port(message::hairpin(index, *on))
                    .execute()
                    .await
                    .map_err(to_io)?;
            }
            LinkOp::AddDefaultRoute { ns, link, via } => {
                let h = self.handle(ns).await?;
                let index = Self::index(&h, link).await?;
                h.route()
                    .add(message::default_route(index, *via))
                    .execute()
                    .await
                    .map_err(to_io)?;
            }
            LinkOp::DeleteLink { ns, name } => {
                let h = match self.handle(ns).await {
                    Ok(h) => h,
                    // The namespace is gone, and its links with it.
                    Err(OpFailure::Namespace(_, e)) if is_gone(&e) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let res = h
                    .link()
                    .del_with_message(message::delete(name))
                    .execute()
                    .await;
                match res.map_err(to_io) {
                    Err(e) if is_gone(&e) => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }
}

/// Why `run` failed: the kernel's error, or a namespace file that could not be used.
enum OpFailure {
    Io(io::Error),
    /// A link the operation depends on (master, parent) could not be looked up.
    Lookup(String, io::Error),
    Namespace(PathBuf, io::Error),
}

impl From<io::Error> for OpFailure {
    fn from(e: io::Error) -> OpFailure {
        OpFailure::Io(e)
    }
}

impl Netlink for RtNetlink {
    async fn apply(&mut self, op: &LinkOp) -> Result<(), LinkError> {
        tracing::debug!(op = %op.describe(), "netlink");
        self.run(op).await.map_err(|f| match f {
            OpFailure::Io(e) => LinkError::from_op(op, e),
            OpFailure::Lookup(name, source) => LinkError::Op {
                op: format!("{}: looking up {name}", op.describe()),
                link: op.link().to_string(),
                ns: op.ns(),
                source,
            },
            OpFailure::Namespace(path, source) => LinkError::Namespace {
                op: op.describe(),
                path,
                source,
            },
        })
    }

    async fn link_exists(&mut self, ns: &NsRef, name: &str) -> Result<bool, LinkError> {
        let what = || format!("look up link {name}{}", ns.suffix());
        let h = match self.handle(ns).await {
            Ok(h) => h,
            Err(OpFailure::Namespace(path, source)) => {
                return Err(LinkError::Namespace {
                    op: what(),
                    path,
                    source,
                });
            }
            Err(OpFailure::Io(source) | OpFailure::Lookup(_, source)) => {
                return Err(LinkError::Op {
                    op: what(),
                    link: name.to_string(),
                    ns: ns.clone(),
                    source,
                });
            }
        };
        match Self::index(&h, name).await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(false),
            Err(source) => Err(LinkError::Op {
                op: what(),
                link: name.to_string(),
                ns: ns.clone(),
                source,
            }),
        }
    }

    fn release_namespaces(&mut self) {
        self.conns.retain(|key, _| *key == NsKey::Host);
    }
}

fn key_of(path: &Path) -> io::Result<NsKey> {
    let m = std::fs::metadata(path)?;
    Ok(NsKey::Inode {
        dev: m.dev(),
        ino: m.ino(),
    })
}

fn open_ns(path: &Path) -> Result<File, OpFailure> {
    File::open(path).map_err(|e| OpFailure::Namespace(path.to_path_buf(), e))
}

fn is_gone(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|n| GONE.contains(&n))
}

/// A lookup failure of a link another link depends on (master, parent), naming it, since the
/// errno alone ("No such device") would not say which.
fn lookup(name: &str, e: io::Error) -> OpFailure {
    OpFailure::Lookup(name.to_string(), e)
}

fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

type Connection = rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>;

/// Opens a route netlink connection inside the namespace at `path`: a fresh thread enters the
/// namespace, opens the socket (registered with the caller's runtime) and exits; the socket keeps
/// the namespace it was created in.
async fn connect_in(path: &Path) -> io::Result<(Connection, Handle)> {
    let rt = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    crate::netns::run_in(path, move || {
        let _guard = rt.enter();
        let (conn, handle, _unsolicited) = rtnetlink::new_connection()?;
        Ok((conn, handle))
    })
    .await
}
