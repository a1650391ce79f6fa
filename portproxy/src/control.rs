//! The control protocol: newline-delimited JSON over a Unix stream socket.
//!
//! One request per line, one response line per request, in order. Requests:
//!
//! ```text
//! {"op":"ping"}
//! {"op":"publish","spec":"8080:80/tcp","container_ip":"172.17.0.2","transparent":false}
//! {"op":"unpublish","id":3}
//! {"op":"get","id":3}
//! {"op":"list"}
//! ```
//!
//! Every response is `{"ok":true,"published":[...]}` or `{"ok":false,"error":"..."}`; `published`
//! holds the affected or listed publications with their counters. Lines are capped at
//! [`MAX_LINE`] bytes and clients at [`MAX_CLIENTS`], so a misbehaving client costs bounded memory.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::proxy::{Proxy, PublishRequest, PublishedInfo};
use crate::spec::PortSpec;

/// Longest request line accepted, newline included.
pub const MAX_LINE: usize = 64 * 1024;
/// Control clients served at once; more wait in the socket backlog.
pub const MAX_CLIENTS: usize = 64;
/// A control client silent for this long is disconnected, so idle clients cannot hold every slot.
pub const CLIENT_IDLE: std::time::Duration = std::time::Duration::from_secs(300);
/// Longest response a [`Client`] reads (a `list` of many ranges is large).
pub const MAX_RESPONSE: usize = 256 * 1024 * 1024;

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Liveness check; answers ok with nothing published.
    Ping,
    /// Publish a `-p` specification to a container address.
    Publish {
        /// Docker's `-p` text.
        spec: String,
        /// Where the ports forward to.
        container_ip: IpAddr,
        /// Preserve client addresses.
        #[serde(default)]
        transparent: bool,
    },
    /// Remove a publication.
    Unpublish {
        /// Its id.
        id: u64,
    },
    /// One publication with counters.
    Get {
        /// Its id.
        id: u64,
    },
    /// Every publication with counters.
    List,
}

/// A control response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The publications the request touched or listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<PublishedInfo>,
}

impl Response {
    fn ok(published: Vec<PublishedInfo>) -> Response {
        Response {
            ok: true,
            error: None,
            published,
        }
    }

    fn err(e: impl ToString) -> Response {
        Response {
            ok: false,
            error: Some(e.to_string()),
            published: Vec::new(),
        }
    }
}

/// Why a request line was refused before reaching the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Over [`MAX_LINE`] bytes.
    #[error("request line is longer than {MAX_LINE} bytes")]
    TooLong,
    /// Not one of the requests above.
    #[error("malformed request: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The socket failed.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
}

/// Parses one request line (without or with its newline). Pure; the fuzz target's entry point.
pub fn parse_request(line: &[u8]) -> Result<Request, ControlError> {
    if line.len() > MAX_LINE {
        return Err(ControlError::TooLong);
    }
    Ok(serde_json::from_slice(line)?)
}

/// Carries out one request against `proxy`.
pub async fn handle(proxy: &Proxy, req: Request) -> Response {
    let res = match req {
        Request::Ping => return Response::ok(Vec::new()),
        Request::List => return Response::ok(proxy.list()),
        Request::Publish {
            spec,
            container_ip,
            transparent,
        } => spec
            .parse::<PortSpec>()
            .map_err(crate::ProxyError::from)
            .and_then(|spec| {
                proxy.publish(&PublishRequest {
                    spec,
                    container_ip,
                    transparent,
                })
            }),
        Request::Unpublish { id } => proxy.unpublish(id).await,
        Request::Get { id } => proxy.get(id),
    };
    match res {
        Ok(info) => Response::ok(vec![info]),
        Err(e) => Response::err(e),
    }
}

/// Reads one line of at most `max` bytes; `None` at end of stream.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Option<()>, ControlError> {
    buf.clear();
    let n = r.take(max as u64 + 1).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() > max {
        return Err(ControlError::TooLong);
    }
    Ok(Some(()))
}

async fn serve_client(proxy: Proxy, stream: UnixStream) -> Result<(), ControlError> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        let Ok(read) =
            tokio::time::timeout(CLIENT_IDLE, read_line(&mut r, &mut line, MAX_LINE)).await
        else {
            return Ok(()); // idle for too long
        };
        if read?.is_none() {
            return Ok(());
        }
        let resp = match parse_request(&line) {
            Ok(req) => handle(&proxy, req).await,
            Err(e) => Response::err(e),
        };
        let mut out = serde_json::to_vec(&resp).map_err(ControlError::Malformed)?;
        out.push(b'\n');
        w.write_all(&out).await?;
    }
}

/// Serves the control protocol on `listener` until `shutdown` completes.
pub async fn serve(listener: UnixListener, proxy: Proxy, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "control accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = serve_client(proxy, stream).await {
                debug!(error = %e, "control client dropped");
            }
        });
    }
}

/// Binds the control socket at `path` (mode 0600), replacing a stale socket file that nothing
/// listens on. Refuses when another proxy is live there.
pub async fn bind(path: &Path) -> io::Result<UnixListener> {
    let l = bind_blocking(path)?;
    l.set_nonblocking(true)?;
    UnixListener::from_std(l)
}

/// [`bind`] without a runtime: what `berth-proxy serve --detach` does before it forks, so the
/// socket listens by the time the process that started it sees it exit.
pub fn bind_blocking(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a proxy already listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Created with umask 0177 so the socket is never reachable by others, not even between
    // bind and a chmod. umask is process-wide; bind runs before the proxy creates anything else.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    l
}

/// A client of the control socket, for `berth-proxy ctl`, berthd and tests.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    line: Vec<u8>,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub async fn connect(path: &Path) -> io::Result<Client> {
        let (r, w) = UnixStream::connect(path).await?.into_split();
        Ok(Client {
            reader: BufReader::new(r),
            writer: w,
            line: Vec::new(),
        })
    }

    /// Sends one request and reads its response.
    pub async fn call(&mut self, req: &Request) -> Result<Response, ControlError> {
        let mut out = serde_json::to_vec(req)?;
        out.push(b'\n');
        self.writer.write_all(&out).await?;
        if read_line(&mut self.reader, &mut self.line, MAX_RESPONSE)
            .await?
            .is_none()
        {
            return Err(ControlError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(serde_json::from_slice(&self.line)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyConfig;

    #[test]
    fn parses_documented_requests() {
        assert_eq!(parse_request(br#"{"op":"ping"}"#).unwrap(), Request::Ping);
        assert_eq!(
            parse_request(b"{\"op\":\"unpublish\",\"id\":3}\n").unwrap(),
            Request::Unpublish { id: 3 }
        );
        let r = parse_request(br#"{"op":"publish","spec":"8080:80","container_ip":"10.0.0.2"}"#)
            .unwrap();
        assert!(matches!(
            r,
            Request::Publish {
                transparent: false,
                ..
            }
        ));
        assert!(parse_request(br#"{"op":"format_disk"}"#).is_err());
        assert!(parse_request(br#"{"op":"get","id":1,"x":2}"#).is_err());
        assert!(matches!(
            parse_request(&vec![b' '; MAX_LINE + 1]),
            Err(ControlError::TooLong)
        ));
    }

    #[tokio::test]
    async fn socket_round_trip_and_clear_errors() {
        let dir = std::env::temp_dir().join(format!("berth-ctl-{}", std::process::id()));
        let path = dir.join("proxy.sock");
        let listener = bind(&path).await.unwrap();
        assert!(
            bind(&path).await.is_err(),
            "a second proxy must not steal a live socket"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "control socket mode {mode:o}");
        let proxy = Proxy::new(ProxyConfig::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, proxy, async {
            let _ = rx.await;
        }));
        let mut c = Client::connect(&path).await.unwrap();
        assert!(c.call(&Request::Ping).await.unwrap().ok);
        let r = c
            .call(&Request::Publish {
                spec: "127.0.0.1:0:80/sctp".into(),
                container_ip: "127.0.0.1".parse().unwrap(),
                transparent: false,
            })
            .await
            .unwrap();
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("\"sctp\""));
        let r = c
            .call(&Request::Publish {
                spec: "127.0.0.1::80/udp".into(),
                container_ip: "127.0.0.1".parse().unwrap(),
                transparent: false,
            })
            .await
            .unwrap();
        assert!(r.ok, "{r:?}");
        let id = r.published[0].id;
        let l = c.call(&Request::List).await.unwrap();
        assert_eq!(l.published.len(), 1);
        assert!(c.call(&Request::Unpublish { id }).await.unwrap().ok);
        let r = c.call(&Request::Unpublish { id }).await.unwrap();
        assert_eq!(r.error.unwrap(), format!("no publication with id {id}"));
        tx.send(()).unwrap();
        server.await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
