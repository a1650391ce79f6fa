//! Setting up the network manager in privileged tests: a state directory, a manager over the real
//! kernel, namespaces standing in for containers and their attach requests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use netcore::firewall::nft::NftCommand;
use netcore::link::RtNetlink;
use netcore::network::{AttachRequest, NetworkManager, Sysctl};

use crate::netns_support::Netns;

pub type Manager = NetworkManager<RtNetlink, NftCommand>;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn state_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-netns-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn open(dir: &Path) -> Manager {
    NetworkManager::open(dir, RtNetlink::new(), NftCommand::new(), Sysctl::default())
        .await
        .unwrap()
}

/// A namespace playing a container.
pub fn container(tag: &str) -> Netns {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Netns::new(format!("bn-{tag}-{n}"))
}

pub fn req(ns: &Netns, ports: &[&str]) -> AttachRequest {
    AttachRequest {
        container: format!("{}-id", ns.name),
        container_name: ns.name.clone(),
        ns: Some(PathBuf::from(format!("/run/netns/{}", ns.name))),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        ..AttachRequest::default()
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
