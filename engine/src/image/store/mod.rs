//! The image store under `<data-root>/image`: content-addressed blobs, layer snapshots per chain
//! ID, the image records and tags over them, and the leases that keep in-flight content from
//! the collector.

pub mod blobs;
pub mod commit;
pub mod images;
pub mod leases;
pub mod records;
pub mod snapshots;

pub use blobs::{BlobError, Blobs, sha256};
pub use commit::{ChildImage, StepLayer};
pub use images::{ImageError, ImageStore, NewImage};
pub use leases::Lease;
pub use records::{ImageRecord, ImageUser, LayerRecord, ListRow, Records};
pub use snapshots::{OverlaySpec, SnapshotError, Snapshots};
