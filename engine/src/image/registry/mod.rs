//! Registries: pull ([`pull`]) and push ([`push`]) over the OCI distribution API with
//! oci-client, credentials in Docker's file ([`credentials`]), connections per registry
//! ([`client`]) and per-layer progress ([`progress`]).

pub mod client;
/// Docker's credentials file and `X-Registry-Auth` header, shared with the CLI.
pub use berth_common::credentials;
pub mod fetch;
pub mod progress;
pub mod pull;
pub mod push;

pub use client::{Registry, RegistryOptions, is_insecure};
pub use progress::{Event, LayerStatus, Sink};
pub use pull::{Pulled, pull};
pub use push::{Pushed, push};

use oci_client::errors::OciDistributionError;

use crate::image::manifest::ManifestError;
use crate::image::reference::ReferenceError;
use crate::image::store::{BlobError, ImageError, SnapshotError};

/// Why a pull, push or login failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A bad image name.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The registry has no such repository, tag or manifest.
    #[error("manifest for {reference} not found: manifest unknown")]
    NotFound {
        /// What was asked for.
        reference: String,
    },
    /// Credentials missing or refused.
    #[error(
        "{registry}: {what}: unauthorized (log in with `berth login {registry}`, or check the credentials in the credentials file)"
    )]
    Unauthorized {
        /// The registry.
        registry: String,
        /// The step.
        what: String,
    },
    /// `login` with credentials the registry refused.
    #[error("login to {registry} refused: {detail}")]
    LoginRefused {
        /// The registry.
        registry: String,
        /// What it said.
        detail: String,
    },
    /// `login` without a credentials file to keep them in.
    #[error("no credentials file is configured to keep the login in")]
    NoCredentialsFile,
    /// The registry answered something berth cannot use, or could not be reached.
    #[error("{registry}: {what}: {detail}")]
    Registry {
        /// The registry.
        registry: String,
        /// The step.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The registry served content that does not match its digest.
    #[error("{what} from {registry} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The registry.
        registry: String,
        /// Manifest or index.
        what: String,
        /// The digest asked for.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A manifest, index or config berth cannot use.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A blob could not be stored.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A layer could not be unpacked (boxed: it is large).
    #[error(transparent)]
    Snapshot(Box<SnapshotError>),
    /// The image records.
    #[error(transparent)]
    Image(Box<ImageError>),
    /// The credentials file.
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    /// A worker task died.
    #[error("internal error: {0}")]
    Task(String),
}

impl From<SnapshotError> for RegistryError {
    fn from(e: SnapshotError) -> Self {
        RegistryError::Snapshot(Box::new(e))
    }
}

impl From<ImageError> for RegistryError {
    fn from(e: ImageError) -> Self {
        RegistryError::Image(Box::new(e))
    }
}

impl RegistryError {
    /// Maps oci-client's error for step `what` on `registry`.
    pub fn from_oci(registry: &str, what: &str, e: OciDistributionError) -> RegistryError {
        use OciDistributionError as O;
        match e {
            O::UnauthorizedError { .. } | O::AuthenticationFailure(_) => {
                RegistryError::Unauthorized {
                    registry: registry.into(),
                    what: what.into(),
                }
            }
            O::ImageManifestNotFoundError(m) => RegistryError::NotFound { reference: m },
            O::RequestError(re)
                if re
                    .status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                RegistryError::Unauthorized {
                    registry: registry.into(),
                    what: what.into(),
                }
            }
            O::RegistryError { envelope, url } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}", e.code))
                    .collect();
                if codes.iter().any(|c| c == "Unauthorized" || c == "Denied") {
                    return RegistryError::Unauthorized {
                        registry: registry.into(),
                        what: what.into(),
                    };
                }
                if codes
                    .iter()
                    .any(|c| c == "ManifestUnknown" || c == "NameUnknown")
                {
                    return RegistryError::NotFound { reference: url };
                }
                RegistryError::Registry {
                    registry: registry.into(),
                    what: what.into(),
                    detail: envelope
                        .errors
                        .iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            }
            other => RegistryError::Registry {
                registry: registry.into(),
                what: what.into(),
                detail: full_chain(&other),
            },
        }
    }
}

/// An error with its sources (reqwest hides "connection refused" two levels down).
fn full_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
