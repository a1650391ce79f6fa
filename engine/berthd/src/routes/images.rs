//! Image routes over the image store and the image backend (never the engine's lock): list,
//! inspect, history, rmi, prune.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::container::images::Removal;
use serde_json::{Value, json};

use super::{ApiResult, AppState, Q, flag, json_response};
use crate::api::error::ApiError;
use crate::api::filters;

pub(crate) async fn image_list(State(st): State<AppState>, q: Q) -> ApiResult {
    let store = st.images.snapshot();
    let all = flag(&q, "all");
    // Docker hides intermediate images (untagged, with children: a build's steps) unless
    // `-a` asks for them.
    let parents: std::collections::BTreeSet<&engine::image::reference::Digest> =
        store.images().filter_map(|i| i.parent.as_ref()).collect();
    let mut out = Vec::new();
    for img in store.images() {
        if !all && parents.contains(&img.id) && store.tags_of(&img.id).is_empty() {
            continue;
        }
        let tags: Vec<String> = store
            .tags_of(&img.id)
            .into_iter()
            .filter_map(|t| t.parse::<engine::image::reference::Reference>().ok())
            .map(|r| r.familiar_name_with_tag())
            .collect();
        out.push(json!({
            "Id": img.id.to_string(),
            "ParentId": img.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
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

/// `POST /commit?container=C&repo=R&tag=T&comment=M&author=A&pause=1&changes=...` (`docker
/// commit`), with the new image's configuration as an optional body: the container's changes
/// become a layer on its image. Planned under the engine's lock, done off it.
pub(crate) async fn commit(
    State(st): State<AppState>,
    q: Q,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> ApiResult {
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad("container is required (the container to commit)"))?
        .clone();
    let tag = super::query::repo_tag(&q);
    let config = match body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Null) => None,
            Ok(v @ Value::Object(_)) => {
                // Typed as a container configuration is, so the image's config can be run.
                serde_json::from_value::<berth_api::container_create::ContainerCreate>(v.clone())
                    .map_err(|e| ApiError::bad(format!("invalid commit configuration: {e}")))?;
                Some(v)
            }
            Ok(_) => {
                return Err(ApiError::bad(
                    "the commit's configuration must be a JSON object",
                ));
            }
            Err(e) => {
                return Err(ApiError::bad(format!(
                    "invalid JSON in the commit's configuration: {e}"
                )));
            }
        },
    };
    let container_config = {
        let index = st.containers();
        let e = index.get(&container)?;
        crate::api::views::inspect(&e.container, &e.endpoints, &[], "")["Config"].clone()
    };
    let req = engine::container::commit::CommitRequest {
        container_config,
        config,
        changes: super::query::all(&uri, "changes"),
        author: q.get("author").cloned().unwrap_or_default(),
        comment: q.get("comment").cloned().unwrap_or_default(),
        tag: tag.clone(),
        pause: super::query::bool_or(&q, "pause", true),
    };
    // In order with the container's other requests: a removal waits for the commit's end
    // rather than taking its writable layer away while it is read.
    let id = st.resolve(&container)?;
    let store = st.images.clone();
    let comment = req.comment.clone();
    let engine = st.engine.clone();
    let ctr = id.clone();
    let rec = st
        .ops
        .exclusive(&id, "committing", move || async move {
            let plan = engine.lock().await.commit_plan(&ctr)?;
            tokio::task::spawn_blocking(move || plan.run(&store, req))
                .await
                .map_err(|e| engine::container::ContainerError::Io {
                    what: format!("committing container {ctr}"),
                    source: std::io::Error::other(e.to_string()),
                })?
        })
        .await?;
    let image = rec.id.to_string();
    st.engine.lock().await.emit_container(
        &id,
        "commit",
        &[
            ("comment", comment),
            ("imageID", image.clone()),
            ("imageRef", tag.clone().unwrap_or_default()),
        ],
    );
    if let Some(t) = &tag {
        let familiar = t
            .parse::<engine::image::reference::Reference>()
            .map_or(t.clone(), |r| r.familiar_name_with_tag());
        st.events
            .publish(engine::events::Event::image(&image, "tag", &familiar));
    }
    Ok(json_response(StatusCode::CREATED, json!({"Id": image})))
}
