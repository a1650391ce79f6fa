//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive`. The engine opens the
//! container's file system under its lock ([`engine::container::Engine::archive_root`]); the
//! work happens outside it, on blocking threads: a `GET` streams the tar through a bounded
//! channel as it is written, a `PUT` extracts the request body as it arrives.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::archive::PathStat;
use engine::container::archive::ArchiveError;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::api::error::ApiError;
use crate::routes::AppState;

/// Docker's header carrying the stat of the path.
pub const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

type Q = Query<HashMap<String, String>>;

/// An archive error in Docker's shape (404 missing, 400 not a directory, ...).
pub fn api_error(e: ArchiveError) -> ApiError {
    ApiError {
        status: e.status(),
        message: e.to_string(),
    }
}

fn path_param(q: &HashMap<String, String>) -> Result<String, ApiError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.clone()),
        _ => Err(ApiError::bad("path is required (the path query parameter)")),
    }
}

use super::query::flag;

fn with_stat(mut resp: Response, stat: &PathStat) -> Response {
    if let Ok(v) = HeaderValue::from_str(&stat.header()) {
        resp.headers_mut().insert(STAT_HEADER, v);
    }
    resp
}

/// The stack of a `docker cp` walk: 2,048 levels of the archiver's frames, with room to spare
/// (only what is used is ever touched).
const ARCHIVE_STACK: usize = 64 << 20;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("archive task: {e}")))?
}

/// `HEAD /containers/{id}/archive?path=P`: the stat header.
pub async fn archive_head(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let root = st.engine_unless_starting(&id).await.archive_root(&id)?;
    let stat = blocking(move || root.stat(&path).map_err(api_error)).await?;
    Ok(with_stat(StatusCode::OK.into_response(), &stat))
}

/// Writes into a bounded channel in 64 KiB chunks: the tar is never held whole.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// `GET /containers/{id}/archive?path=P`: the stat header and a tar of P, streamed.
pub async fn archive_get(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let root = {
        let e = st.engine_unless_starting(&id).await;
        let root = e.archive_root(&id)?;
        e.emit_container(&id, "archive-path", &[]);
        root
    };
    // A running container is held still while the path is looked up. The walk after it goes
    // by descriptor (O_NOFOLLOW from the directory it found) so renames cannot redirect it,
    // and it lasts as long as the client reads: it runs thawed, or a stalled client would
    // hold the container frozen.
    let (resolved, stat, root) = blocking(move || {
        let still = root.hold_still().map_err(api_error)?;
        let r = root.resolve(&path).map_err(api_error)?;
        let stat = root.stat_resolved(&r).map_err(api_error)?;
        drop(still);
        Ok((r, stat, root))
    })
    .await?;
    let mut resp = tar_response(root, resolved)?;
    resp = with_stat(resp, &stat);
    Ok(resp)
}

/// A response streaming the tar of `resolved` in `root`, written by a walker thread into a
/// bounded channel.
fn tar_response(
    root: engine::container::archive::ArchiveRoot,
    resolved: engine::container::archive::Resolved,
) -> Result<Response, ApiError> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    // The walk recurses once per level (at most PATH_MAX / 2 levels): a thread with room
    // for that, not the blocking pool's 2 MiB.
    let walker = std::thread::Builder::new()
        .name("berth-archive".into())
        .stack_size(ARCHIVE_STACK);
    let spawned = walker.spawn(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = root.write_tar(&resolved, &mut w) {
            tracing::warn!(error = %e, "archiving a container's files");
            // The body ends in an error: the client sees a broken transfer, not a short tar.
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    spawned.map_err(|e| ApiError::internal(format!("archiving: {e}")))?;
    let mut resp = Response::new(super::body::channel_body(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// `GET /containers/{id}/export` (`docker export`): the container's root file system (its
/// image and its changes, without its volumes and binds) as a tar, streamed. A running
/// container is not paused (as Docker).
pub async fn container_export(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut root = {
        let e = st.engine_unless_starting(&id).await;
        let root = e.archive_root(&id)?;
        e.emit_container(&id, "export", &[]);
        root
    };
    root.mounts.clear();
    root.freezer = None;
    let (resolved, root) = blocking(move || {
        let r = root.resolve("/").map_err(api_error)?;
        Ok((r, root))
    })
    .await?;
    tar_response(root, resolved)
}

/// A request body read synchronously, chunk by chunk, from a blocking thread.
struct BodyReader {
    stream: BodyDataStream,
    handle: tokio::runtime::Handle,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// `PUT /containers/{id}/archive?path=DIR[&copyUIDGID=1]`: extracts the body (a tar, plain,
/// gzip or zstd) into the existing directory DIR.
pub async fn archive_put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
    body: Body,
) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let preserve = flag(&q, "copyUIDGID");
    let root = {
        let e = st.engine_unless_starting(&id).await;
        let root = e.archive_root(&id)?;
        e.emit_container(&id, "extract-to-dir", &[]);
        root
    };
    let mut reader = BodyReader {
        stream: body.into_data_stream(),
        handle: tokio::runtime::Handle::current(),
        cur: Bytes::new(),
    };
    let scratch = st.scratch.clone();
    blocking(move || {
        // The whole body first, into an unlinked scratch file: the container is frozen for
        // the extraction only, never for as long as a slow client takes to send.
        std::fs::create_dir_all(&scratch).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut spool =
            tempfile::tempfile_in(&scratch).map_err(|e| ApiError::internal(e.to_string()))?;
        std::io::copy(&mut reader, &mut spool)
            .map_err(|e| ApiError::bad(format!("reading the archive for {path}: {e}")))?;
        std::io::Seek::rewind(&mut spool).map_err(|e| ApiError::internal(e.to_string()))?;
        root.extract(&path, std::io::BufReader::new(spool), preserve)
            .map_err(api_error)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_docker_status_and_message() {
        let e = api_error(ArchiveError::NotFound {
            path: "/nope".into(),
            container: "web".into(),
        });
        assert_eq!(e.status, 404);
        assert_eq!(e.message, "Could not find the file /nope in container web");
        let e = api_error(ArchiveError::NotDirectory {
            path: "/etc/passwd".into(),
            container: "web".into(),
        });
        assert_eq!(e.status, 400);
        let q: HashMap<String, String> = [("path".to_string(), String::new())].into();
        assert_eq!(path_param(&q).unwrap_err().status, 400);
    }

    #[test]
    fn the_writer_sends_bounded_chunks() {
        let (tx, mut rx) = mpsc::channel(4);
        let t = std::thread::spawn(move || {
            let mut w = ChannelWriter {
                tx,
                buf: Vec::new(),
            };
            w.write_all(&vec![7u8; CHUNK * 2 + 10]).unwrap();
            w.flush().unwrap();
        });
        let mut sizes = Vec::new();
        while let Some(Ok(b)) = rx.blocking_recv() {
            sizes.push(b.len());
        }
        t.join().unwrap();
        assert_eq!(sizes, [CHUNK, CHUNK, 10]);
    }
}
