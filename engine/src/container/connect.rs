//! `docker network connect` and `disconnect`: a container joins or leaves a network, at once
//! when it runs (an endpoint in its namespace, its name in the network's DNS) and on every
//! later start (the record keeps its connections).

use super::ContainerError;
use super::engine::Engine;
use super::model::{Connection, NetworkMode};
use super::state::Status;
use super::wiring::container_dns;
use crate::events::Event;

impl Engine {
    /// `docker network connect [--alias A] [--ip IP] NETWORK CONTAINER`.
    pub async fn connect(
        &mut self,
        what: &str,
        network: &str,
        aliases: Vec<String>,
        ip: Option<String>,
    ) -> Result<(), ContainerError> {
        let id = self.resolve(what)?;
        self.refuse_while_starting(&id, "connected to a network")?;
        let c = self.containers[&id].clone();
        let nets = self.network_state();
        let found = nets.find(network)?;
        let net = found.name.clone();
        let event = Event::network(&found.id, "connect", &net, found.driver.name(), Some(&id));
        if c.state.status == Status::Removing {
            return Err(ContainerError::Conflict(format!(
                "container {} is marked for removal and cannot be connected",
                c.name
            )));
        }
        let primary = match &c.network_mode {
            NetworkMode::Network(n) => n.clone(),
            other => {
                return Err(ContainerError::Conflict(format!(
                    "container {} uses the {} network mode and cannot be connected to network {net}",
                    c.name,
                    other.text()
                )));
            }
        };
        if net == "host" || net == "none" {
            return Err(ContainerError::Conflict(format!(
                "container {} cannot be connected to the {net} network: it has a network already",
                c.name
            )));
        }
        if (net == primary && !c.primary_disconnected) || c.connections.contains_key(&net) {
            return Err(ContainerError::Conflict(format!(
                "endpoint with name {} already exists in network {net}",
                c.name
            )));
        }
        if let Some(ip) = &ip {
            ip.parse::<std::net::IpAddr>().map_err(|_| {
                ContainerError::Invalid(format!("invalid IP address {ip:?} for --ip"))
            })?;
            if net == "bridge" {
                return Err(ContainerError::Invalid(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
        }
        let conn = Connection { aliases, ip };
        let ns = self.netns_path(&id);
        if c.state.status.is_live() && ns.exists() {
            let req = self.attach_request(
                &c,
                &ns,
                &conn.aliases,
                conn.ip.as_deref(),
                Vec::new(),
                &container_dns(&c),
                net != "bridge",
            );
            self.wiring.lock().await.attach(&net, req).await?;
        }
        let rec = self.containers.get_mut(&id).expect("resolved");
        if net == primary {
            rec.primary_disconnected = false;
        } else {
            rec.connections.insert(net, conn);
        }
        self.save(&id)?;
        self.emit(|| event);
        Ok(())
    }

    /// `docker network disconnect [-f] NETWORK CONTAINER`. With `force`, a container that is
    /// not connected is not an error.
    pub async fn disconnect(
        &mut self,
        what: &str,
        network: &str,
        force: bool,
    ) -> Result<(), ContainerError> {
        let id = self.resolve(what)?;
        self.refuse_while_starting(&id, "disconnected from a network")?;
        let c = self.containers[&id].clone();
        let nets = self.network_state();
        let found = nets.find(network)?;
        let net = found.name.clone();
        let event = Event::network(
            &found.id,
            "disconnect",
            &net,
            found.driver.name(),
            Some(&id),
        );
        let primary = match &c.network_mode {
            NetworkMode::Network(n) => Some(n.clone()),
            NetworkMode::Host | NetworkMode::None if net == "host" || net == "none" => {
                return Err(ContainerError::Conflict(format!(
                    "container {} cannot be disconnected from the {net} network",
                    c.name
                )));
            }
            _ => None,
        };
        let is_primary = primary.as_deref() == Some(net.as_str()) && !c.primary_disconnected;
        if !is_primary && !c.connections.contains_key(&net) {
            if force {
                return Ok(());
            }
            return Err(ContainerError::Conflict(format!(
                "container {} is not connected to network {net}",
                c.name
            )));
        }
        if c.state.status.is_live() {
            // Its published ports went through its primary endpoint.
            self.wiring
                .lock()
                .await
                .detach(&net, &id, is_primary)
                .await?;
        }
        let rec = self.containers.get_mut(&id).expect("resolved");
        if is_primary {
            rec.primary_disconnected = true;
        } else {
            rec.connections.remove(&net);
        }
        self.save(&id)?;
        self.emit(|| event);
        Ok(())
    }
}
