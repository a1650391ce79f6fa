//! The link layer: bridges, veth pairs, macvlan and ipvlan endpoints, addresses and default
//! routes, all through netlink.
//!
//! Split the way the rest of netcore is: drivers ([`LinkDriver`]) turn a network and an endpoint
//! into a plan of [`LinkOp`]s without touching anything; [`apply_all`] (all or nothing, for
//! setup and connect) and [`apply_best_effort`] (for teardown and disconnect) run a plan through
//! the one side-effect boundary, [`Netlink`]. [`RtNetlink`] is the real one, [`RecordingNetlink`]
//! the fake unit tests use. The exact messages sent are pure functions in [`message`].
//!
//! Container links are always created directly inside the container's namespace with their
//! final name (IFLA_NET_NS_FD on the veth peer or the macvlan/ipvlan), so no temporary interface
//! ever appears in the host namespace.

mod driver;
mod error;
mod fake;
pub mod message;
mod netlink;
mod op;
pub mod routes;
mod types;

use std::future::Future;

pub use driver::{
    Bridge, BridgeNet, ContainerMode, EndpointLink, HostMode, Ipvlan, IpvlanNet, LinkDriver,
    Macvlan, MacvlanNet, NoneMode,
};
pub use error::{LinkError, LinkErrors};
pub use fake::RecordingNetlink;
pub use netlink::RtNetlink;
pub use op::{IpFamily, LinkOp, RouteVia};
pub use types::{IpvlanMode, MacAddr, MacvlanMode, NsRef};

/// The side-effect boundary: everything the link layer does to the kernel goes through one of
/// these, so the planning and the rollback logic are tested against [`RecordingNetlink`].
pub trait Netlink: Send {
    /// Applies one operation. Deleting a link that is already gone succeeds.
    fn apply(&mut self, op: &LinkOp) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// Whether a link named `name` exists in `ns` (e.g. a macvlan parent before connecting).
    fn link_exists(
        &mut self,
        ns: &NsRef,
        name: &str,
    ) -> impl Future<Output = Result<bool, LinkError>> + Send;

    /// The destinations the host routes (its main table), which a subnet chosen for a new
    /// network must not overlap.
    fn host_routes(&mut self) -> Vec<ipnet::IpNet> {
        routes::host_routes()
    }

    /// Drops whatever is held open inside container namespaces. Called at the end of every
    /// [`apply_all`] / [`apply_best_effort`]: an open netlink socket keeps its namespace alive,
    /// and with it the container's veth, after the container is gone.
    fn release_namespaces(&mut self) {}
}

/// Applies `ops` in order, all or nothing: on the first failure, deletes every link this call
/// created, newest first (their addresses and routes go with them), and returns that first
/// error. Failures of the rollback itself are logged, since the caller gets the original error.
pub async fn apply_all<N: Netlink>(nl: &mut N, ops: &[LinkOp]) -> Result<(), LinkError> {
    let mut undo: Vec<LinkOp> = Vec::new();
    let mut result = Ok(());
    for op in ops {
        if let Err(e) = nl.apply(op).await {
            result = Err(e);
            break;
        }
        undo.extend(op.undo());
    }
    if result.is_err() {
        for op in undo.iter().rev() {
            if let Err(e) = nl.apply(op).await {
                tracing::warn!(error = %e, "rollback of a failed link plan left something behind");
            }
        }
    }
    nl.release_namespaces();
    result
}

/// Applies every operation of `ops` even when some fail, and returns all the failures: teardown
/// must remove as much as it can, and "already gone" is already success at the [`Netlink`]
/// level, so running a teardown twice is harmless.
pub async fn apply_best_effort<N: Netlink>(nl: &mut N, ops: &[LinkOp]) -> Result<(), LinkErrors> {
    let mut errors = Vec::new();
    for op in ops {
        if let Err(e) = nl.apply(op).await {
            errors.push(e);
        }
    }
    nl.release_namespaces();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LinkErrors(errors))
    }
}

#[cfg(test)]
mod tests;
