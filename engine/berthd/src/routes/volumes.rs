//! Volume routes: parse, call the volume backend (never the engine's lock), render.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::volume::VolumeView;
use serde_json::{Value, json};

use super::{ApiResult, AppState, Q, json_response, no_content};
use crate::api::error::ApiError;
use crate::api::filters;

pub(crate) fn volume_json(v: &VolumeView) -> Value {
    json!({
        "Name": v.volume.name,
        "Driver": "local",
        "Mountpoint": v.mountpoint.display().to_string(),
        "CreatedAt": v.volume.created,
        "Labels": v.volume.labels,
        "Scope": "local",
        "Options": null,
    })
}

pub(crate) async fn volume_list(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), filters::VOLUME_KEYS)?;
    // The volumes' lock may wait on a change's fsync: off the async workers.
    let vols = blocking(move || Ok(st.volumes.list(&f))).await?;
    let list: Vec<Value> = vols.iter().map(volume_json).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"Volumes": list, "Warnings": []}),
    ))
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct VolumeCreate {
    name: String,
    driver: String,
    labels: std::collections::BTreeMap<String, String>,
}

pub(crate) async fn volume_create(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let req: VolumeCreate = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad(format!("invalid volume config: {err}")))?;
    if !matches!(req.driver.as_str(), "" | "local") {
        return Err(ApiError::bad(format!(
            "volume driver {:?} is not supported (valid: local)",
            req.driver
        )));
    }
    let name = Some(req.name).filter(|n| !n.is_empty());
    let v = blocking(move || st.volumes.create(name.as_deref(), req.labels)).await?;
    Ok(json_response(StatusCode::CREATED, volume_json(&v)))
}

pub(crate) async fn volume_inspect(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    let v = blocking(move || st.volumes.inspect(&name)).await?;
    Ok(json_response(StatusCode::OK, volume_json(&v)))
}

pub(crate) async fn volume_delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    let trash = blocking(move || st.volumes.remove(&name)).await?;
    // The files go without the engine (a volume may hold millions of them), waited for by
    // nobody: the volume is gone once it is in the trash.
    std::thread::spawn(move || trash.delete());
    Ok(no_content())
}

/// `POST /volumes/prune`: unused anonymous volumes, and named ones with the filter `all=true`
/// (Docker's API 1.42 behaviour).
pub(crate) async fn volume_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), &["all"])?;
    let all = filters::is_true(&f, "all");
    let (deleted, space) = blocking(move || Ok(st.volumes.prune(all))).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({"VolumesDeleted": deleted, "SpaceReclaimed": space}),
    ))
}

/// Runs a volume change (directories made, moved, records written) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, engine::volume::store::VolumeError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}
