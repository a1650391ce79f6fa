//! The library's error type: every variant names the value that was refused.

use std::io;
use std::net::SocketAddr;

use crate::spec::{Protocol, SpecError};

/// Why the proxy refused a request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The publish specification does not parse.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Something else listens on the host address already.
    #[error("host port {addr}/{proto} is already in use")]
    AddrInUse {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Its protocol.
        proto: Protocol,
    },
    /// Any other failure to open the listening socket (address not on this host, permission).
    #[error("cannot listen on {addr}/{proto}: {source}")]
    Listen {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Its protocol.
        proto: Protocol,
        /// What the kernel said.
        source: io::Error,
    },
    /// An unpublish or lookup named an id the proxy does not have.
    #[error("no publication with id {0}")]
    UnknownId(u64),
    /// The proxy is shutting down and takes no new publications.
    #[error("the proxy is draining and accepts no new publications")]
    Draining,
}
