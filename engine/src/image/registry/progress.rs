//! Progress of a pull or push: a stream of events the CLI draws as progress bars and the API
//! sends as Docker's JSON progress messages ([`Event::to_docker_json`]).

use std::sync::Arc;

use berth_common::humanize::human_size;
use serde_json::{Value, json};

/// What is happening to one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerStatus {
    /// Queued for download.
    PullingFsLayer,
    /// Waiting for a download slot.
    Waiting,
    /// Bytes arriving (`current` of `total`).
    Downloading,
    /// Digest checked.
    VerifyingChecksum,
    /// Downloaded and verified.
    DownloadComplete,
    /// Being unpacked.
    Extracting,
    /// Unpacked.
    PullComplete,
    /// The store had it.
    AlreadyExists,
    /// Push: about to check the registry.
    Preparing,
    /// Bytes leaving (`current` of `total`).
    Pushing,
    /// Uploaded.
    Pushed,
    /// The registry had it.
    LayerAlreadyExists,
    /// The registry linked it from another repository.
    Mounted,
}

impl LayerStatus {
    /// Docker's wording.
    pub fn text(self) -> &'static str {
        match self {
            LayerStatus::PullingFsLayer => "Pulling fs layer",
            LayerStatus::Waiting => "Waiting",
            LayerStatus::Downloading => "Downloading",
            LayerStatus::VerifyingChecksum => "Verifying Checksum",
            LayerStatus::DownloadComplete => "Download complete",
            LayerStatus::Extracting => "Extracting",
            LayerStatus::PullComplete => "Pull complete",
            LayerStatus::AlreadyExists => "Already exists",
            LayerStatus::Preparing => "Preparing",
            LayerStatus::Pushing => "Pushing",
            LayerStatus::Pushed => "Pushed",
            LayerStatus::LayerAlreadyExists => "Layer already exists",
            LayerStatus::Mounted => "Mounted",
        }
    }
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A line about the whole operation (`Pulling from library/busybox`, `Digest: ...`).
    Status {
        /// Docker puts the tag here for the first line.
        id: Option<String>,
        /// The text.
        status: String,
    },
    /// A layer's progress.
    Layer {
        /// The layer's short digest (12 hex digits).
        id: String,
        /// What is happening.
        status: LayerStatus,
        /// Bytes done (Downloading, Pushing, Extracting).
        current: u64,
        /// Bytes in all.
        total: u64,
        /// For Mounted: the repository it came from.
        from: Option<String>,
    },
    /// The result of a push (Docker's `aux` message: tag, digest, size).
    PushResult {
        /// The tag pushed.
        tag: String,
        /// The manifest digest.
        digest: String,
        /// The manifest size.
        size: u64,
    },
}

/// Where events go. Cheap to clone; must not block.
pub type Sink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops everything.
pub fn discard() -> Sink {
    Arc::new(|_| {})
}

/// Docker's text bar: `[=====>      ]  1.2MB/3.4MB`.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0);
    let mut s = String::from("[");
    for i in 0..WIDTH {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    format!("{s}] {}/{}", human_size(current), human_size(total))
}

impl Event {
    /// The event as one of Docker's JSON progress messages (one per line on the API stream).
    pub fn to_docker_json(&self) -> Value {
        match self {
            Event::Status {
                id: Some(id),
                status,
            } => json!({"status": status, "id": id}),
            Event::Status { id: None, status } => json!({"status": status}),
            Event::Layer {
                id,
                status,
                current,
                total,
                from,
            } => match status {
                LayerStatus::Downloading | LayerStatus::Extracting | LayerStatus::Pushing => {
                    json!({
                        "status": status.text(),
                        "progressDetail": {"current": current, "total": total},
                        "progress": bar(*current, *total),
                        "id": id,
                    })
                }
                LayerStatus::Mounted => json!({
                    "status": format!("Mounted from {}", from.as_deref().unwrap_or("")),
                    "progressDetail": {},
                    "id": id,
                }),
                _ => json!({"status": status.text(), "progressDetail": {}, "id": id}),
            },
            Event::PushResult { tag, digest, size } => json!({
                "progressDetail": {},
                "aux": {"Tag": tag, "Digest": digest, "Size": size},
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_dockers_shape() {
        let e = Event::Layer {
            id: "a3ed95caeb02".into(),
            status: LayerStatus::Downloading,
            current: 1_500_000,
            total: 3_000_000,
            from: None,
        };
        let j = e.to_docker_json();
        assert_eq!(j["status"], "Downloading");
        assert_eq!(j["id"], "a3ed95caeb02");
        assert_eq!(j["progressDetail"]["current"], 1_500_000);
        assert_eq!(j["progressDetail"]["total"], 3_000_000);
        let p = j["progress"].as_str().unwrap();
        assert!(p.starts_with("[=========================>"), "{p}");
        assert!(p.ends_with("] 1.5MB/3MB"), "{p}");
        let j = Event::Layer {
            id: "x".into(),
            status: LayerStatus::Mounted,
            current: 0,
            total: 0,
            from: Some("library/base".into()),
        }
        .to_docker_json();
        assert_eq!(j["status"], "Mounted from library/base");
        let j = Event::Status {
            id: Some("latest".into()),
            status: "Pulling from library/busybox".into(),
        }
        .to_docker_json();
        assert_eq!(
            j,
            json!({"status": "Pulling from library/busybox", "id": "latest"})
        );
        let j = Event::PushResult {
            tag: "1".into(),
            digest: "sha256:ab".into(),
            size: 528,
        }
        .to_docker_json();
        assert_eq!(j["aux"]["Size"], 528);
    }

    #[test]
    fn sizes_print_as_dockers() {
        // A bar never overflows, even when a server sends more than it announced.
        assert!(bar(10, 5).starts_with(&format!("[{}]", "=".repeat(50))));
        assert!(bar(1, 0).contains("1B/0B"));
    }
}
