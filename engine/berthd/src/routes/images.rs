//! Image routes over the image store and the image backend (never the engine's lock): list,
//! inspect, history, rmi, prune.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::container::images::Removal;
use serde_json::{Value, json};

use super::{ApiResult, AppState, Q, flag, json_response};
use crate::api::error::ApiError;
use crate::api::filters;

pub(crate) async fn image_list(State(st): State<AppState>) -> ApiResult {
    let store = st.images.snapshot();
    let mut out = Vec::new();
    for img in store.images() {
        let tags: Vec<String> = store
            .tags_of(&img.id)
            .into_iter()
            .filter_map(|t| t.parse::<engine::image::reference::Reference>().ok())
            .map(|r| r.familiar_name_with_tag())
            .collect();
        out.push(json!({
            "Id": img.id.to_string(),
            "ParentId": "",
            "RepoTags": tags,
            "RepoDigests": img.repo_digests,
            "Created": berth_common::time::parse(&img.created).map_or(0, |(s, _)| s),
            "Size": img.size,
            "SharedSize": -1,
            "VirtualSize": img.size,
            "Labels": {},
            "Containers": -1,
        }));
    }
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

pub(crate) async fn image_get(State(st): State<AppState>, Path(rest): Path<String>) -> ApiResult {
    if let Some(name) = rest.strip_suffix("/history") {
        return crate::routes::image_transfer::image_history(&st, name).await;
    }
    if let Some(name) = rest.strip_suffix("/get") {
        // One image's `docker save` (docker-py's `Image.save`).
        return crate::routes::image_transfer::save(&st, vec![name.to_string()]).await;
    }
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found(format!(
            "page not found: GET /images/{rest}"
        )));
    };
    let store = st.images.snapshot();
    let img = store.resolve(name)?;
    let config = crate::routes::image_transfer::image_config(&st.images, img, name)?;
    let tags = store
        .tags_of(&img.id)
        .into_iter()
        .filter_map(|t| t.parse::<engine::image::reference::Reference>().ok())
        .map(|r| r.familiar_name_with_tag())
        .collect();
    let v = serde_json::to_value(engine::image::inspect::inspect(img, tags, &config))
        .map_err(|err| ApiError::internal(err.to_string()))?;
    Ok(json_response(StatusCode::OK, v))
}

/// A removal's lines as Docker's JSON items.
pub(crate) fn removal_json(removals: &[Removal]) -> Vec<Value> {
    removals
        .iter()
        .map(|r| match r {
            Removal::Untagged(v) => json!({"Untagged": v}),
            Removal::Deleted(v) => json!({"Deleted": v}),
        })
        .collect()
}

pub(crate) async fn image_delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Q,
) -> ApiResult {
    let removals = st.image_backend.remove(&name, flag(&q, "force")).await?;
    Ok(json_response(
        StatusCode::OK,
        Value::Array(removal_json(&removals)),
    ))
}

/// `POST /images/prune`: dangling images (`dangling=false`: every unused one).
pub(crate) async fn image_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), &["dangling"])?;
    let all = f
        .get("dangling")
        .is_some_and(|v| v.iter().any(|x| x == "false" || x == "0"));
    let (removals, space) = st.image_backend.prune(all).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({"ImagesDeleted": removal_json(&removals), "SpaceReclaimed": space}),
    ))
}
