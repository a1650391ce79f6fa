//! Image routes over the image store (never the engine's lock): list, inspect, history, rmi,
//! prune.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::events::Event;
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

/// Reports the untag and delete events of an image removal (see
/// [`crate::api::events::image_removal_events`]).
pub(crate) fn publish_removals(st: &AppState, lines: &[String], image_id: Option<&str>) {
    for (action, id) in crate::api::events::image_removal_events(lines, image_id) {
        st.events.publish(Event::image(&id, action, &id));
    }
}

/// The store's "Untagged: X" / "Deleted: X" lines as Docker's JSON items.
pub(crate) fn removal_json(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| match l.split_once(": ") {
            Some(("Untagged", v)) => json!({"Untagged": v}),
            Some((_, v)) => json!({"Deleted": v}),
            None => json!({"Deleted": l}),
        })
        .collect()
}

pub(crate) async fn image_delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Q,
) -> ApiResult {
    let image_id = st.images.resolve(&name)?.id.to_string();
    // Who uses which image, then the removal with the engine let go: the store applies
    // Docker's rules, and layers of containers created meanwhile are held by them.
    let users = st.engine.lock().await.image_users();
    let (images, force) = (st.images.clone(), flag(&q, "force"));
    // The removal and its collection touch the disk: off the async workers.
    let lines = tokio::task::spawn_blocking(move || {
        images.remove(&name, force, |id| users.get(&id.to_string()).cloned())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    publish_removals(&st, &lines, Some(&image_id));
    let out = removal_json(&lines);
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

/// `POST /images/prune`: dangling images (`dangling=false`: every unused one).
pub(crate) async fn image_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), &["dangling"])?;
    let all = f
        .get("dangling")
        .is_some_and(|v| v.iter().any(|x| x == "false" || x == "0"));
    let in_use = st.engine.lock().await.images_in_use();
    let images = st.images.clone();
    let (lines, space) = tokio::task::spawn_blocking(move || {
        images.prune(all, |id| in_use.contains(&id.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    publish_removals(&st, &lines, None);
    let deleted = removal_json(&lines);
    Ok(json_response(
        StatusCode::OK,
        json!({"ImagesDeleted": deleted, "SpaceReclaimed": space}),
    ))
}
