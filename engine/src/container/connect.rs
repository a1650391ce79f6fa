//! `docker network connect` and `disconnect`: a container joins or leaves a network, at once
//! when it runs (an endpoint in its namespace, its name in the network's DNS) and on every
//! later start (the record keeps its connections).
//!
//! Each is three steps: planned under the engine's lock ([`Engine::connect_begin`]), the
//! network changed under the wiring's lock only ([`NetChange::apply`]), recorded under the
//! engine's lock ([`Engine::net_change_finish`]). A run that ended meanwhile is told apart by
//! its shim's PID: an endpoint added to a namespace that is gone is taken back.

use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use netcore::network::AttachRequest;
use tokio::sync::Mutex;

use super::engine::Engine;
use super::model::{Connection, NetworkMode};
use super::state::Status;
use super::wiring::{Wiring, container_dns};
use super::{ContainerError, EngineMachine};
use crate::events::Event;

/// What a connect or disconnect changes on the live network, and records after.
#[derive(Debug)]
pub struct NetChange {
    id: String,
    net: String,
    /// The run it applies to (0: not running, nothing to change live).
    shim_pid: i32,
    event: Event,
    kind: ChangeKind,
    /// A live connect to a user-defined network: the container's resolv.conf (bind-mounted
    /// into it) and what it says once the embedded resolver serves the container, as Docker
    /// rewrites it, and whether that is the embedded resolver; also a live disconnect from
    /// its last user-defined network (back to the host's servers). Rewritten in place, so the
    /// container sees it.
    resolv: Option<(std::path::PathBuf, String, bool)>,
}

#[derive(Debug)]
enum ChangeKind {
    Connect {
        conn: Connection,
        primary: bool,
        req: Option<Box<AttachRequest>>,
    },
    Disconnect {
        primary: bool,
        live: bool,
    },
}

impl NetChange {
    /// Whether it changes a live network (the container runs).
    fn is_live(&self) -> bool {
        matches!(
            self.kind,
            ChangeKind::Connect { req: Some(_), .. } | ChangeKind::Disconnect { live: true, .. }
        )
    }

    /// Changes the live network (nothing for a container that does not run), holding only the
    /// wiring's lock.
    pub async fn apply(&self, wiring: &Arc<Mutex<Wiring>>) -> Result<(), ContainerError> {
        match &self.kind {
            ChangeKind::Connect { req: Some(req), .. } => {
                Wiring::attach(wiring, &self.net, (**req).clone()).await?;
                self.switch_resolver().await;
                Ok(())
            }
            ChangeKind::Disconnect {
                primary,
                live: true,
            } => {
                Wiring::detach(wiring, &self.net, &self.id, *primary).await?;
                self.switch_resolver().await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Points the container's resolv.conf at the embedded resolver, or back at the host's
    /// servers, when its networks changed which one serves it (a default-bridge container
    /// joining its first user-defined network, or leaving its last). Rewritten in place (the
    /// file is bind-mounted); a failure is logged, never undoes the change (as Docker's).
    async fn switch_resolver(&self) {
        let Some((path, text, embedded)) = self.resolv.clone() else {
            return;
        };
        let id = self.id.clone();
        let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Read;
            // The container can write the file: read a bounded part, open without links.
            let mut now = String::new();
            if let Ok(f) = std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
            {
                let _ = f.take(64 * 1024).read_to_string(&mut now);
            }
            let ours = netcore::dns::EMBEDDED.to_string();
            let serves = now
                .lines()
                .any(|l| l.split_whitespace().eq(["nameserver", ours.as_str()]));
            if serves == embedded {
                return Ok(());
            }
            let mut f = std::fs::File::options()
                .write(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)?;
            std::io::Write::write_all(&mut f, text.as_bytes())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(container = %id, error = %e, "rewriting resolv.conf"),
            Err(e) => tracing::warn!(container = %id, error = %e, "rewriting resolv.conf"),
        }
    }

    /// Takes back a live connect whose run ended before it was recorded.
    async fn undo(&self, wiring: &Arc<Mutex<Wiring>>) {
        if let ChangeKind::Connect { req: Some(_), .. } = &self.kind {
            if let Err(e) = Wiring::detach(wiring, &self.net, &self.id, false).await {
                tracing::warn!(container = %self.id, network = %self.net, error = %e, "taking back an endpoint of a run that ended");
            }
        }
    }
}

/// Connects or disconnects container `id`: planned (once it is not busy: a start or an exit
/// in progress is waited for, as Docker's container lock would) and recorded under the
/// engine's lock, the network changed without it. `plan` is [`Engine::connect_begin`] or
/// [`Engine::disconnect_begin`]; `None` from it is nothing to do.
pub async fn change_network(
    machine: &EngineMachine,
    id: &str,
    plan: impl FnOnce(&mut Engine) -> Result<Option<NetChange>, ContainerError>,
) -> Result<(), ContainerError> {
    let engine = machine.engine();
    let (change, wiring) = {
        let mut e = machine.engine_unless_busy(id).await;
        let Some(change) = plan(&mut e)? else {
            return Ok(());
        };
        if !change.is_live() {
            // Nothing to change on a live network: recorded under the same lock, so a start
            // (a restart by its policy) sees the record before or after, never between.
            e.net_change_finish(&change)?;
            return Ok(());
        }
        (change, e.wiring())
    };
    change.apply(&wiring).await?;
    let ended = engine.lock().await.net_change_finish(&change)?;
    if ended {
        change.undo(&wiring).await;
    }
    Ok(())
}

impl Engine {
    /// `docker network connect` by a caller that owns the engine (berth-engine, tests): the
    /// three steps in a row. berthd uses [`change_network`], which lets the engine go.
    pub async fn connect(
        &mut self,
        what: &str,
        network: &str,
        conn: Connection,
    ) -> Result<(), ContainerError> {
        if let Some(change) = self.connect_begin(what, network, conn)? {
            change.apply(&self.wiring()).await?;
            self.net_change_finish(&change)?;
        }
        Ok(())
    }

    /// `docker network disconnect` by a caller that owns the engine (see [`Engine::connect`]).
    pub async fn disconnect(&mut self, what: &str, network: &str) -> Result<(), ContainerError> {
        if let Some(change) = self.disconnect_begin(what, network)? {
            change.apply(&self.wiring()).await?;
            self.net_change_finish(&change)?;
        }
        Ok(())
    }

    /// Plans `docker network connect [--alias A] [--ip IP] NETWORK CONTAINER`.
    pub fn connect_begin(
        &mut self,
        what: &str,
        network: &str,
        conn: Connection,
    ) -> Result<Option<NetChange>, ContainerError> {
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
        check_endpoint(&conn, &net)?;
        for l in &conn.links {
            let link: netcore::network::ContainerLink =
                l.parse().map_err(ContainerError::Invalid)?;
            self.resolve(&link.container)?;
        }
        if (net == primary && !c.primary_disconnected) || c.connections.contains_key(&net) {
            // Docker keeps the settings a container that does not run has for the network and
            // answers success (compose connects what it created to each of its networks).
            if !c.state.status.is_live() {
                return Ok(None);
            }
            return Err(ContainerError::Conflict(format!(
                "endpoint with name {} already exists in network {net}",
                c.name
            )));
        }
        let ns = self.netns_path(&id);
        let req = (c.state.status.is_live() && ns.exists()).then(|| {
            Box::new(self.attach_request(
                &c,
                &ns,
                &conn,
                Vec::new(),
                &container_dns(&c),
                net != "bridge",
            ))
        });
        let resolv = (req.is_some() && net != "bridge").then(|| {
            (
                self.dir(&id).join("resolv.conf"),
                netcore::dns::container_resolv_conf(&self.host_dns, &container_dns(&c), true),
                true,
            )
        });
        Ok(Some(NetChange {
            resolv,
            shim_pid: if req.is_some() { c.state.shim_pid } else { 0 },
            kind: ChangeKind::Connect {
                primary: net == primary,
                conn,
                req,
            },
            id,
            net,
            event,
        }))
    }

    /// Records a change [`NetChange::apply`] made; `true` when the run it applied to ended
    /// meanwhile (a live connect is then to be taken back: its namespace went with the run).
    pub fn net_change_finish(&mut self, change: &NetChange) -> Result<bool, ContainerError> {
        let Some(rec) = self.containers.get_mut(&change.id) else {
            return Err(ContainerError::NotFound(change.id.clone()));
        };
        let ended = change.shim_pid != 0
            && (!rec.state.status.is_live() || rec.state.shim_pid != change.shim_pid);
        match &change.kind {
            ChangeKind::Connect { conn, primary, .. } => {
                if *primary {
                    rec.primary_disconnected = false;
                    rec.options.set_primary_endpoint(conn);
                } else {
                    rec.connections.insert(change.net.clone(), conn.clone());
                }
            }
            ChangeKind::Disconnect { primary, .. } => {
                if *primary {
                    rec.primary_disconnected = true;
                } else {
                    rec.connections.remove(&change.net);
                }
            }
        }
        self.save(&change.id)?;
        let event = change.event.clone();
        self.emit(|| event);
        Ok(ended)
    }

    /// Plans `docker network disconnect [-f] NETWORK CONTAINER` (`-f` changes nothing for a
    /// container that exists, as in Docker).
    pub fn disconnect_begin(
        &mut self,
        what: &str,
        network: &str,
    ) -> Result<Option<NetChange>, ContainerError> {
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
        // Refused with or without `force`, in Docker's words (force only reaches endpoints
        // whose container is gone).
        if !is_primary && !c.connections.contains_key(&net) {
            // Docker words it one way for a running container, another for the rest.
            let the = if c.state.status.is_live() { "" } else { "the " };
            return Err(ContainerError::Conflict(format!(
                "container {} is not connected to {the}network {net}",
                c.id
            )));
        }
        let live = c.state.status.is_live();
        // Leaving its last user-defined network, a container has no embedded resolver any more
        // (its listener closes): its resolv.conf goes back to the host's servers.
        let user_left = primary
            .as_deref()
            .is_some_and(|p| p != "bridge" && p != net.as_str() && !c.primary_disconnected)
            || c.connections.keys().any(|n| n != &net && n != "bridge");
        let resolv = (live && net != "bridge" && !user_left).then(|| {
            (
                self.dir(&id).join("resolv.conf"),
                netcore::dns::container_resolv_conf(&self.host_dns, &container_dns(&c), false),
                false,
            )
        });
        Ok(Some(NetChange {
            resolv,
            id,
            net,
            // A disconnect is recorded whether or not the run ended meanwhile.
            shim_pid: 0,
            event,
            // Its published ports went through its primary endpoint.
            kind: ChangeKind::Disconnect {
                primary: is_primary,
                live,
            },
        }))
    }
}

/// Docker's checks of what an endpoint on network `net` asks for (at create for the first
/// network, at `network connect` for the others), with its words.
pub(super) fn check_endpoint(conn: &Connection, net: &str) -> Result<(), ContainerError> {
    let bad = |m: String| Err(ContainerError::Invalid(m));
    if conn.link_local_ips.len() > MAX_LINK_LOCAL {
        return bad(format!(
            "{} link-local addresses asked for; at most {MAX_LINK_LOCAL}",
            conn.link_local_ips.len()
        ));
    }
    if net == "bridge" {
        if conn.wants_address() {
            return bad(
                "user specified IP address is supported on user defined networks only".into(),
            );
        }
        if !conn.aliases.is_empty() {
            return bad(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            );
        }
    }
    if let Some(ip) = &conn.ip {
        if !ip
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| !a.is_unspecified())
        {
            return bad(format!(
                "invalid IPv4 address: {ip} (expected a dotted address in the network's subnet)"
            ));
        }
    }
    if let Some(ip) = &conn.ip6 {
        if !ip
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| !a.is_unspecified())
        {
            return bad(format!(
                "invalid IPv6 address: {ip} (expected an IPv6 address in the network's subnet)"
            ));
        }
    }
    let invalid: Vec<&str> = conn
        .link_local_ips
        .iter()
        .filter(|ip| {
            !ip.parse::<std::net::IpAddr>()
                .is_ok_and(|a| !a.is_unspecified())
        })
        .map(String::as_str)
        .collect();
    if !invalid.is_empty() {
        // Docker's words, every bad one in Go's list form.
        return bad(format!(
            "Invalid link-local IP address: [{}] (expected IPv4 or IPv6 addresses)",
            invalid.join(" ")
        ));
    }
    if let Some(m) = &conn.mac {
        match m.parse::<netcore::link::MacAddr>() {
            Err(_) => {
                return bad(format!(
                    "invalid MAC address: {m} (expected six hex bytes separated by colons, e.g. 02:42:ac:11:00:02)"
                ));
            }
            Ok(mac) if mac.0[0] & 1 == 1 => {
                return bad(format!(
                    "invalid MAC address: {m} is a multicast address (the first byte must be even, e.g. 02:42:ac:11:00:02)"
                ));
            }
            Ok(_) => {}
        }
    }
    // Each address once: the kernel refuses a second copy with a bare "File exists".
    let mut seen = std::collections::BTreeSet::new();
    for ip in conn
        .ip
        .iter()
        .chain(&conn.ip6)
        .chain(&conn.link_local_ips)
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
    {
        if !seen.insert(ip) {
            return bad(format!(
                "address {ip} is asked for twice (--ip, --ip6 and --link-local-ip must differ)"
            ));
        }
    }
    Ok(())
}

/// Link-local addresses one endpoint may add (each is a netlink request at every start).
const MAX_LINK_LOCAL: usize = 16;

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    fn conn(f: impl FnOnce(&mut Connection)) -> Connection {
        let mut c = Connection::default();
        f(&mut c);
        c
    }

    #[test]
    fn endpoint_settings_are_checked_as_docker_checks_them() {
        let ok = conn(|c| {
            c.ip = Some("10.1.0.5".into());
            c.ip6 = Some("fd00::5".into());
            c.link_local_ips = vec!["169.254.1.1".into(), "fe80::9".into()];
            c.mac = Some("02:42:0a:01:00:05".into());
            c.aliases = vec!["a".into()];
        });
        check_endpoint(&ok, "app").unwrap();
        // Link-local addresses Docker takes on the default bridge too.
        check_endpoint(
            &conn(|c| c.link_local_ips = vec!["169.254.1.1".into()]),
            "bridge",
        )
        .unwrap();
        for (c, net, want) in [
            (
                conn(|c| c.ip = Some("10.1.0.5".into())),
                "bridge",
                "user specified IP address is supported on user defined networks only",
            ),
            (
                conn(|c| c.ip6 = Some("fd00::5".into())),
                "bridge",
                "user specified IP address",
            ),
            (
                conn(|c| {
                    c.ip = Some("10.1.0.5".into());
                    c.link_local_ips = vec!["10.1.0.5".into()];
                }),
                "app",
                "10.1.0.5 is asked for twice",
            ),
            (
                conn(|c| c.link_local_ips = vec!["169.254.0.1".into(), "169.254.0.1".into()]),
                "app",
                "169.254.0.1 is asked for twice",
            ),
            (
                conn(|c| c.mac = Some("03:42:0a:01:00:05".into())),
                "app",
                "a multicast address",
            ),
            (
                conn(|c| c.mac = Some("+2:42:0a:01:00:05".into())),
                "app",
                "invalid MAC address",
            ),
            (
                conn(|c| c.aliases = vec!["a".into()]),
                "bridge",
                "network-scoped alias",
            ),
            (
                conn(|c| c.ip = Some("fd00::5".into())),
                "app",
                "invalid IPv4 address: fd00::5",
            ),
            (
                conn(|c| c.ip = Some("0.0.0.0".into())),
                "app",
                "invalid IPv4 address: 0.0.0.0",
            ),
            (
                conn(|c| c.ip6 = Some("10.0.0.1".into())),
                "app",
                "invalid IPv6 address: 10.0.0.1",
            ),
            (
                conn(|c| c.link_local_ips = vec!["x".into(), "169.254.0.1".into(), "y".into()]),
                "app",
                "Invalid link-local IP address: [x y]",
            ),
            (
                conn(|c| c.mac = Some("02:42".into())),
                "app",
                "invalid MAC address: 02:42",
            ),
            (
                conn(|c| c.link_local_ips = vec!["169.254.0.1".into(); 17]),
                "app",
                "at most 16",
            ),
        ] {
            let e = check_endpoint(&c, net).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
}
