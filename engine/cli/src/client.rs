//! The HTTP/1.1 client of berthd's API socket: one connection per request (the socket is
//! local, so a connection costs microseconds), JSON in and out, streamed bodies for pull,
//! push, logs -f and load, and the upgrade to a raw stream that attach and exec use. The same
//! over TCP with mutual TLS (`tcp://host:port`): berthd's certificate is verified against the CA
//! (its name or IP), and berth presents its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

/// The header of a JSON body.
pub const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// The API version berth speaks; berthd serves it (and older ones).
pub const API_VERSION: &str = "1.43";

/// Why a call to berthd failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is not there or nobody listens.
    #[error("Cannot connect to the berth daemon at {host}: {source}. Is berthd running?")]
    Connect {
        /// The host tried (`unix:///path`, `tcp://host:port`).
        host: String,
        /// What the connect said.
        source: std::io::Error,
    },
    /// berthd answered with an error status.
    #[error("Error response from daemon: {message}")]
    Daemon {
        /// The HTTP status.
        status: u16,
        /// Its `message`.
        message: String,
    },
    /// The connection broke or the answer was not HTTP.
    #[error("talking to berthd at {host}: {message}")]
    Transport {
        /// The host (`unix:///path`, `tcp://host:port`).
        host: String,
        /// What went wrong.
        message: String,
    },
    /// The answer was not the JSON expected.
    #[error("berthd's answer to {path} is not what berth expected: {message}")]
    Decode {
        /// The request path.
        path: String,
        /// The decode error.
        message: String,
    },
}

impl ClientError {
    /// The status of a daemon error (404 for no such object), 0 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            ClientError::Daemon { status, .. } => *status,
            _ => 0,
        }
    }
}

/// A request body: nothing, bytes, or a stream read from a file or stdin.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON body.
pub fn json_body(v: &serde_json::Value) -> Body {
    Full::new(Bytes::from(v.to_string()))
        .map_err(|never| match never {})
        .boxed()
}

/// A body streamed from `reader` in 64 KiB chunks (load, import): nothing is held whole.
pub fn reader_body(reader: impl tokio::io::AsyncRead + Send + Sync + Unpin + 'static) -> Body {
    let chunks = futures::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    BodyExt::boxed(StreamBody::new(chunks))
}

/// A berthd to talk to.
#[derive(Debug, Clone)]
pub struct Client {
    /// `unix:///path` or `tcp://host:port`, for messages.
    host: String,
    transport: Transport,
}

/// How a request reaches berthd.
#[derive(Clone)]
enum Transport {
    /// Its Unix socket.
    Unix(PathBuf),
    /// TCP (`host:port`) with mutual TLS; the server's certificate must name `server_name`.
    Tls {
        addr: String,
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Unix(p) => f.debug_tuple("Unix").field(p).finish(),
            Transport::Tls {
                addr, server_name, ..
            } => f
                .debug_struct("Tls")
                .field("addr", addr)
                .field("server_name", server_name)
                .finish_non_exhaustive(),
        }
    }
}

/// A connection to berthd, either transport's.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The TCP address (`host:port`, port 2376 when not given) and the name berthd's certificate
/// must carry, of `tcp://host[:port]`.
pub fn tcp_host(host: &str) -> Result<(String, ServerName<'static>), String> {
    let invalid = |why: &str| format!("invalid host {host:?}: {why} (valid: tcp://host:port)");
    let rest = host
        .strip_prefix("tcp://")
        .ok_or_else(|| invalid("not tcp://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (name, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or_else(|| invalid("no ']'"))?;
        match after.strip_prefix(':') {
            Some(p) => (ip, p),
            None if after.is_empty() => (ip, "2376"),
            None => return Err(invalid("junk after ']'")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (rest, "2376"),
        }
    };
    if name.is_empty() {
        return Err(invalid("no host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| invalid("the port is not a number"))?;
    let server_name =
        ServerName::try_from(name.to_string()).map_err(|_| invalid("not a host name or IP"))?;
    let addr = if name.contains(':') {
        format!("[{name}]:{port}")
    } else {
        format!("{name}:{port}")
    };
    Ok((addr, server_name))
}

impl Client {
    /// The berthd listening on `host` (`unix:///path` or a path); a `tcp://` host needs TLS
    /// ([`Client::with_tls`]).
    pub fn new(host: &str) -> Result<Client, String> {
        if host.starts_with("tcp://") {
            return Err(format!(
                "refusing to connect to {host} without --tlsverify, --tlscacert, --tlscert and --tlskey (or BERTH_TLS_VERIFY=1 and BERTH_CERT_PATH): berth speaks TCP to berthd only over TLS with client certificates"
            ));
        }
        let path = host.strip_prefix("unix://").unwrap_or(host);
        if path.is_empty() || host.contains("://") && !host.starts_with("unix://") {
            return Err(format!(
                "invalid host {host:?}: berth reaches berthd over a Unix socket or TCP with TLS (valid: unix:///run/berth.sock, a path, tcp://host:port)"
            ));
        }
        Ok(Client {
            host: format!("unix://{path}"),
            transport: Transport::Unix(PathBuf::from(path)),
        })
    }

    /// The berthd listening on `tcp://host:port`, over TLS: its certificate verified against
    /// `ca` (and its name or IP), berth's own certificate `cert` with `key` presented.
    pub fn with_tls(host: &str, ca: &Path, cert: &Path, key: &Path) -> Result<Client, String> {
        let (addr, server_name) = tcp_host(host)?;
        let pems = |file: &Path| {
            CertificateDer::pem_file_iter(file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("reading the certificates of {}: {e}", file.display()))
                .and_then(|c| match c.is_empty() {
                    true => Err(format!("{} holds no PEM certificate", file.display())),
                    false => Ok(c),
                })
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in pems(ca)? {
            roots
                .add(c)
                .map_err(|e| format!("the CA certificate {}: {e}", ca.display()))?;
        }
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("reading the private key of {}: {e}", key.display()))?;
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(pems(cert)?, key_der)
        .map_err(|e| {
            format!(
                "the certificate {} with the key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
        Ok(Client {
            host: host.to_string(),
            transport: Transport::Tls {
                addr,
                connector: TlsConnector::from(Arc::new(cfg)),
                server_name,
            },
        })
    }

    /// The socket (`None` over TCP).
    pub fn sock(&self) -> Option<&Path> {
        match &self.transport {
            Transport::Unix(p) => Some(p),
            Transport::Tls { .. } => None,
        }
    }

    /// The host, `unix:///path` or `tcp://host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn transport(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            host: self.host.clone(),
            message: e.to_string(),
        }
    }

    /// A new connection to berthd (TLS handshake done).
    async fn connect(&self) -> Result<Box<dyn Io>, ClientError> {
        let refused = |source| ClientError::Connect {
            host: self.host.clone(),
            source,
        };
        match &self.transport {
            Transport::Unix(p) => Ok(Box::new(UnixStream::connect(p).await.map_err(refused)?)),
            Transport::Tls {
                addr,
                connector,
                server_name,
            } => {
                let tcp = TcpStream::connect(addr.as_str()).await.map_err(refused)?;
                let _ = tcp.set_nodelay(true);
                let tls = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| self.transport(format!("TLS handshake: {e}")))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// Sends one request; `upgrade` asks for the raw stream of attach and exec.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
        upgrade: bool,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.transport(e))?;
        tokio::spawn(async move {
            // Ends with the connection; its error is the request's, reported there.
            let _ = conn.with_upgrades().await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/v{API_VERSION}{path}"))
            .header("Host", "berth")
            .header("User-Agent", concat!("berth/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if upgrade {
            req = req.header("Connection", "Upgrade").header("Upgrade", "tcp");
        }
        let req = req.body(body).map_err(|e| self.transport(e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.transport(e))?;
        if resp.status().is_client_error() || resp.status().is_server_error() {
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.transport(e))?
                .to_bytes();
            return Err(ClientError::Daemon {
                status,
                message: error_message(status, &bytes),
            });
        }
        Ok(resp)
    }

    /// A request whose whole answer is read.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Bytes, ClientError> {
        let resp = match body {
            Some(v) => self.send(method, path, json_body(v), JSON, false).await?,
            None => self.send(method, path, empty(), &[], false).await?,
        };
        Ok(resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.transport(e))?
            .to_bytes())
    }

    /// A request whose answer is JSON of type `T`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let bytes = self.call(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None).await
    }

    /// `HEAD path`: the answer's headers (an error has no body, so its message is the status).
    pub async fn head(&self, path: &str) -> Result<hyper::HeaderMap, ClientError> {
        let resp = self.send(Method::HEAD, path, empty(), &[], false).await?;
        Ok(resp.headers().clone())
    }

    /// A request whose answer is read as it comes (pull, push, logs -f, save).
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<BodyStream, ClientError> {
        let resp = self.send(method, path, body, headers, false).await?;
        Ok(BodyStream {
            body: resp.into_body(),
            client: self.clone(),
        })
    }

    /// A request upgraded to a raw two-way stream (attach, exec start).
    pub async fn upgrade(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let resp = match body {
            Some(v) => {
                self.send(Method::POST, path, json_body(v), JSON, true)
                    .await?
            }
            None => self.send(Method::POST, path, empty(), &[], true).await?,
        };
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(self.transport(format!(
                "{path} answered {} instead of upgrading the connection",
                resp.status()
            )));
        }
        let up = hyper::upgrade::on(resp)
            .await
            .map_err(|e| self.transport(e))?;
        Ok(TokioIo::new(up))
    }
}

/// The `message` of an error body, or the body itself, or the status.
fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v["message"].as_str() {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        format!("status {status}")
    } else {
        text
    }
}

/// An answer read chunk by chunk.
#[derive(Debug)]
pub struct BodyStream {
    body: Incoming,
    client: Client,
}

impl BodyStream {
    /// The next chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(self.client.transport(e)),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Calls `each` with every whole line (without its newline) as it arrives; lines are
    /// bounded at 16 MiB so a daemon that never ends a line cannot exhaust memory.
    pub async fn lines(
        &mut self,
        mut each: impl FnMut(&[u8]) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(c) = self.chunk().await? {
            buf.extend_from_slice(&c);
            let mut start = 0;
            while let Some(i) = buf[start..].iter().position(|b| *b == b'\n') {
                each(&buf[start..start + i])?;
                start += i + 1;
            }
            buf.drain(..start);
            if buf.len() > 16 << 20 {
                return Err(self.client.transport("a line of the answer is over 16 MiB"));
            }
        }
        if !buf.is_empty() {
            each(&buf)?;
        }
        Ok(())
    }
}

/// Writes every chunk of `stream` to `out`.
pub async fn copy_to(
    stream: &mut BodyStream,
    out: &mut (impl std::io::Write + ?Sized),
) -> anyhow::Result<()> {
    while let Some(c) = stream.chunk().await? {
        out.write_all(&c)?;
    }
    out.flush()?;
    Ok(())
}

/// Percent-encodes a query value (names, JSON filters, references with `/` and `:`).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, `?a=1&b=2` (empty when there are none).
pub fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let parts: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", enc(&v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            Client::new("unix:///run/berth.sock").unwrap().sock(),
            Some(Path::new("/run/berth.sock"))
        );
        let c = Client::new("/tmp/x.sock").unwrap();
        assert_eq!(c.sock(), Some(Path::new("/tmp/x.sock")));
        assert_eq!(c.host(), "unix:///tmp/x.sock");
        let e = Client::new("tcp://1.2.3.4:2375").unwrap_err();
        assert!(
            e.contains("tcp://1.2.3.4:2375") && e.contains("--tlscacert"),
            "{e}"
        );
        let e = Client::new("ssh://box").unwrap_err();
        assert!(e.contains("ssh://box") && e.contains("valid"), "{e}");
        assert!(Client::new("unix://").is_err());
    }

    #[test]
    fn tcp_hosts() {
        let ok = |h: &str| {
            let (addr, name) = tcp_host(h).unwrap();
            (addr, name.to_str().into_owned())
        };
        assert_eq!(
            ok("tcp://127.0.0.1:2376"),
            ("127.0.0.1:2376".into(), "127.0.0.1".into())
        );
        assert_eq!(
            ok("tcp://berth.example:12376/"),
            ("berth.example:12376".into(), "berth.example".into())
        );
        assert_eq!(ok("tcp://[::1]:2376"), ("[::1]:2376".into(), "::1".into()));
        assert_eq!(ok("tcp://[::1]"), ("[::1]:2376".into(), "::1".into()));
        assert_eq!(ok("tcp://box"), ("box:2376".into(), "box".into()));
        for bad in [
            "tcp://",
            "tcp://:2376",
            "tcp://h:port",
            "tcp://h:99999",
            "tcp://[::1",
            "tcp://[::1]x",
            "unix:///x",
        ] {
            let e = tcp_host(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("valid"), "{e}");
        }
    }

    #[test]
    fn tls_files_are_named_when_bad() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = Client::with_tls("tcp://127.0.0.1:2376", &missing, &junk, &junk).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let e = Client::with_tls("tcp://127.0.0.1:2376", &junk, &junk, &junk).unwrap_err();
        assert!(e.contains("junk.pem"), "{e}");
    }

    #[test]
    fn query_encoding() {
        assert_eq!(query([]), "");
        assert_eq!(
            query([
                ("fromImage", "localhost:5000/a/b".to_string()),
                ("tag", "v1".into())
            ]),
            "?fromImage=localhost%3A5000%2Fa%2Fb&tag=v1"
        );
        assert_eq!(enc(r#"{"a":["b c"]}"#), "%7B%22a%22%3A%5B%22b%20c%22%5D%7D");
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(404, br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
        assert_eq!(error_message(500, b"plain text\n"), "plain text");
        assert_eq!(error_message(502, b""), "status 502");
    }
}
