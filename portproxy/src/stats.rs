//! Per-publication counters: plain relaxed atomics, bumped once per splice or datagram (never a lock
//! on the data path), read as a snapshot through the control interface.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Live counters of one publication (all its listening sockets together).
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_active: AtomicU64,
    pub(crate) bytes_to_container: AtomicU64,
    pub(crate) bytes_from_container: AtomicU64,
    pub(crate) flows_total: AtomicU64,
    pub(crate) flows_active: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// A copy of [`Counters`] at one moment, as reported to clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// TCP connections accepted since the publication was made.
    pub connections_total: u64,
    /// TCP connections open now.
    pub connections_active: u64,
    /// Bytes relayed from clients to the container (TCP and UDP).
    pub bytes_to_container: u64,
    /// Bytes relayed from the container to clients (TCP and UDP).
    pub bytes_from_container: u64,
    /// UDP flows created since the publication was made.
    pub flows_total: u64,
    /// UDP flows in the table now.
    pub flows_active: u64,
    /// Failed accepts, refused or timed-out upstream connects, dropped datagrams, resets.
    pub errors: u64,
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_total: self.connections_total.load(Relaxed),
            connections_active: self.connections_active.load(Relaxed),
            bytes_to_container: self.bytes_to_container.load(Relaxed),
            bytes_from_container: self.bytes_from_container.load(Relaxed),
            flows_total: self.flows_total.load(Relaxed),
            flows_active: self.flows_active.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Relaxed);
    }
}
