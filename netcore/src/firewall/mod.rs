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

pub use state::{BridgeRules, FirewallState, ForwardDrop};

use nft::Nft;
use portproxy::spec::Mapping;

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
/// It remembers the state it last applied. The first apply (and any apply after a failure)
/// replaces berth's tables whole, which is the reconciliation on start: stale berth rules go,
/// missing ones come back, other tables are untouched. Later applies send only the difference,
/// computed from the two states ([`ruleset::element_changes`]) so its cost follows the change,
/// not the number of published ports.
#[derive(Debug)]
pub struct Firewall<N: Nft> {
    nft: N,
    applied: Option<FirewallState>,
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

    /// Makes the kernel match `state` in one transaction. The state is kept (not copied) as the
    /// base of the next difference.
    ///
    /// If an incremental batch is refused (someone changed berth's tables behind its back), the
    /// tables are rebuilt whole; if that is refused too, the kernel keeps what it had and the
    /// error is returned.
    pub fn apply(&mut self, state: FirewallState) -> Result<Applied, FirewallError> {
        let batch = match &self.applied {
            None => plan::full(&ruleset::elements(&state), state.drop_forwarded),
            // A change of policy changes rules, not elements: the tables are rebuilt.
            Some(applied) if applied.drop_forwarded != state.drop_forwarded => {
                plan::full(&ruleset::elements(&state), state.drop_forwarded)
            }
            Some(applied) => {
                let (removed, added) = ruleset::element_changes(&state, applied);
                plan::changes(&removed, &added)
            }
        };
        if batch.is_empty() {
            return Ok(Applied::default());
        }
        let incremental = self
            .applied
            .as_ref()
            .is_some_and(|a| a.drop_forwarded == state.drop_forwarded);
        match self.nft.apply(&batch) {
            Ok(()) => {
                self.applied = Some(state);
                Ok(Applied {
                    full: !incremental,
                    commands: batch.cmds.len(),
                })
            }
            Err(e) if incremental => {
                tracing::warn!(error = %e, "incremental firewall update refused; rebuilding berth's tables");
                self.applied = None;
                let batch = plan::full(&ruleset::elements(&state), state.drop_forwarded);
                self.nft.apply(&batch)?;
                self.applied = Some(state);
                Ok(Applied {
                    full: true,
                    commands: batch.cmds.len(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Publishes `mappings` on top of the applied state in one transaction of their elements.
    /// Unlike [`Firewall::apply`], which compares whole states, the work here does not depend on
    /// how many ports are already published: the path for a daemon publishing one container's
    /// ports. Before any apply it is a whole apply of just these ports.
    pub fn publish(&mut self, mappings: &[Mapping]) -> Result<Applied, FirewallError> {
        self.change(mappings, true)
    }

    /// Removes `mappings` from the applied state in one transaction (see [`Firewall::publish`]).
    pub fn unpublish(&mut self, mappings: &[Mapping]) -> Result<Applied, FirewallError> {
        self.change(mappings, false)
    }

    fn change(&mut self, mappings: &[Mapping], publish: bool) -> Result<Applied, FirewallError> {
        let Some(applied) = &self.applied else {
            let mut state = FirewallState::default();
            if publish {
                state.published.extend(mappings.iter().copied());
            }
            return self.apply(state);
        };
        let changed: Vec<Mapping> = mappings
            .iter()
            .filter(|m| applied.published.contains(m) != publish)
            .copied()
            .collect();
        let elems = ruleset::published_elements(&changed);
        let empty = ruleset::Elements::new();
        let batch = if publish {
            plan::changes(&empty, &elems)
        } else {
            plan::changes(&elems, &empty)
        };
        if batch.is_empty() {
            return Ok(Applied::default());
        }
        match self.nft.apply(&batch) {
            Ok(()) => {
                let applied = self.applied.as_mut().expect("checked above");
                for m in changed {
                    if publish {
                        applied.published.insert(m);
                    } else {
                        applied.published.remove(&m);
                    }
                }
                Ok(Applied {
                    full: false,
                    commands: batch.cmds.len(),
                })
            }
            Err(_) => {
                let mut state = self.applied.take().expect("checked above");
                for m in changed {
                    if publish {
                        state.published.insert(m);
                    } else {
                        state.published.remove(&m);
                    }
                }
                self.apply(state)
            }
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
