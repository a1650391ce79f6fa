//! Container routes: create, list, inspect, the lifecycle (start, stop, restart, kill, pause,
//! rename, rm, prune), wait and top. Thin: the lifecycle's ordering and Docker's rules (304s,
//! `--rm` after a failed start, what prune removes) are the engine's container backend's
//! ([`engine::container::ops::Ops`]).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use engine::container::ops::{Call, Started, Stopped, WaitCondition, wait_for};
use serde_json::{Value, json};

use super::{ApiResult, AppState, Q, flag, json_response, no_content, now_secs};
use crate::api::error::ApiError;
use crate::api::{create, filters, views};

pub(crate) async fn container_create(State(st): State<AppState>, q: Q, body: Bytes) -> ApiResult {
    let req = create::parse(&body)?;
    let opts = create::to_options(req, q.get("name").cloned())?;
    // The image is found, read and checked without the engine's lock; only the name, network,
    // volumes and record are taken under it.
    let ctx = st.create.clone();
    let prepared = tokio::task::spawn_blocking(move || ctx.prepare(opts))
        .await
        .map_err(|e| ApiError::internal(format!("preparing a create: {e}")))??;
    let id = st.engine.lock().await.create_prepared(prepared)?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({"Id": id, "Warnings": []}),
    ))
}

pub(crate) async fn container_list(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse_container_filters(q.get("filters").map(String::as_str))?;
    let all = flag(&q, "all");
    let limit: Option<usize> = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0);
    let index = st.containers();
    let mut rows: Vec<&engine::container::Entry> = index
        .entries()
        .map(|e| &**e)
        // `-n N`/`-l` list stopped containers too, as Docker's limit implies all.
        .filter(|e| {
            let c = &e.container;
            all || limit.is_some() || c.state.status.is_live() || f.contains_key("status")
        })
        .filter(|e| {
            filters::container_matches(&e.container, &views::network_names(&e.container), &f)
        })
        .collect();
    rows.sort_by(|a, b| {
        (&b.container.created, &b.container.id).cmp(&(&a.container.created, &a.container.id))
    });
    if let Some(l) = limit {
        rows.truncate(l);
    }
    let now = now_secs();
    let out = rows
        .into_iter()
        .map(|e| views::summary(&e.container, &e.endpoints, now))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

pub(crate) async fn container_inspect(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    let index = st.containers();
    let e = index.get(&id)?;
    Ok(json_response(
        StatusCode::OK,
        views::inspect(
            &e.container,
            &e.endpoints,
            &index.links_of(&e.container),
            &e.log_path.display().to_string(),
        ),
    ))
}

pub(crate) async fn container_start(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = st.resolve(&id)?;
    Ok(match st.ops.start(&id).await? {
        Started::AlreadyRunning => StatusCode::NOT_MODIFIED.into_response(),
        Started::Started => no_content(),
    })
}

pub(crate) fn timeout(q: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    match q.get("t").or_else(|| q.get("timeout")) {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            // -1: Docker waits for ever; a day stands for that.
            .map(|s| Some(Duration::from_secs(if s < 0 { 86_400 } else { s as u64 })))
            .map_err(|_| ApiError::bad(format!("invalid timeout {t:?}: give whole seconds"))),
    }
}

pub(crate) async fn container_stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let t = timeout(&q)?;
    let id = st.resolve(&id)?;
    Ok(match st.ops.stop(&id, t).await? {
        Stopped::NotRunning => StatusCode::NOT_MODIFIED.into_response(),
        Stopped::Stopped => no_content(),
    })
}

pub(crate) async fn container_restart(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let t = timeout(&q)?;
    let id = st.resolve(&id)?;
    st.ops.restart(&id, t).await?;
    Ok(no_content())
}

pub(crate) async fn container_kill(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let sig = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "KILL".into());
    let id = st.resolve(&id)?;
    // As Docker: a SIGKILL returns once the exit is recorded, so an inspect or an rm right
    // after sees the container stopped. Subscribed before the kill, so the exit is not missed.
    let kills = matches!(
        engine::container::signal_arg(&sig).as_deref(),
        Ok("KILL" | "9")
    );
    let rx = if kills {
        st.engine.lock().await.subscribe(&id).ok()
    } else {
        None
    };
    st.ops.call(&id, Call::Kill(sig)).await?;
    if let Some(mut rx) = rx {
        let exited = rx.wait_for(|p| !p.state.status.is_live());
        // Bounded: a process the kernel cannot reap (D state) does not hold the client forever.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), exited).await;
    }
    Ok(no_content())
}

pub(crate) async fn container_pause(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    st.ops.call(&st.resolve(&id)?, Call::Pause).await?;
    Ok(no_content())
}

pub(crate) async fn container_unpause(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    st.ops.call(&st.resolve(&id)?, Call::Unpause).await?;
    Ok(no_content())
}

pub(crate) async fn container_update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let u = crate::api::update::to_options(crate::api::update::parse(&body)?)?;
    st.ops.update(&st.resolve(&id)?, u).await?;
    Ok(axum::Json(serde_json::json!({"Warnings": []})).into_response())
}

pub(crate) async fn container_rename(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let name = q
        .get("name")
        .ok_or_else(|| ApiError::bad("rename: no new name given (the name parameter)"))?;
    st.engine.lock().await.rename(&id, name)?;
    Ok(no_content())
}

pub(crate) async fn container_delete(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    if flag(&q, "link") {
        st.engine.lock().await.remove_link(&id)?;
        return Ok(no_content());
    }
    let id = match st.resolve(&id) {
        Ok(id) => id,
        // A link's name (`web/db`) names the linked container, as in Docker's registry.
        Err(e) if id.contains('/') => st.engine.lock().await.resolve_link(&id).map_err(|_| e)?,
        Err(e) => return Err(e),
    };
    st.ops.remove(&id, flag(&q, "force"), flag(&q, "v")).await?;
    Ok(no_content())
}

pub(crate) async fn container_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    // No filter is applied yet: refuse one rather than prune more than asked.
    filters::parse(q.get("filters").map(String::as_str), &[])?;
    let deleted = st.ops.prune().await;
    Ok(json_response(
        StatusCode::OK,
        json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`: the headers go out at
/// once (the docker CLI waits for them before it starts the container), the body when the
/// condition is met. Waits happen without holding the engine (by the shim's pidfd); a client
/// that hangs up ends the wait.
pub(crate) async fn container_wait(
    State(st): State<AppState>,
    Path(what): Path<String>,
    q: Q,
) -> ApiResult {
    let condition = WaitCondition::parse(q.get("condition").map_or("", String::as_str))?;
    // Subscribed before the headers go out: the client starts the container only after it
    // has them, so no exit can come before the wait looks.
    let (id, rx) = {
        let e = st.engine.lock().await;
        let id = e.resolve(&what)?;
        let rx = e.subscribe(&id)?;
        (id, rx)
    };
    let body = futures::stream::once(async move {
        let code = wait_for(rx, condition).await;
        let code = match code {
            Some(code) => code,
            // Removed (by --rm or a client): its last exit code was kept for us.
            None => st.engine.lock().await.removed_exit_code(&id).unwrap_or(0),
        };
        let v = json!({"StatusCode": code, "Error": null});
        Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n")))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// `GET /containers/{id}/top`: planned under the engine's lock, /proc read without it.
pub(crate) async fn container_top(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let plan = st.engine.lock().await.top_plan(&id)?;
    let rows = tokio::task::spawn_blocking(move || plan.read())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(json_response(
        StatusCode::OK,
        json!({"Titles": engine::container::top::TITLES, "Processes": rows}),
    ))
}

/// `GET /containers/{id}/changes` (`docker diff`): planned under the engine's lock, the
/// container's writable layer walked without it.
pub(crate) async fn container_changes(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    let plan = st.engine.lock().await.changes_plan(&id)?;
    let changes = tokio::task::spawn_blocking(move || plan.run())
        .await
        .map_err(|e| ApiError::internal(format!("docker diff of {id}: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let rows: Vec<serde_json::Value> = changes
        .into_iter()
        .map(|(path, kind)| json!({"Path": path, "Kind": kind.code()}))
        .collect();
    Ok(json_response(StatusCode::OK, json!(rows)))
}
