//! The host-local side of `-p`: one `berth-proxy` process per exec root, run outside the
//! engine's process as the shims are, so `127.0.0.1:PORT` keeps answering (and open
//! connections keep flowing) while no engine runs. The engine talks to it over its control
//! socket (`<exec-root>/proxy.sock`, portproxy's newline-delimited JSON), one connection per
//! call, and starts it when nothing answers there.
//!
//! [`reconcile`] is the pure part: which of a live proxy's publications an engine adopts for
//! its containers, which it publishes again, and which it withdraws.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use portproxy::control::{Client, Request, Response};
use portproxy::{Mapping, Protocol, PublishedInfo};

use super::{ContainerError, io_err};

/// The longest an engine waits for the proxy's answer.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The engine's handle on its `berth-proxy`.
#[derive(Debug)]
pub(super) struct ProxyLink {
    binary: PathBuf,
    exec_root: PathBuf,
}

/// What [`ProxyLink::call`] found at the socket.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reached {
    /// The proxy that was there, with what it publishes.
    Live,
    /// A proxy just started (none answered): it publishes nothing yet.
    Started,
}

impl ProxyLink {
    /// A link to the proxy of `exec_root`, started from `binary` when needed.
    pub(super) fn new(binary: PathBuf, exec_root: PathBuf) -> ProxyLink {
        ProxyLink { binary, exec_root }
    }

    /// The control socket.
    pub(super) fn socket(&self) -> PathBuf {
        self.exec_root.join("proxy.sock")
    }

    /// The file holding the proxy's PID.
    pub(super) fn pid_file(&self) -> PathBuf {
        self.exec_root.join("proxy.pid")
    }

    /// Connects to the proxy, starting one when nothing answers at the socket.
    async fn connect(&self) -> Result<(Client, Reached), ContainerError> {
        let socket = self.socket();
        if let Ok(c) = Client::connect(&socket).await {
            return Ok((c, Reached::Live));
        }
        self.start()?;
        let c = Client::connect(&socket).await.map_err(io_err(format!(
            "connecting to berth-proxy at {}",
            socket.display()
        )))?;
        Ok((c, Reached::Started))
    }

    /// Starts `berth-proxy serve --detach`, which returns once its socket listens (a stale
    /// socket file is replaced). Blocking, but short: the command only binds and forks.
    fn start(&self) -> Result<(), ContainerError> {
        let log = self.exec_root.join("proxy.log");
        let stderr =
            fs::File::create(&log).map_err(io_err(format!("creating {}", log.display())))?;
        let out = Command::new(&self.binary)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .args(["--log-level", "warn", "serve", "--detach", "--pid-file"])
            .arg(self.pid_file())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .map_err(io_err(format!("running {}", self.binary.display())))?;
        if !out.success() {
            return Err(ContainerError::Invalid(format!(
                "{} did not start ({out}): {}",
                self.binary.display(),
                fs::read_to_string(&log).unwrap_or_default().trim()
            )));
        }
        tracing::info!(proxy = %self.binary.display(), socket = %self.socket().display(), "started the port proxy");
        Ok(())
    }

    /// Sends `req`, starting the proxy first when none answers. The answer comes with whether
    /// the proxy was just started (the caller then publishes again what it had published).
    pub(super) async fn call(&self, req: &Request) -> Result<(Response, Reached), ContainerError> {
        let (c, reached) = self.connect().await?;
        Ok((self.exchange(c, req).await?, reached))
    }

    /// Sends `req` to a proxy that runs already; `None` when none answers.
    pub(super) async fn call_live(
        &self,
        req: &Request,
    ) -> Result<Option<Response>, ContainerError> {
        match Client::connect(&self.socket()).await {
            Ok(c) => self.exchange(c, req).await.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// One request and its answer, bounded in time: a proxy that stopped answering fails the
    /// publication rather than stalling its caller.
    async fn exchange(&self, mut c: Client, req: &Request) -> Result<Response, ContainerError> {
        let what = || format!("berth-proxy at {}", self.socket().display());
        let resp = match tokio::time::timeout(CALL_TIMEOUT, c.call(req)).await {
            Ok(r) => r.map_err(|e| ContainerError::Io {
                what: what(),
                source: std::io::Error::other(e.to_string()),
            })?,
            Err(_) => {
                return Err(ContainerError::Io {
                    what: what(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer in {CALL_TIMEOUT:?}"),
                    ),
                });
            }
        };
        if !resp.ok {
            return Err(ContainerError::PortProxy(resp.error.unwrap_or_default()));
        }
        Ok(resp)
    }
}

/// A mapping an engine wants served for one of its containers: the endpoint's recorded
/// mapping (real host port) and the `-p` text that publishes exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    /// The container.
    pub container: String,
    /// What the proxy serves.
    pub mapping: Mapping,
    /// Publishes it on both families (`-p 8080:80`, `-P`), not only the address recorded.
    pub both_families: bool,
}

impl Wanted {
    /// The `-p` text that publishes this mapping again.
    pub(super) fn spec(&self) -> String {
        let m = &self.mapping;
        let host = if self.both_families {
            String::new()
        } else {
            format!("{}:", m.host.ip())
        };
        format!("{host}{}:{}/{}", m.host.port(), m.container.port(), m.proto)
    }

    /// Where it forwards to.
    pub(super) fn container_ip(&self) -> IpAddr {
        self.mapping.container.ip()
    }
}

/// What an engine does with a live proxy's publications.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reconciled {
    /// Publications kept, by container.
    pub adopt: BTreeMap<String, Vec<u64>>,
    /// Indexes into the wanted list of mappings no kept publication serves.
    pub publish: Vec<usize>,
    /// Publications no container wants (removed while no engine ran).
    pub withdraw: Vec<u64>,
}

/// The key of a mapping: IPv4 listeners only (an IPv6 listener of a wildcard publication goes
/// with its IPv4 one; the engine's records hold the IPv4 side).
fn key(m: &Mapping) -> Option<(Protocol, SocketAddr, SocketAddr)> {
    m.host.is_ipv4().then_some((m.proto, m.host, m.container))
}

/// Matches `live` publications against `wanted` mappings: a publication is kept for a
/// container when every IPv4 mapping it serves is wanted by that container; wanted mappings
/// no kept publication serves are published; the rest of the publications are withdrawn.
pub(super) fn reconcile(wanted: &[Wanted], live: &[PublishedInfo]) -> Reconciled {
    let owner: BTreeMap<_, (&str, usize)> = wanted
        .iter()
        .enumerate()
        .filter_map(|(i, w)| key(&w.mapping).map(|k| (k, (w.container.as_str(), i))))
        .collect();
    let mut out = Reconciled::default();
    let mut served = BTreeSet::new();
    for p in live {
        let keys: Vec<_> = p.mappings.iter().filter_map(key).collect();
        let owners: BTreeSet<&str> = keys
            .iter()
            .filter_map(|k| owner.get(k).map(|(c, _)| *c))
            .collect();
        let all_wanted = !keys.is_empty() && keys.iter().all(|k| owner.contains_key(k));
        match (all_wanted, owners.len()) {
            (true, 1) => {
                let c = owners.into_iter().next().expect("one owner");
                out.adopt.entry(c.to_string()).or_default().push(p.id);
                served.extend(keys.iter().map(|k| owner[k].1));
            }
            _ => out.withdraw.push(p.id),
        }
    }
    out.publish = (0..wanted.len())
        .filter(|i| !served.contains(i) && key(&wanted[*i].mapping).is_some())
        .collect();
    out
}

/// Ends the proxy whose PID `pid_file` holds, when that process is a `berth-proxy` (tests and
/// tools tearing an exec root down; an engine never stops its proxy).
pub fn stop_proxy(pid_file: &Path) -> bool {
    let Some(pid) = fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return false;
    };
    let is_proxy = fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|b| *b == 0)
            .next()
            .is_some_and(|a| a.ends_with(b"berth-proxy"))
    });
    is_proxy
        && nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portproxy::StatsSnapshot;

    fn m(host: &str, container: &str) -> Mapping {
        Mapping {
            proto: Protocol::Tcp,
            host: host.parse().unwrap(),
            container: container.parse().unwrap(),
        }
    }

    fn want(c: &str, host: &str, container: &str) -> Wanted {
        Wanted {
            container: c.into(),
            mapping: m(host, container),
            both_families: true,
        }
    }

    fn live(id: u64, mappings: Vec<Mapping>) -> PublishedInfo {
        PublishedInfo {
            id,
            spec: String::new(),
            mappings,
            transparent: false,
            stats: StatsSnapshot::default(),
        }
    }

    #[test]
    fn keeps_what_is_wanted_publishes_what_is_missing_withdraws_the_rest() {
        let wanted = [
            want("a", "0.0.0.0:8080", "172.17.0.2:80"),
            want("a", "0.0.0.0:8081", "172.17.0.2:81"),
            want("b", "127.0.0.1:9000", "172.17.0.3:90"),
        ];
        let listed = [
            // a's first port, on both families: kept.
            live(
                1,
                vec![
                    m("0.0.0.0:8080", "172.17.0.2:80"),
                    m("[::]:8080", "172.17.0.2:80"),
                ],
            ),
            // A container removed while no engine ran: withdrawn.
            live(2, vec![m("0.0.0.0:7000", "172.17.0.9:70")]),
            // A range of which only part is wanted: withdrawn, its wanted part published.
            live(
                3,
                vec![
                    m("127.0.0.1:9000", "172.17.0.3:90"),
                    m("127.0.0.1:9001", "172.17.0.3:91"),
                ],
            ),
        ];
        let r = reconcile(&wanted, &listed);
        assert_eq!(r.adopt, BTreeMap::from([("a".to_string(), vec![1])]));
        assert_eq!(r.publish, vec![1, 2]);
        assert_eq!(r.withdraw, vec![2, 3]);
    }

    #[test]
    fn a_fresh_proxy_gets_everything_and_nothing_is_withdrawn() {
        let wanted = [want("a", "0.0.0.0:8080", "172.17.0.2:80")];
        let r = reconcile(&wanted, &[]);
        assert_eq!(r.publish, vec![0]);
        assert!(r.adopt.is_empty() && r.withdraw.is_empty());
    }

    #[test]
    fn a_publication_shared_by_two_containers_is_not_adopted() {
        let wanted = [
            want("a", "0.0.0.0:8080", "172.17.0.2:80"),
            want("b", "0.0.0.0:8081", "172.17.0.3:80"),
        ];
        let listed = [live(
            7,
            vec![
                m("0.0.0.0:8080", "172.17.0.2:80"),
                m("0.0.0.0:8081", "172.17.0.3:80"),
            ],
        )];
        let r = reconcile(&wanted, &listed);
        assert_eq!(r.withdraw, vec![7]);
        assert_eq!(r.publish, vec![0, 1]);
    }

    #[test]
    fn specs_bind_the_recorded_address_unless_published_on_both_families() {
        let mut w = want("a", "0.0.0.0:8080", "172.17.0.2:80");
        assert_eq!(w.spec(), "8080:80/tcp");
        w.both_families = false;
        assert_eq!(w.spec(), "0.0.0.0:8080:80/tcp");
        w.mapping = m("127.0.0.1:9000", "172.17.0.2:90");
        assert_eq!(w.spec(), "127.0.0.1:9000:90/tcp");
    }
}
