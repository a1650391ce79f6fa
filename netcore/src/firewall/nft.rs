//! The one place the firewall touches the kernel: a batch goes to `nft -j -f -` as a single
//! transaction. Behind a trait, so the logic above is tested with a recording fake.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

use super::FirewallError;
use super::plan::Batch;

/// Applies batches atomically.
pub trait Nft: Send {
    /// Applies every command of `batch` or none of them.
    fn apply(&mut self, batch: &Batch) -> Result<(), FirewallError>;
}

/// The real `nft` program, fed JSON on stdin.
///
/// nftables' own helper leaves nft's stderr uncaptured, so its errors would miss the reason;
/// this runner keeps it for the error message.
#[derive(Debug, Clone)]
pub struct NftCommand {
    program: OsString,
    check_only: bool,
}

impl Default for NftCommand {
    fn default() -> Self {
        NftCommand {
            program: "nft".into(),
            check_only: false,
        }
    }
}

impl NftCommand {
    /// Runs `nft` from `PATH`.
    pub fn new() -> NftCommand {
        NftCommand::default()
    }

    /// Only checks batches (`nft -c`): the kernel validates and discards them.
    pub fn check_only() -> NftCommand {
        NftCommand {
            check_only: true,
            ..NftCommand::default()
        }
    }

    /// Runs `nft` with the batch on stdin, returning nft's stderr on failure.
    pub fn run(&self, json: &[u8]) -> Result<(), FirewallError> {
        let mut cmd = Command::new(&self.program);
        if self.check_only {
            cmd.arg("-c");
        }
        let mut child = cmd
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| FirewallError::Spawn {
                program: self.program.to_string_lossy().into_owned(),
                source: e,
            })?;
        let written = child.stdin.take().expect("stdin is piped").write_all(json);
        let out = child.wait_with_output().map_err(|e| FirewallError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            source: e,
        })?;
        if out.status.success() {
            return Ok(());
        }
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if let Err(e) = written {
            stderr.push_str(&format!(" (writing the batch failed: {e})"));
        }
        Err(FirewallError::Rejected {
            status: out.status.to_string(),
            stderr,
        })
    }
}

impl Nft for NftCommand {
    fn apply(&mut self, batch: &Batch) -> Result<(), FirewallError> {
        let json = serde_json::to_vec(&batch.to_nftables()).map_err(FirewallError::Encode)?;
        self.run(&json)
    }
}

/// A fake that records every batch and can be told to refuse some.
#[derive(Debug, Default)]
pub struct RecordingNft {
    /// Every batch applied, in order (refused ones included).
    pub batches: Vec<Batch>,
    /// Refuse the next this-many batches.
    pub refuse: usize,
}

impl Nft for RecordingNft {
    fn apply(&mut self, batch: &Batch) -> Result<(), FirewallError> {
        self.batches.push(batch.clone());
        if self.refuse > 0 {
            self.refuse -= 1;
            return Err(FirewallError::Rejected {
                status: "exit status: 1".into(),
                stderr: "refused by RecordingNft".into(),
            });
        }
        Ok(())
    }
}
