//! `GET /containers/{id}/logs`: read and followed outside every lock, streamed through a
//! bounded channel.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use engine::container::{LogFollower, LogOptions, LogWatch};
use engine::runtime::logs::LogLine;

use super::{ApiResult, AppState, Q, flag};
use crate::api::error::ApiError;

/// A log line as logs and attach send it: raw with a TTY, else in a stream frame.
fn frame(l: &LogLine, tty: bool, timestamps: bool) -> Bytes {
    let text = if timestamps {
        format!("{} {}", l.time, l.log)
    } else {
        l.log.clone()
    };
    if tty {
        return Bytes::from(text);
    }
    let stream = if l.stream == "stderr" { 2 } else { 1 };
    let mut b = berth_api::stream::frame_header(stream, text.len()).to_vec();
    b.extend_from_slice(text.as_bytes());
    Bytes::from(b)
}

/// Container `id`'s log so far, framed as attach sends it (`logs=1`): read off the async
/// workers into a bounded channel that ends with the log.
pub(crate) async fn past_frames(
    st: &AppState,
    id: &str,
    stdout: bool,
    stderr: bool,
) -> Result<tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>, ApiError> {
    let (tty, path, max_file) = {
        let e = st.engine.lock().await;
        let tty = e.get(id)?.options.tty;
        let (path, max_file) = e.log_source(id)?;
        (tty, path, max_file)
    };
    let opts = LogOptions {
        tail: None,
        since: None,
        until: None,
        stdout,
        stderr,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        let r = engine::container::logs::read(&path, max_file, &opts, None, |l| {
            tx.blocking_send(Ok(frame(&l, tty, false))).is_ok()
        });
        if let Err(err) = r {
            let _ = tx.blocking_send(Err(err));
        }
    });
    Ok(rx)
}

pub(crate) async fn container_logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let opts = LogOptions {
        tail: q.get("tail").and_then(|t| t.parse().ok()),
        since: q
            .get("since")
            .filter(|s| !s.is_empty() && *s != "0")
            .cloned(),
        until: q
            .get("until")
            .filter(|s| !s.is_empty() && *s != "0")
            .cloned(),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad(
            "you must choose at least one stream (stdout=1 and/or stderr=1)",
        ));
    }
    let timestamps = flag(&q, "timestamps");
    let follow = flag(&q, "follow");
    // The engine only says where the log is; reading happens outside it.
    let (tty, path, max_file, state, watch, follower) = {
        let e = st.engine.lock().await;
        let tty = e.get(&id)?.options.tty;
        let (path, max_file) = e.log_source(&id)?;
        // For --follow, the watch and the follower's place come before the read of what is
        // there, so nothing written meanwhile is missed.
        let follow_parts = if follow {
            let watch = LogWatch::new(&path)
                .map_err(|err| ApiError::internal(format!("watching the log of {id}: {err}")))?;
            Some((e.subscribe(&id)?, watch, LogFollower::from_end(&path)))
        } else {
            None
        };
        match follow_parts {
            Some((s, w, f)) => (tty, path, max_file, Some(s), Some(w), Some(f)),
            None => (tty, path, max_file, None, None, None),
        }
    };
    let frame = move |l: &LogLine| -> Bytes { frame(l, tty, timestamps) };
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    // Bounded: a slow client holds at most this many frames, however fast the log grows.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    // The history ends where the follower begins: no line twice.
    let mark = follower.as_ref().and_then(LogFollower::mark);
    let past = {
        let tx = tx.clone();
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || {
            let r = engine::container::logs::read(&path, max_file, &opts, mark, |l| {
                tx.blocking_send(Ok(frame(&l))).is_ok()
            });
            if let Err(err) = r {
                let _ = tx.blocking_send(Err(err));
            }
        })
    };
    if let (Some(mut state), Some(mut watch), Some(mut follower)) = (state, watch, follower) {
        let (want_out, want_err) = (opts.stdout, opts.stderr);
        tokio::spawn(async move {
            if past.await.is_err() || tx.is_closed() {
                return;
            }
            loop {
                // Looked at before the drain: once it is seen ended, the drain that follows
                // reads everything it wrote.
                let live = {
                    let s = state.borrow_and_update();
                    s.state.status.is_live()
                        || s.state.status == engine::container::Status::Restarting
                };
                // What was appended, a bounded batch at a time.
                loop {
                    let batch = match follower.poll(256) {
                        Ok(b) => b,
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for l in batch.iter().filter(|l| {
                        if l.stream == "stderr" {
                            want_err
                        } else {
                            want_out
                        }
                    }) {
                        if tx.send(Ok(frame(l))).await.is_err() {
                            return;
                        }
                    }
                }
                if !live {
                    return;
                }
                // Woken by the log, by the container's state, or by the client leaving.
                tokio::select! {
                    () = tx.closed() => return,
                    r = watch.changed() => if r.is_err() { return },
                    // Removed: one last look at the log.
                    r = state.changed() => if r.is_err() { continue },
                }
            }
        });
    }
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        super::body::channel_body(rx),
    )
        .into_response())
}
