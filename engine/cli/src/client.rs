//! The HTTP/1.1 client of berthd's API socket: one connection per request (the socket is
//! local, so a connection costs microseconds), JSON in and out, streamed bodies for pull,
//! push, logs -f and load, and the upgrade to a raw stream that attach and exec use.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

/// The header of a JSON body.
pub const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// The API version berth speaks; berthd serves it (and older ones).
pub const API_VERSION: &str = "1.43";

/// Why a call to berthd failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is not there or nobody listens.
    #[error("Cannot connect to the berth daemon at unix://{}: {source}. Is berthd running?", .sock.display())]
    Connect {
        /// The socket tried.
        sock: PathBuf,
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
    #[error("talking to berthd at unix://{}: {message}", .sock.display())]
    Transport {
        /// The socket.
        sock: PathBuf,
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
    sock: PathBuf,
}

impl Client {
    /// The berthd listening on `host` (`unix:///path` or a path).
    pub fn new(host: &str) -> Result<Client, String> {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        if path.is_empty() || host.contains("://") && !host.starts_with("unix://") {
            return Err(format!(
                "invalid host {host:?}: berth reaches berthd over a Unix socket (valid: unix:///run/berth/berth.sock or a path)"
            ));
        }
        Ok(Client {
            sock: PathBuf::from(path),
        })
    }

    /// The socket.
    pub fn sock(&self) -> &Path {
        &self.sock
    }

    fn transport(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            sock: self.sock.clone(),
            message: e.to_string(),
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
        let stream =
            UnixStream::connect(&self.sock)
                .await
                .map_err(|source| ClientError::Connect {
                    sock: self.sock.clone(),
                    source,
                })?;
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
            Client::new("unix:///run/berth/berth.sock").unwrap().sock(),
            Path::new("/run/berth/berth.sock")
        );
        assert_eq!(
            Client::new("/tmp/x.sock").unwrap().sock(),
            Path::new("/tmp/x.sock")
        );
        let e = Client::new("tcp://1.2.3.4:2375").unwrap_err();
        assert!(
            e.contains("tcp://1.2.3.4:2375") && e.contains("valid"),
            "{e}"
        );
        assert!(Client::new("unix://").is_err());
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
