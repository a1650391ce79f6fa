//! The image store under `<data-root>/image`: content-addressed blobs; image records, tags and
//! layer snapshots follow.

pub mod blobs;

pub use blobs::{BlobError, Blobs, sha256};
