//! Streamed response bodies, one way: a producer (a task, or a thread of the blocking pool)
//! sends chunks through a bounded channel and the body takes them as the client reads, so a
//! slow client slows its producer and no buffer grows.

use axum::body::{Body, Bytes};
use serde_json::Value;
use tokio::sync::mpsc;

/// A body of the chunks `rx` carries; an error ends it broken (the client sees a cut
/// transfer, not a short one that looks complete).
pub fn channel_body(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A body of Docker's JSON progress lines (`{"status": ...}\r\n`, as pull, push and load
/// answer), one per value `rx` carries.
pub fn json_lines_body(rx: mpsc::Receiver<Value>) -> Body {
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\r\n"))),
            rx,
        ))
    }))
}
