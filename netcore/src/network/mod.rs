//! The network manager the engine calls: create and remove networks, attach and detach
//! container endpoints, inspect. It ties IPAM, the link drivers and the firewall together and
//! persists its records, so a restarted daemon finds its networks, addresses and published
//! ports again and reconciles the kernel with them.
//!
//! Every mutation is all or nothing: validation first (touching nothing), then links, then the
//! firewall, then the state file; a failure at any step undoes the steps before it.

mod config;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
mod inspect;
mod manager;
mod model;
mod sysctl;

pub use config::{driver_config, validate_ifname, validate_name};
pub use inspect::{EndpointInspect, IpamConfig, IpamInspect, NetworkInspect};
pub use manager::{NetworkManager, STATE_FILE};
pub use model::{
    AttachRequest, ContainerLink, CreateRequest, DEFAULT_BRIDGE, DriverConfig, Endpoint, Network,
    State,
};
pub use sysctl::Sysctl;

/// Why a network operation was refused or failed; messages name the network, container or
/// value involved.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Bad input, with what would be valid.
    #[error("{0}")]
    Invalid(String),
    /// No network by that name or ID.
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// A network by that name exists.
    #[error("network with name {0} already exists")]
    Exists(String),
    /// The container is not attached to the network.
    #[error("container {container} is not connected to network {network}")]
    NotAttached {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// The request conflicts with the current state (attached containers, taken ports).
    #[error("{0}")]
    Conflict(String),
    /// IPAM refused.
    #[error(transparent)]
    Ipam(#[from] crate::ipam::IpamError),
    /// The link layer failed.
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
    /// The firewall failed.
    #[error(transparent)]
    Firewall(#[from] crate::firewall::FirewallError),
    /// The state file could not be read or written.
    #[error(transparent)]
    Persist(#[from] berth_common::persist::PersistError),
    /// A sysctl could not be set.
    #[error("{0}")]
    Sysctl(std::io::Error),
}

#[cfg(test)]
mod tests;
