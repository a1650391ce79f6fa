//! The nftables firewall: published ports (DNAT), masquerade, hairpin, isolation between
//! networks, `--internal` networks and `icc=false`.
//!
//! The ruleset is plain data computed from a [`FirewallState`] by pure functions
//! ([`ruleset::elements`], [`ruleset::skeleton`], [`plan::plan`]) and applied in one `nft -j`
//! transaction by an [`nft::Nft`]. Rules never mention a port, a network or an endpoint: those
//! are elements of sets and maps, so the rule count is constant and publishing the 10,000th port
//! costs what publishing the first did.

pub mod nft;
pub mod plan;
pub mod ruleset;
pub mod state;

pub use state::{BridgeRules, FirewallState};

use nft::Nft;
use ruleset::Elements;

/// Why the firewall could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` could not be run.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// nft refused the batch; nothing of it was applied.
    #[error("nft refused berth's ruleset ({status}): {stderr}")]
    Rejected {
        /// nft's exit status.
        status: String,
        /// What nft said.
        stderr: String,
    },
    /// The batch could not be encoded as JSON.
    #[error("cannot encode the nft batch: {0}")]
    Encode(serde_json::Error),
}

/// Keeps the kernel's berth tables equal to the desired state.
///
/// It remembers the elements it last applied. The first apply (and any apply after a failure)
/// replaces berth's tables whole, which is the reconciliation on start: stale berth rules go,
/// missing ones come back, other tables are untouched. Later applies send only the difference.
#[derive(Debug)]
pub struct Firewall<N: Nft> {
    nft: N,
    applied: Option<Elements>,
}

/// What one apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Whether berth's tables were replaced whole.
    pub full: bool,
    /// Commands sent (0 when nothing changed and nft was not run).
    pub commands: usize,
}

impl<N: Nft> Firewall<N> {
    /// A firewall that does not yet know what the kernel holds.
    pub fn new(nft: N) -> Firewall<N> {
        Firewall { nft, applied: None }
    }

    /// Makes the kernel match `state` in one transaction.
    ///
    /// If an incremental batch is refused (someone changed berth's tables behind its back), the
    /// tables are rebuilt whole; if that is refused too, the kernel keeps what it had and the
    /// error is returned.
    pub fn apply(&mut self, state: &FirewallState) -> Result<Applied, FirewallError> {
        let desired = ruleset::elements(state);
        let incremental = self.applied.is_some();
        let batch = plan::plan(&desired, self.applied.as_ref());
        if batch.is_empty() {
            return Ok(Applied::default());
        }
        match self.nft.apply(&batch) {
            Ok(()) => {
                self.applied = Some(desired);
                Ok(Applied {
                    full: !incremental,
                    commands: batch.cmds.len(),
                })
            }
            Err(e) if incremental => {
                tracing::warn!(error = %e, "incremental firewall update refused; rebuilding berth's tables");
                self.applied = None;
                let batch = plan::full(&desired);
                self.nft.apply(&batch)?;
                self.applied = Some(desired);
                Ok(Applied {
                    full: true,
                    commands: batch.cmds.len(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes berth's tables (and only those).
    pub fn remove(&mut self) -> Result<(), FirewallError> {
        self.applied = None;
        self.nft.apply(&plan::remove_all())
    }

    /// Forgets what was applied, so the next apply rebuilds the tables whole.
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    /// The runner (tests read the fake's record through this).
    pub fn nft(&self) -> &N {
        &self.nft
    }

    /// The runner, mutable (tests make the fake refuse batches through this).
    pub fn nft_mut(&mut self) -> &mut N {
        &mut self.nft
    }
}

#[cfg(test)]
mod tests;
