//! Network requests with Docker's rules, as the network routes see them ([`NetworkBackend`],
//! moby's `router/network` backend): `ls` with Docker's filters and `inspect` read the
//! published records without any lock; `create`, `rm` (refused while containers are
//! attached) and `prune` go through the wiring's lock, never the engine's. Each change is
//! reported to `docker events`. Connecting containers is the containers' backend's (it is
//! ordered with their other requests).

use std::future::Future;
use std::sync::Arc;

use berth_api::filters::{Filters, object_matches};
use netcore::network::{CreateRequest, Network, NetworkInspect, State};
use tokio::sync::{Mutex, watch};

use super::ContainerError;
use super::wiring::Wiring;
use crate::events::{Event, LateSink};

/// What the network routes ask of the engine.
pub trait NetworkBackend: Send + Sync + 'static {
    /// `docker network ls`: the networks `f` lets through (keys `id`, `name`, `driver`,
    /// `label`, `type`, `scope`), by name.
    fn list(&self, f: &Filters) -> Vec<NetworkInspect>;
    /// `docker network inspect NAME|ID`.
    fn inspect(&self, name_or_id: &str) -> Result<NetworkInspect, ContainerError>;
    /// `docker network create`.
    fn create(
        &self,
        req: CreateRequest,
    ) -> impl Future<Output = Result<Network, ContainerError>> + Send;
    /// `docker network rm`: refused while a container is attached.
    fn remove(&self, name_or_id: &str) -> impl Future<Output = Result<(), ContainerError>> + Send;
    /// `docker network prune`: the user-defined networks without containers; their names.
    fn prune(&self) -> impl Future<Output = Vec<String>> + Send;
}

/// The networks, through the wiring's lock and the records it publishes.
#[derive(Debug, Clone)]
pub struct Networks {
    wiring: Arc<Mutex<Wiring>>,
    records: watch::Receiver<Arc<State>>,
    events: LateSink,
}

impl Networks {
    pub(super) fn new(
        wiring: Arc<Mutex<Wiring>>,
        records: watch::Receiver<Arc<State>>,
        events: LateSink,
    ) -> Networks {
        Networks {
            wiring,
            records,
            events,
        }
    }

    fn emit(&self, n: &Network, action: &str) {
        self.events
            .send(|| Event::network(&n.id, action, &n.name, n.driver.name(), None));
    }
}

/// Whether network `n` (its API JSON) passes `f`, by Docker's rules: `id` a prefix, `name` a
/// substring, every `label` asked, `type` builtin (bridge, host, none) or custom, `scope`.
pub fn network_matches(f: &Filters, n: &serde_json::Value) -> bool {
    object_matches(f, n, |k, want| match k {
        "type" => {
            let builtin = matches!(n["Name"].as_str(), Some("bridge" | "host" | "none"));
            matches!(want, "builtin" | "custom") && (want == "builtin") == builtin
        }
        "scope" => n["Scope"].as_str() == Some(want),
        _ => false,
    })
}

impl NetworkBackend for Networks {
    fn list(&self, f: &Filters) -> Vec<NetworkInspect> {
        let records = self.records.borrow().clone();
        records
            .list()
            .into_iter()
            .filter(|n| serde_json::to_value(n).is_ok_and(|v| network_matches(f, &v)))
            .collect()
    }

    fn inspect(&self, name_or_id: &str) -> Result<NetworkInspect, ContainerError> {
        let records = self.records.borrow().clone();
        Ok(records.inspect(name_or_id)?)
    }

    async fn create(&self, req: CreateRequest) -> Result<Network, ContainerError> {
        let n = self.wiring.lock().await.networks().create(req).await?;
        self.emit(&n, "create");
        Ok(n)
    }

    async fn remove(&self, name_or_id: &str) -> Result<(), ContainerError> {
        let mut w = self.wiring.lock().await;
        let net = w.networks().find(name_or_id)?.clone();
        let users: Vec<String> = w
            .networks()
            .endpoints_of(&net.name)
            .map(|ep| ep.container_name.clone())
            .collect();
        if !users.is_empty() {
            return Err(ContainerError::Conflict(format!(
                "error while removing network: network {} has active endpoints ({})",
                net.name,
                users.join(", ")
            )));
        }
        w.networks().remove(name_or_id).await?;
        drop(w);
        self.emit(&net, "destroy");
        Ok(())
    }

    async fn prune(&self) -> Vec<String> {
        let removed = self.wiring.lock().await.networks().prune().await;
        let names = removed
            .into_iter()
            .map(|n| {
                self.emit(&n, "destroy");
                n.name
            })
            .collect();
        // As dockerd: one event for the prune itself (networks free no bytes: 0).
        self.events.send(|| {
            Event::new(
                crate::events::Kind::Network,
                "prune",
                "",
                [("reclaimed".to_string(), "0".to_string())].into(),
            )
        });
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, labels: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"Name": name, "Id": format!("{name}0123"), "Scope": "local",
            "Driver": "bridge", "Labels": labels})
    }

    fn f(raw: &str) -> Filters {
        berth_api::filters::parse(Some(raw), berth_api::filters::NETWORK_KEYS).unwrap()
    }

    #[test]
    fn networks_filter_as_docker() {
        let bridge = net("bridge", serde_json::json!({}));
        let app = net(
            "app-net",
            serde_json::json!({"com.docker.compose.project": "app"}),
        );
        assert!(network_matches(&f(r#"{"type":["builtin"]}"#), &bridge));
        assert!(!network_matches(&f(r#"{"type":["builtin"]}"#), &app));
        assert!(network_matches(&f(r#"{"type":["custom"]}"#), &app));
        assert!(!network_matches(&f(r#"{"type":["other"]}"#), &app));
        assert!(network_matches(&f(r#"{"scope":["local"]}"#), &app));
        assert!(!network_matches(&f(r#"{"scope":["swarm"]}"#), &app));
        assert!(network_matches(
            &f(r#"{"label":["com.docker.compose.project=app"],"name":["app"]}"#),
            &app
        ));
        assert!(!network_matches(&f(r#"{"name":["app"]}"#), &bridge));
        assert!(network_matches(&f(r#"{"id":["bridge01"]}"#), &bridge));
        assert!(network_matches(&Filters::new(), &bridge));
    }
}
