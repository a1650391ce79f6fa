//! berth's userland port proxy.
//!
//! One process serves every published port of a host: TCP relayed zero-copy with splice(2), UDP
//! through a bounded flow table, optional client-address preservation, live publish/unpublish
//! through a small control protocol, and docker-proxy's command line for use under a stock Docker
//! daemon. See docs/architecture.md for how it fits into `berth run -p`.

pub mod compat;
pub mod control;
pub mod error;
pub mod flows;
pub mod listen;
pub mod proxy;
pub mod spec;
mod splice;
pub mod stats;
mod tcp;
pub mod transparent;
mod udp;
mod upstream;

pub use error::ProxyError;
pub use proxy::{Proxy, ProxyConfig, PublishRequest, PublishedInfo};
pub use spec::{Mapping, PortRange, PortSpec, Protocol};
pub use stats::StatsSnapshot;
