//! The userspace network stack (`--network slirp`): containers networked without a bridge,
//! nftables or any privilege beyond their own namespace. A TAP device in the container's
//! namespace carries its frames to this stack, which answers as the gateway (smoltcp) and maps
//! every TCP connection, UDP flow and ping to an ordinary host socket: a NAT made of sockets.
//!
//! - [`options`]: `slirp:OPTION=VALUE,...` (Podman's names) and the address layout.
//! - [`frame`]: the frame fast path (etherparse): classify, and write UDP, resets, echo replies.
//! - [`nat`]: where flows go, what is refused, the tables' bounds and the counters.
//! - [`device`]: smoltcp's device over frame queues, and the gateway interface; no I/O.
//! - [`stack`]: the task that owns the interface, the TAP device and every flow (TCP in
//!   `stack/stream.rs`, UDP and pings in `stack/datagram.rs`).
//! - [`tap`]: the TAP device made and configured inside the container's namespace.
//!
//! One process per container (`berth-slirp`) runs a stack: a hostile container can exhaust only
//! its own stack, and the process outlives berthd as the container's shim does.

pub mod device;
pub mod frame;
pub mod nat;
pub mod options;
pub mod stack;
pub mod tap;
#[cfg(test)]
mod tests;

pub use options::{Layout, OptionError, Options, PortHandler};
