//! The embedded DNS resolver at 127.0.0.11: container names, `--network-alias` and `--link`
//! names and PTR records, each container seeing only the networks it is on; everything else is
//! forwarded to the upstream resolvers.
//!
//! - [`records`]: the immutable snapshot of names, built by a pure function from the network
//!   state and swapped in whole on every change.
//! - [`answer`]: one query in, one decision out (reply, forward, drop); pure and allocation-free.
//! - [`batch`]: datagrams in and out by the batch (recvmmsg/sendmmsg).
//! - [`forward`]: the upstream exchange (UDP, TCP on truncation, timeouts, failover).
//! - [`server`]: the [`Resolver`]: sockets inside every container namespace, one runtime.
//! - [`resolv_conf`]: the host's resolv.conf, read leniently, and the one containers get.

pub mod answer;
pub mod batch;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod forward;
pub mod records;
pub mod resolv_conf;
pub mod server;

#[cfg(test)]
mod tests;

pub use answer::{Outcome, Transport, handle};
pub use records::{Records, Scope};
pub use resolv_conf::{ContainerDns, EMBEDDED, ResolvConf, container_resolv_conf, parse_server};
pub use server::{ListenError, Resolver, ResolverConfig};
