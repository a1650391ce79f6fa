//! Attach and exec over HTTP: the connection is upgraded (101, `Upgrade: tcp`) and carries raw
//! bytes both ways between the client and the shim's attach socket. Without a TTY the shim's
//! framing goes through unchanged (Docker's multiplexed stream); with one, the frames are
//! unwrapped to raw bytes. The client's half-close reaches the shim as a half-close.

use std::collections::HashMap;
use std::os::unix::net::UnixStream as StdUnixStream;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::stream::next_frame;
use engine::container::ops::Attached;
use engine::container::{ContainerError, ExecOptions};
use engine::runtime::attach::{AttachRequest, parse_detach_keys};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::api::error::ApiError;
use crate::routes::AppState;

use super::Q;

use super::query::flag;

fn upgraded_response(tty: bool) -> Response {
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, ct)
        .body(Body::empty())
        .expect("a static response")
}

/// Copies between the upgraded client connection and the shim's socket until both ends are
/// done; with `tty`, the shim's frames are unwrapped. `before_close` runs between the end of
/// the output and closing the client (an exec records its exit code there, so a client that
/// inspects the exec as soon as its stream ends sees it).
async fn pump<C, F>(client: C, shim: StdUnixStream, tty: bool, before_close: F)
where
    C: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = ()>,
{
    if shim.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(shim) = tokio::net::UnixStream::from_std(shim) else {
        return;
    };
    let (mut shim_r, mut shim_w) = shim.into_split();
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let input = async move {
        let _ = tokio::io::copy(&mut client_r, &mut shim_w).await;
        // The client's half-close: the shim closes stdin (StdinOnce).
        let _ = shim_w.shutdown().await;
    };
    let output = async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        // Ends at the shim's EOF or the client's write error; either way `before_close` runs.
        'copy: loop {
            let n = match shim_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !tty {
                if client_w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            let mut used = 0;
            while let Ok(Some((_, r))) = next_frame(&pending[used..]) {
                let (s, e) = (used + r.start, used + r.end);
                if client_w.write_all(&pending[s..e]).await.is_err() {
                    break 'copy;
                }
                used = e;
            }
            pending.drain(..used);
        }
        let _ = client_w.flush().await;
        before_close.await;
        let _ = client_w.shutdown().await;
    };
    // Output ends the session (the process ended, or the client detached); input may not.
    let mut input = std::pin::pin!(input);
    let mut output = std::pin::pin!(output);
    let input_first = tokio::select! {
        () = &mut output => false,
        () = &mut input => true,
    };
    if input_first {
        output.await;
    } else {
        // A lingering close: the output's end (FIN) is out; what the client still sends (a
        // last keystroke, an EOF from its terminal) is read until it closes, as it does on
        // that FIN. Dropping the connection with those bytes unread would reset it, and the
        // client would report the reset instead of the container's exit.
        let _ = tokio::time::timeout(LINGER, input).await;
    }
}

/// How long a closing attach waits for its client to close too.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// `POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=...`.
pub async fn container_attach(
    State(st): State<AppState>,
    Path(what): Path<String>,
    q: Q,
    mut req: Request,
) -> Result<Response, ApiError> {
    let keys = parse_detach_keys(q.get("detachKeys").map_or("", String::as_str))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let areq = AttachRequest {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        detach_keys: keys,
    };
    // Looked at, and queued when it does not run yet, in order with its starts.
    let id = st.resolve(&what)?;
    let tty = st.containers().get(&id)?.container.options.tty;
    // `logs=1`: what it wrote so far comes first; `stream=0` (Docker's default): only that.
    let mut past = if flag(&q, "logs") && (areq.stdout || areq.stderr) {
        Some(super::logs::past_frames(&st, &id, areq.stdout, areq.stderr).await?)
    } else {
        None
    };
    if !flag(&q, "stream") {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let rx = past.take().unwrap_or(rx);
        drop(tx);
        if !req.headers().contains_key(header::UPGRADE) {
            let ct = if tty {
                "application/vnd.docker.raw-stream"
            } else {
                "application/vnd.docker.multiplexed-stream"
            };
            return Ok(
                ([(header::CONTENT_TYPE, ct)], super::body::channel_body(rx)).into_response(),
            );
        }
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(up) = upgrade.await else { return };
            let mut io = TokioIo::new(up);
            let _ = write_all_frames(&mut io, rx).await;
            let _ = io.shutdown().await;
        });
        return Ok(upgraded_response(tty));
    }
    let attached = st.ops.attach(&id, areq).await?;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = upgrade.await else { return };
        let mut io = TokioIo::new(up);
        if let Some(rx) = past {
            if write_all_frames(&mut io, rx).await.is_err() {
                return;
            }
        }
        let up = io;
        let shim = match attached {
            Attached::Now(s) => s,
            // Dropped (the container removed, or the entry pruned) ends the wait.
            Attached::OnStart(rx) => match rx.await {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        pump(up, shim, tty, async {}).await;
    });
    Ok(upgraded_response(tty))
}

/// Writes every frame of `rx` to the client (an error in the log ends the copy).
async fn write_all_frames<W: AsyncWrite + Unpin>(
    out: &mut W,
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> std::io::Result<()> {
    while let Some(chunk) = rx.recv().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct ExecCreate {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: String,
    user: String,
    detach_keys: String,
    privileged: bool,
}

/// `POST /containers/{id}/exec`.
pub async fn exec_create(
    State(st): State<AppState>,
    Path(what): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: ExecCreate = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid exec config: {e}")))?;
    if req.privileged {
        return Err(ApiError::bad(
            "Privileged exec is not supported by berth (valid: false)",
        ));
    }
    let keys = parse_detach_keys(&req.detach_keys).map_err(|e| ApiError::bad(e.to_string()))?;
    let opts = ExecOptions {
        cmd: req.cmd.unwrap_or_default(),
        env: req.env.unwrap_or_default(),
        workdir: Some(req.working_dir).filter(|w| !w.is_empty()),
        user: Some(req.user).filter(|u| !u.is_empty()),
        tty: req.tty,
        open_stdin: req.attach_stdin,
    };
    let streams = (req.attach_stdin, req.attach_stdout, req.attach_stderr);
    let id = st.execs.create(&what, opts, streams, keys).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({"Id": id}))).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct ExecStart {
    detach: bool,
}

/// `POST /exec/{id}/start`: detached (200) or upgraded to the exec's streams (101). An attached
/// exec starts only once the connection is upgraded: a client reading the 101 through a
/// buffered reader (docker-py) would otherwise swallow the first output with the headers.
pub async fn exec_start(
    State(st): State<AppState>,
    Path(exec_id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| ApiError::bad(format!("reading the request: {e}")))?;
    let start: ExecStart = if body.is_empty() {
        ExecStart::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad(format!("invalid exec start: {e}")))?
    };
    let claimed = st.execs.claim(&exec_id)?;
    let rec = claimed.record().clone();
    let tty = rec.opts.tty;
    if start.detach {
        // The table records its end; nothing waits here.
        st.execs.start(claimed, None).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let attach = AttachRequest {
        stdin: rec.streams.0,
        stdout: rec.streams.1,
        stderr: rec.streams.2,
        detach_keys: rec.detach_keys.clone(),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let started = match upgrade.await {
            Ok(up) => (up, st.execs.start(claimed, Some(attach)).await),
            Err(_) => {
                // The client went away before its upgrade: the exec never runs.
                st.execs.abandon(claimed);
                return;
            }
        };
        let mut io = TokioIo::new(started.0);
        match started.1 {
            Ok(started) => {
                let Some(shim) = started.stream else {
                    return;
                };
                // The stream closes once the exit is recorded (the CLI inspects the exec at
                // EOF), or after 2 s (a detached client).
                let finish = async {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), started.ended)
                        .await;
                };
                pump(io, shim, tty, finish).await;
            }
            Err(e) => {
                // As Docker: the runtime's message on the stream, the code in exec inspect.
                let text = match e {
                    ContainerError::Exec { message, .. } => {
                        format!("OCI runtime exec failed: {message}\r\n")
                    }
                    other => format!("{other}\r\n"),
                };
                let mut b = Vec::new();
                if !tty {
                    b.extend_from_slice(&berth_api::stream::frame_header(1, text.len()));
                }
                b.extend_from_slice(text.as_bytes());
                let _ = io.write_all(&b).await;
                let _ = io.shutdown().await;
            }
        }
    });
    Ok(upgraded_response(tty))
}

/// `GET /exec/{id}/json`.
pub async fn exec_inspect(
    State(st): State<AppState>,
    Path(exec_id): Path<String>,
) -> Result<Response, ApiError> {
    let r = st.execs.inspect(&exec_id)?;
    Ok(axum::Json(json!({
        "ID": exec_id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ProcessConfig": {
            "tty": r.opts.tty,
            "entrypoint": r.opts.cmd.first(),
            "arguments": r.opts.cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": false,
            "user": r.opts.user.clone().unwrap_or_default(),
        },
        "OpenStdin": r.streams.0,
        "OpenStdout": r.streams.1,
        "OpenStderr": r.streams.2,
        "CanRemove": false,
        "ContainerID": r.container,
        "DetachKeys": "",
        "Pid": r.pid,
    }))
    .into_response())
}

fn size(q: &HashMap<String, String>) -> Result<(u16, u16), ApiError> {
    let get = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| ApiError::bad(format!("resize: invalid or missing {k} (give 1..65535)")))
    };
    Ok((get("h")?, get("w")?))
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn container_resize(
    State(st): State<AppState>,
    Path(what): Path<String>,
    q: Q,
) -> Result<Response, ApiError> {
    let (h, w) = size(&q)?;
    // Looked up under the engine's lock; the shim is asked without it.
    let (dir, name) = st.engine.lock().await.shim_dir(&what, true)?;
    tokio::task::spawn_blocking(move || engine::container::exec::resize_terminal(&dir, h, w))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            ApiError::internal(format!("resizing the terminal of container {name}: {e}"))
        })?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn exec_resize(
    State(st): State<AppState>,
    Path(exec_id): Path<String>,
    q: Q,
) -> Result<Response, ApiError> {
    let (h, w) = size(&q)?;
    st.execs.resize(&exec_id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}
