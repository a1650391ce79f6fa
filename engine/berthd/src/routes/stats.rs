//! `GET /containers/{id}/stats`: one sample or a stream, one per second.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::{ApiResult, AppState, Q, bool_or, json_response};
use crate::api::error::ApiError;
use crate::api::stats;

/// How far apart the samples of a stats stream are (and the two of a single answer).
pub(crate) const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// `GET /containers/{id}/stats?stream=&one-shot=`. Without `stream` (the default is true), one
/// object whose `precpu_stats` is a sample taken a second before (so the client can compute
/// CPU %), or with `one-shot` a single sample at once. With `stream`, one object per second,
/// each against the one before, until the client goes; a stopped container gives zeroed
/// objects, and the stream ends when it is removed. The samples are read without the
/// engine's lock, and the body is produced only as fast as the client reads it.
pub(crate) async fn container_stats(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let stream = bool_or(&q, "stream", true);
    let one_shot = bool_or(&q, "one-shot", false);
    if stream && one_shot {
        return Err(ApiError::bad(
            "cannot have stream=true and one-shot=true (one-shot is a single sample)",
        ));
    }
    let src = st.engine.lock().await.stats_source(&id)?;
    let id = src.id.clone();
    if !stream {
        let first = src.sample();
        let (cur, pre) = match first {
            Some(s) if !one_shot => {
                tokio::time::sleep(STATS_INTERVAL).await;
                let again = st.engine.lock().await.stats_source(&id).ok();
                (again.and_then(|a| a.sample()), Some(s))
            }
            other => (other, None),
        };
        let pre = pre.filter(|_| cur.is_some());
        let v = stats::stats_json(&id, &src.name, cur.as_ref(), pre.as_ref());
        return Ok(json_response(StatusCode::OK, v));
    }
    let first = src.sample();
    let body = futures::stream::unfold((st, id, first), |(st, id, prev)| async move {
        tokio::time::sleep(STATS_INTERVAL).await;
        // Removed meanwhile: the stream ends.
        let src = st.engine.lock().await.stats_source(&id).ok()?;
        let cur = src.sample();
        let pre = prev.filter(|_| cur.is_some());
        let v = stats::stats_json(&id, &src.name, cur.as_ref(), pre.as_ref());
        let line = Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n")));
        Some((line, (st, id, cur)))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}
