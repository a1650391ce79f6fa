//! Container routes: create, list, inspect, the lifecycle (start, stop, restart, kill, pause,
//! rename, rm, prune), wait and top. Requests on one container are ordered by its lock
//! ([`AppState::container_op`]); the engine's lock is taken only to plan and to record.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use engine::container::{ContainerError, Engine, Published, RuntimeCall};
use serde_json::{Value, json};

use super::{ApiResult, AppState, Q, flag, json_response, no_content, now_secs};
use crate::api::error::ApiError;
use crate::api::{create, filters, views};

/// Starts container `id` holding the engine only to plan and to record: the rootfs, the
/// network, the shim and the OCI runtime run without it, so other containers' requests go on
/// meanwhile. With `attach`, the attachment joined before the process runs (`None` back when
/// it was running already).
pub async fn start_unlocked(
    st: &AppState,
    id: &str,
    attach: Option<engine::runtime::attach::AttachRequest>,
) -> Result<Option<std::os::unix::net::UnixStream>, ApiError> {
    let (st, id) = (st.clone(), id.to_string());
    // A task of its own: a client hanging up mid-start drops the handler, never a start
    // between its first and last step.
    tokio::spawn(async move {
        let plan = st
            .engine_unless_starting(&id)
            .await
            .start_prepare(&id, attach)
            .await?;
        let Some(plan) = plan else {
            return Ok(None);
        };
        let outcome = plan.run().await;
        Ok(st.engine.lock().await.start_finish(outcome).await?)
    })
    .await
    .map_err(|e| ApiError::internal(format!("starting {e}")))?
}

pub(crate) async fn container_create(State(st): State<AppState>, q: Q, body: Bytes) -> ApiResult {
    let req = create::parse(&body)?;
    let opts = create::to_options(req, q.get("name").cloned())?;
    let mut e = st.engine.lock().await;
    let id = e.create(opts)?;
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
            &e.log_path.display().to_string(),
        ),
    ))
}

pub(crate) async fn container_start(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    if st.engine.lock().await.get(&id)?.state.status.as_str() == "running" {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let started: Result<(), ApiError> = async {
        // A client attached before the start (docker run): it gets the first output.
        if !super::streams::start_with_pending(&st, &id).await? {
            start_unlocked(&st, &id, None).await?;
        }
        Ok(())
    }
    .await;
    if let Err(err) = started {
        // As dockerd: an --rm container whose start failed is removed, volumes included.
        let mut e = st.engine.lock().await;
        // Not one the start refused because it runs (paused): that one is left alone.
        if e.get(&id)
            .is_ok_and(|c| c.options.auto_remove && !c.state.status.is_live())
        {
            if let Err(rm) = e.remove(&id, true, true).await {
                tracing::warn!(container = %id, error = %rm, "removing the --rm container whose start failed");
            }
            drop(e);
            st.pending.lock().await.remove(&id);
        }
        return Err(err);
    }
    Ok(no_content())
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

/// Stops `id` waiting without the engine: the lock is held to begin and to record the exit,
/// never for the timeout.
pub(crate) async fn stop_unlocked(
    st: &AppState,
    id: &str,
    t: Option<Duration>,
) -> Result<(), ApiError> {
    let (st, id) = (st.clone(), id.to_string());
    // A task of its own: a client hanging up never leaves an exit half handled (its
    // container busy). The engine is held to begin and to record, not while the process
    // stops or the run is undone.
    tokio::spawn(async move {
        let plan = st.engine.lock().await.stop_begin(&id, t)?;
        if let Some(plan) = plan {
            plan.wait().await?;
            let step = st.engine.lock().await.stop_record(&plan)?;
            if let engine::container::ExitStep::Teardown(exit) = step {
                exit.undo().run().await;
                st.engine.lock().await.exit_finish(*exit).await?;
            }
            // The supervisor may have recorded the exit first and still be undoing the run
            // (or removing a --rm container): the stop answers once that is done too.
            drop(st.engine_unless_starting(&id).await);
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(format!("stopping {e}")))?
}

pub(crate) async fn container_stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let t = timeout(&q)?;
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    {
        let e = st.engine.lock().await;
        let c = e.get(&id)?;
        if !c.state.status.is_live() && c.state.status.as_str() != "restarting" {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
    }
    stop_unlocked(&st, &id, t).await?;
    Ok(no_content())
}

pub(crate) async fn container_restart(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let t = timeout(&q)?;
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    stop_unlocked(&st, &id, t).await?;
    start_unlocked(&st, &id, None).await?;
    st.engine.lock().await.emit_container(&id, "restart", &[]);
    Ok(no_content())
}

/// Kill, pause and unpause: planned and recorded under the engine's lock, the runtime called
/// without it, in a task of its own so a client hanging up never leaves the call unrecorded.
async fn runtime_call(
    st: AppState,
    what: &str,
    begin: impl FnOnce(&mut Engine, &str) -> Result<RuntimeCall, ContainerError> + Send + 'static,
) -> ApiResult {
    let id = st.resolve(what)?;
    tokio::spawn(async move {
        let _op = st.container_op(&id).await;
        let call = begin(&mut *st.engine.lock().await, &id)?;
        let done = call.run().await;
        st.engine.lock().await.runtime_call_finish(&call, done)?;
        Ok(no_content())
    })
    .await
    .map_err(|e| ApiError::internal(format!("calling the runtime: {e}")))?
}

pub(crate) async fn container_kill(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let sig = q.get("signal").cloned().unwrap_or_else(|| "KILL".into());
    runtime_call(st, &id, move |e, id| e.kill_begin(id, &sig)).await
}

pub(crate) async fn container_pause(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    runtime_call(st, &id, |e, id| e.pause_begin(id, true)).await
}

pub(crate) async fn container_unpause(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    runtime_call(st, &id, |e, id| e.pause_begin(id, false)).await
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
    let full = st.resolve(&id)?;
    let (force, volumes) = (flag(&q, "force"), flag(&q, "v"));
    let task = {
        let (st, full) = (st.clone(), full.clone());
        // A task of its own: a client hanging up never leaves a removal half done. The engine
        // is held only for each step's bookkeeping, not while the process dies or the run is
        // undone.
        tokio::spawn(async move {
            let _op = st.container_op(&full).await;
            let plan = st
                .engine_unless_starting(&full)
                .await
                .remove_begin(&full, force, volumes)?;
            if let Some(stop) = plan.stop() {
                stop.wait().await?;
            }
            // The supervisor may be recording the SIGKILLed process's exit and undoing its run:
            // the removal goes on once that is done.
            let undo = st.engine_unless_starting(&full).await.remove_mark(&plan)?;
            let removed = undo.run_and_remove().await;
            st.engine.lock().await.remove_finish(plan, removed)?;
            // Attachments waiting for it to start end (their senders drop).
            st.pending.lock().await.remove(&full);
            Ok::<_, ApiError>(())
        })
    };
    task.await
        .map_err(|e| ApiError::internal(format!("removing {e}")))??;
    Ok(no_content())
}

pub(crate) async fn container_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    // No filter is applied yet: refuse one rather than prune more than asked.
    filters::parse(q.get("filters").map(String::as_str), &[])?;
    let mut e = st.engine.lock().await;
    let ids: Vec<String> = e
        .containers()
        .filter(|c| matches!(c.state.status.as_str(), "exited" | "created" | "dead"))
        .map(|c| c.id.clone())
        // One being started or stopped is left alone (and `remove` refuses it).
        .filter(|id| !e.is_starting(id))
        .collect();
    let mut deleted = Vec::new();
    for id in ids {
        if e.remove(&id, false, false).await.is_ok() {
            deleted.push(id);
        }
    }
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
    let condition = q
        .get("condition")
        .cloned()
        .unwrap_or_else(|| "not-running".into());
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad(format!(
            "invalid condition {condition:?} (valid: not-running, next-exit, removed)"
        )));
    }
    // Subscribed before the headers go out: the client starts the container only after it
    // has them, so no exit can come before the wait looks.
    let (id, rx) = {
        let e = st.engine.lock().await;
        let id = e.resolve(&what)?;
        let rx = e.subscribe(&id)?;
        (id, rx)
    };
    let body = futures::stream::once(async move {
        let code = wait_for(rx, &condition).await;
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

/// Waits on the container's published state (the supervisor records every exit): no lock is
/// held and nothing polls. `not-running` ends at once for a container that does not run;
/// `next-exit` at the first exit after the wait began (counted, so one whose exited state was
/// replaced by a restart before the wait looked still counts); `removed` when the channel
/// closes. The exit code, or `None` when the container was removed first.
pub(crate) async fn wait_for(
    mut rx: tokio::sync::watch::Receiver<Published>,
    condition: &str,
) -> Option<i32> {
    let first_exits = rx.borrow().exits;
    loop {
        {
            let p = rx.borrow_and_update();
            let exited = p.exits != first_exits;
            match condition {
                "not-running" if !p.state.status.is_live() => return Some(p.state.exit_code),
                "not-running" | "next-exit" if exited => return Some(p.last_exit_code),
                _ => {}
            }
        }
        if rx.changed().await.is_err() {
            return None;
        }
    }
}

/// `GET /containers/{id}/top`.
pub(crate) async fn container_top(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let rows = st.engine.lock().await.top(&id)?;
    Ok(json_response(
        StatusCode::OK,
        json!({"Titles": engine::container::top::TITLES, "Processes": rows}),
    ))
}
