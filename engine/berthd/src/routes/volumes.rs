//! Volume routes: list, create, inspect, rm, prune.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::events::Event;
use serde_json::{Value, json};

use super::{ApiResult, AppState, Q, json_response, no_content};
use crate::api::error::ApiError;
use crate::api::filters;

pub(crate) fn volume_json(
    v: &engine::volume::store::Volume,
    mountpoint: &std::path::Path,
) -> Value {
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": mountpoint.display().to_string(),
        "CreatedAt": v.created,
        "Labels": v.labels,
        "Scope": "local",
        "Options": null,
    })
}

pub(crate) async fn volume_list(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), filters::VOLUME_KEYS)?;
    let mut e = st.engine.lock().await;
    let names: Vec<String> = e.volumes().list().map(|v| v.name.clone()).collect();
    let used: std::collections::HashSet<String> = names
        .into_iter()
        .filter(|n| !e.volume_users(n).is_empty())
        .collect();
    let vs = e.volumes();
    let list: Vec<Value> = vs
        .list()
        .map(|v| {
            volume_json(
                v,
                vs.path(&v.name)
                    .parent()
                    .unwrap_or(std::path::Path::new("/")),
            )
        })
        .filter(|v| {
            filters::object_matches(&f, v, |k, want| {
                let in_use = v["Name"].as_str().is_some_and(|n| used.contains(n));
                k == "dangling" && matches!(want, "true" | "1") != in_use
            })
        })
        .collect();
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
    let mut e = st.engine.lock().await;
    let name = Some(req.name.as_str()).filter(|n| !n.is_empty());
    let vs = e.volumes();
    // Creating a volume that exists returns it, as Docker.
    let v = match name.and_then(|n| vs.get(n).ok().cloned()) {
        Some(v) => v,
        None => {
            let v = vs.create(name, req.labels)?;
            st.events.publish(Event::volume(&v.name, "create"));
            v
        }
    };
    let mp = vs.path(&v.name);
    Ok(json_response(StatusCode::CREATED, volume_json(&v, &mp)))
}

pub(crate) async fn volume_inspect(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    let mut e = st.engine.lock().await;
    let vs = e.volumes();
    let v = vs.get(&name)?.clone();
    let mp = vs.path(&v.name);
    Ok(json_response(StatusCode::OK, volume_json(&v, &mp)))
}

pub(crate) async fn volume_delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    let mut e = st.engine.lock().await;
    let users = e.volume_users(&name);
    e.volumes().remove(&name, &users)?;
    st.events.publish(Event::volume(&name, "destroy"));
    Ok(no_content())
}

/// `POST /volumes/prune`: unused anonymous volumes, and named ones with the filter `all=true`
/// (Docker's API 1.42 behaviour).
pub(crate) async fn volume_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), &["all"])?;
    let all = f
        .get("all")
        .is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    let mut e = st.engine.lock().await;
    let names: Vec<String> = e.volumes().list().map(|v| v.name.clone()).collect();
    let used: std::collections::HashSet<String> = names
        .iter()
        .filter(|n| !e.volume_users(n).is_empty())
        .cloned()
        .collect();
    let (deleted, space) = e.volumes().prune(all, |n| used.contains(n))?;
    for v in &deleted {
        st.events.publish(Event::volume(v, "destroy"));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"VolumesDeleted": deleted, "SpaceReclaimed": space}),
    ))
}
