//! What happened, as `docker events` reports it: a container created, started, dead, removed; a
//! network connected; an image pulled. The engine reports what it does itself (every container
//! action, exits it learns of on its own included) through an [`EventSink`] its daemon installs;
//! the daemon reports what it asks of the stores directly (networks, volumes, images). Keeping,
//! filtering and streaming them is the daemon's business.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::container::Container;

/// What an event is about (Docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A container.
    Container,
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// An image.
    Image,
}

impl Kind {
    /// Docker's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Network => "network",
            Kind::Volume => "volume",
            Kind::Image => "image",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What it is about.
    pub kind: Kind,
    /// Docker's `Action` (`create`, `start`, `die`, `connect`, `pull`, ...).
    pub action: String,
    /// The object's ID (container, network, image ID) or name (volume, pulled reference).
    pub actor_id: String,
    /// Docker's `Actor.Attributes` (`name`, `image`, labels, `exitCode`, ...).
    pub attributes: BTreeMap<String, String>,
    /// When, in nanoseconds since the epoch.
    pub time_nano: i64,
}

impl Event {
    /// An event stamped now.
    pub fn new(
        kind: Kind,
        action: impl Into<String>,
        actor_id: impl Into<String>,
        attributes: BTreeMap<String, String>,
    ) -> Event {
        let time_nano = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Event {
            kind,
            action: action.into(),
            actor_id: actor_id.into(),
            attributes,
            time_nano,
        }
    }

    /// A container's event: its labels, `image` (as the user named it) and `name`, as Docker
    /// gives them, plus `extra` (`exitCode`, `signal`, ...).
    pub fn container(c: &Container, action: &str, extra: &[(&str, String)]) -> Event {
        let mut attributes = c.options.labels.clone();
        attributes.insert("image".into(), c.options.image.clone());
        attributes.insert("name".into(), c.name.clone());
        for (k, v) in extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        Event::new(Kind::Container, action, c.id.clone(), attributes)
    }
}

impl Event {
    /// A volume's event, as Docker's local driver reports it (the actor is the volume's name).
    pub fn volume(name: &str, action: &str) -> Event {
        let attributes = [("driver".to_string(), "local".to_string())].into();
        Event::new(Kind::Volume, action, name, attributes)
    }

    /// A network's event: its `name` and driver (`type`), and for `connect`/`disconnect` the
    /// `container` ID.
    pub fn network(
        id: &str,
        action: &str,
        name: &str,
        driver: &str,
        container: Option<&str>,
    ) -> Event {
        let mut attributes: BTreeMap<String, String> = [
            ("name".to_string(), name.to_string()),
            ("type".to_string(), driver.to_string()),
        ]
        .into();
        if let Some(c) = container {
            attributes.insert("container".into(), c.to_string());
        }
        Event::new(Kind::Network, action, id, attributes)
    }

    /// An image's event: the actor is the image ID or the reference acted on, `name` the
    /// reference (Docker's attributes).
    pub fn image(id: &str, action: &str, name: &str) -> Event {
        let attributes = [("name".to_string(), name.to_string())].into();
        Event::new(Kind::Image, action, id, attributes)
    }
}

/// Where the engine reports its events. Called under the engine's lock: it must not block.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(Event) + Send + Sync>);

impl EventSink {
    /// A sink calling `f` for every event.
    pub fn new(f: impl Fn(Event) + Send + Sync + 'static) -> EventSink {
        EventSink(Arc::new(f))
    }

    /// Reports `ev`.
    pub fn send(&self, ev: Event) {
        (self.0)(ev)
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

/// Where an engine part reports its events, shared by the parts and installed once their
/// daemon has made its bus (after the engine opened): events before that are not reported.
#[derive(Clone, Debug, Default)]
pub struct LateSink(Arc<std::sync::OnceLock<EventSink>>);

impl LateSink {
    /// Reports to `sink` from now on (once: a later sink is ignored).
    pub fn install(&self, sink: EventSink) {
        if self.0.set(sink).is_err() {
            tracing::warn!("an event sink was installed already; keeping it");
        }
    }

    /// The sink, once installed.
    pub fn get(&self) -> Option<EventSink> {
        self.0.get().cloned()
    }

    /// Reports `ev()` (made only when a sink is installed).
    pub fn send(&self, ev: impl FnOnce() -> Event) {
        if let Some(sink) = self.0.get() {
            sink.send(ev());
        }
    }
}

/// A signal as Docker's `kill` event names it: its number (`SIGTERM`, `TERM` and `15` are
/// `15`); unknown names are kept as given.
pub fn signal_number(signal: &str) -> String {
    let s = signal.trim_start_matches("SIG");
    if s.parse::<i32>().is_ok() {
        return s.to_string();
    }
    format!("SIG{s}")
        .parse::<nix::sys::signal::Signal>()
        .map_or_else(|_| signal.to_string(), |sig| (sig as i32).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number() {
        assert_eq!(signal_number("TERM"), "15");
        assert_eq!(signal_number("SIGKILL"), "9");
        assert_eq!(signal_number("10"), "10");
        assert_eq!(signal_number("BOGUS"), "BOGUS");
    }

    #[test]
    fn container_attributes_and_sink() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "id": "abc", "name": "web", "created": "", "image_id": "sha256:1", "args": [],
            "env": [], "workdir": "/", "user": "", "hostname": "h",
            "network_mode": {"mode": "none"}, "mounts": [], "exposed_ports": [],
            "restart_policy": {"name": "no"},
            "options": {"image": "busybox", "labels": {"team": "a", "name": "shadowed"}},
            "state": {}
        }))
        .unwrap();
        let ev = Event::container(&c, "die", &[("exitCode", "3".into())]);
        assert_eq!(
            (ev.kind, ev.action.as_str(), ev.actor_id.as_str()),
            (Kind::Container, "die", "abc")
        );
        assert_eq!(ev.attributes["image"], "busybox");
        assert_eq!(ev.attributes["name"], "web", "the name wins over a label");
        assert_eq!(ev.attributes["team"], "a");
        assert_eq!(ev.attributes["exitCode"], "3");
        assert!(ev.time_nano > 0);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let sink = EventSink::new(move |e| s2.lock().unwrap().push(e.action));
        sink.send(ev);
        assert_eq!(*seen.lock().unwrap(), vec!["die".to_string()]);
    }
}
