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

    /// Connects to the proxy, starting one when nothing listens at the socket (no socket file,
    /// or one nothing listens on). Any other failure is an error: a proxy that is there but
    /// slow is never replaced.
    async fn connect(&self) -> Result<(Client, Reached), ContainerError> {
        let socket = self.socket();
        let what = || format!("connecting to berth-proxy at {}", socket.display());
        match Client::connect(&socket).await {
            Ok(c) => return Ok((c, Reached::Live)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(io_err(what())(e)),
        }
        let (binary, exec_root, pid_file) =
            (self.binary.clone(), self.exec_root.clone(), self.pid_file());
        tokio::task::spawn_blocking(move || start(&binary, &exec_root, &pid_file))
            .await
            .map_err(|e| ContainerError::Invalid(format!("starting berth-proxy: {e}")))??;
        let c = Client::connect(&socket).await.map_err(io_err(what()))?;
        Ok((c, Reached::Started))
    }

    /// Sends `req`, starting the proxy first when none runs. Once a proxy answered, whether it
    /// was just started comes back with its answer, a refusal too: a new proxy publishes
    /// nothing, and the caller publishes again what it had published.
    pub(super) async fn call(
        &self,
        req: &Request,
    ) -> Result<(Reached, Result<Response, ContainerError>), ContainerError> {
        let (c, reached) = self.connect().await?;
        Ok((reached, self.exchange(c, req).await))
    }

    /// Stops the proxy when it publishes nothing (an engine shutting down with no container
    /// publishing a port leaves no process behind), and waits (at most 5 s) for it to exit.
    pub(super) async fn stop_if_idle(&self) {
        let Ok(Some(resp)) = self.call_live(&Request::List).await else {
            return;
        };
        if !resp.published.is_empty() {
            return;
        }
        let Some(pid) = proxy_pid(&self.pid_file()) else {
            return;
        };
        let watch = super::exit::ExitWatch::new(pid).ok().flatten();
        if nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .is_err()
        {
            return;
        }
        if let Some(w) = watch {
            if tokio::time::timeout(std::time::Duration::from_secs(5), w.wait())
                .await
                .is_err()
            {
                tracing::warn!(pid, "the idle port proxy did not exit within 5 s");
            }
        }
        let _ = fs::remove_file(self.pid_file());
        tracing::info!("stopped the idle port proxy");
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

/// Starts `berth-proxy serve --detach` for `exec_root`, which returns once its socket listens
/// (a stale socket file is replaced). Blocking (run it on the blocking pool), but short: the
/// command only binds and forks.
fn start(binary: &Path, exec_root: &Path, pid_file: &Path) -> Result<(), ContainerError> {
    let log = exec_root.join("proxy.log");
    let stderr = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io_err(format!("opening {}", log.display())))?;
    let out = Command::new(binary)
        .arg("--exec-root")
        .arg(exec_root)
        .args(["--log-level", "warn", "serve", "--detach", "--pid-file"])
        .arg(pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .status()
        .map_err(io_err(format!("running {}", binary.display())))?;
    if !out.success() {
        return Err(ContainerError::Invalid(format!(
            "{} did not start ({out}); see {}",
            binary.display(),
            log.display()
        )));
    }
    tracing::info!(proxy = %binary.display(), exec_root = %exec_root.display(), "started the port proxy");
    Ok(())
}

/// One listener of a publication: protocol, host address and port, container address and port.
type Key = (Protocol, SocketAddr, SocketAddr);

fn key(m: &Mapping) -> Key {
    (m.proto, m.host, m.container)
}

/// A publication an engine wants served for one of its containers: the `-p` text that makes
/// it and the listeners it has once made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    /// The container.
    pub container: String,
    /// The `-p` text, with real host ports.
    pub spec: String,
    /// Where it forwards to.
    pub container_ip: IpAddr,
    /// Its listeners (an IPv6 one of a wildcard publication is optional: a host without IPv6
    /// has none).
    pub keys: Vec<Key>,
}

impl Wanted {
    /// The mapping recorded in an endpoint (`m`, real host port), published on both families
    /// when the container's `-p` had no host address (`both`).
    pub(super) fn recorded(container: &str, m: &Mapping, both: bool) -> Wanted {
        let mut keys = vec![key(m)];
        let spec = if both {
            let v6 = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), m.host.port());
            keys.push((m.proto, v6, m.container));
            format!("{}:{}/{}", m.host.port(), m.container.port(), m.proto)
        } else {
            let host = match m.host.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            format!(
                "{host}:{}:{}/{}",
                m.host.port(),
                m.container.port(),
                m.proto
            )
        };
        Wanted {
            container: container.to_string(),
            spec,
            container_ip: m.container.ip(),
            keys,
        }
    }
}

/// What an engine does with a live proxy's publications.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reconciled {
    /// Publications kept, by container.
    pub adopt: BTreeMap<String, Vec<u64>>,
    /// Indexes into the wanted list of publications no kept one serves.
    pub publish: Vec<usize>,
    /// Publications no container wants (of containers gone while no engine ran).
    pub withdraw: Vec<u64>,
}

/// Matches `live` publications against `wanted` ones: a publication is kept for a container
/// when every listener it has is one that container wants; wanted publications whose first
/// listener no kept publication has are published; the rest are withdrawn.
pub(super) fn reconcile(wanted: &[Wanted], live: &[PublishedInfo]) -> Reconciled {
    let owner: BTreeMap<Key, &str> = wanted
        .iter()
        .flat_map(|w| w.keys.iter().map(|k| (*k, w.container.as_str())))
        .collect();
    let mut out = Reconciled::default();
    let mut served = BTreeSet::new();
    for p in live {
        let keys: Vec<Key> = p.mappings.iter().map(key).collect();
        let owners: BTreeSet<Option<&&str>> = keys.iter().map(|k| owner.get(k)).collect();
        match owners.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(c)] if !keys.is_empty() => {
                out.adopt.entry(c.to_string()).or_default().push(p.id);
                served.extend(keys);
            }
            _ => out.withdraw.push(p.id),
        }
    }
    out.publish = (0..wanted.len())
        .filter(|i| !served.contains(&wanted[*i].keys[0]))
        .collect();
    out
}

/// Ends the proxy whose PID `pid_file` holds, when that process is a `berth-proxy` (tests and
/// tools tearing an exec root down; an engine never stops its proxy).
pub fn stop_proxy(pid_file: &Path) -> bool {
    proxy_pid(pid_file).is_some_and(|pid| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .is_ok()
    })
}

/// The PID in `pid_file` when that process is the `berth-proxy` of the directory holding the
/// file (`berth-proxy --exec-root DIR ...`), not a process that reused the PID.
fn proxy_pid(pid_file: &Path) -> Option<i32> {
    let pid = fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())?;
    let root = pid_file
        .parent()
        .map(|d| d.as_os_str().as_encoded_bytes().to_vec());
    let is_proxy = fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        args.first().is_some_and(|a| a.ends_with(b"berth-proxy"))
            && root.as_deref().is_some_and(|r| args.contains(&r))
    });
    is_proxy.then_some(pid)
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

    fn want(c: &str, host: &str, container: &str, both: bool) -> Wanted {
        Wanted::recorded(c, &m(host, container), both)
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
            want("a", "0.0.0.0:8080", "172.17.0.2:80", true),
            want("a", "0.0.0.0:8081", "172.17.0.2:81", true),
            want("b", "127.0.0.1:9000", "172.17.0.3:90", false),
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
    fn a_wildcard_publication_without_its_ipv6_listener_is_kept() {
        let wanted = [want("a", "0.0.0.0:8080", "172.17.0.2:80", true)];
        let r = reconcile(
            &wanted,
            &[live(4, vec![m("0.0.0.0:8080", "172.17.0.2:80")])],
        );
        assert_eq!(r.adopt, BTreeMap::from([("a".to_string(), vec![4])]));
        assert!(r.publish.is_empty() && r.withdraw.is_empty());
    }

    #[test]
    fn ipv6_only_publications_are_kept_and_published_again() {
        let wanted = [want("a", "[::1]:8080", "172.17.0.2:80", false)];
        assert_eq!(wanted[0].spec, "[::1]:8080:80/tcp");
        let listed = [live(5, vec![m("[::1]:8080", "172.17.0.2:80")])];
        let r = reconcile(&wanted, &listed);
        assert_eq!(r.adopt, BTreeMap::from([("a".to_string(), vec![5])]));
        assert!(r.publish.is_empty() && r.withdraw.is_empty());
        assert_eq!(reconcile(&wanted, &[]).publish, vec![0]);
    }

    #[test]
    fn a_fresh_proxy_gets_everything_and_nothing_is_withdrawn() {
        let wanted = [want("a", "0.0.0.0:8080", "172.17.0.2:80", true)];
        let r = reconcile(&wanted, &[]);
        assert_eq!(r.publish, vec![0]);
        assert!(r.adopt.is_empty() && r.withdraw.is_empty());
    }

    #[test]
    fn a_publication_shared_by_two_containers_is_not_adopted() {
        let wanted = [
            want("a", "0.0.0.0:8080", "172.17.0.2:80", false),
            want("b", "0.0.0.0:8081", "172.17.0.3:80", false),
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
        assert_eq!(
            want("a", "0.0.0.0:8080", "172.17.0.2:80", true).spec,
            "8080:80/tcp"
        );
        assert_eq!(
            want("a", "0.0.0.0:8080", "172.17.0.2:80", false).spec,
            "0.0.0.0:8080:80/tcp"
        );
        assert_eq!(
            want("a", "127.0.0.1:9000", "172.17.0.2:90", false).spec,
            "127.0.0.1:9000:90/tcp"
        );
        // Each spec parses as Docker's -p text.
        for w in [
            want("a", "0.0.0.0:8080", "172.17.0.2:80", true),
            want("a", "[::1]:8080", "172.17.0.2:80", false),
        ] {
            assert!(w.spec.parse::<portproxy::PortSpec>().is_ok(), "{}", w.spec);
        }
    }
}
