//! Network routes: parse, call the network backend (never the engine's lock), render;
//! connect and disconnect through the container backend, in order with the container's other
//! requests.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use engine::container::NetworkBackend;
use engine::container::connect::change_network;
use serde_json::{Value, json};

use super::{ApiResult, AppState, Q, json_response, no_content};
use crate::api::error::ApiError;
use berth_api::container_create as create;

use crate::api::filters;

fn to_json(v: impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|err| ApiError::internal(err.to_string()))
}

/// `POST /networks/prune`: user-defined networks without endpoints.
pub(crate) async fn network_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    filters::parse(q.get("filters").map(String::as_str), &[])?;
    let deleted = st.networks.prune().await;
    Ok(json_response(
        StatusCode::OK,
        json!({"NetworksDeleted": deleted}),
    ))
}

pub(crate) async fn network_list(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), filters::NETWORK_KEYS)?;
    Ok(json_response(
        StatusCode::OK,
        to_json(st.networks.list(&f))?,
    ))
}

pub(crate) async fn network_inspect(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        to_json(st.networks.inspect(&id)?)?,
    ))
}

pub(crate) async fn network_create(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let req = crate::api::network::parse_create(&body)?;
    let n = st.networks.create(req).await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({"Id": n.id, "Warning": ""}),
    ))
}

pub(crate) async fn network_delete(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    st.networks.remove(&id).await?;
    Ok(no_content())
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Connect {
    container: String,
    endpoint_config: Option<create::EndpointConfig>,
    force: bool,
}

/// `POST /networks/{name}/connect` and `/networks/{name}/disconnect` (names may hold
/// slashes).
pub(crate) async fn network_post(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    body: Bytes,
) -> ApiResult {
    if let Some(id) = rest.strip_suffix("/connect") {
        return network_connect(st, id.to_string(), body).await;
    }
    if let Some(id) = rest.strip_suffix("/disconnect") {
        return network_disconnect(st, id.to_string(), body).await;
    }
    Err(ApiError {
        status: 404,
        message: "page not found".into(),
    })
}

async fn network_connect(st: AppState, id: String, body: Bytes) -> ApiResult {
    let req: Connect = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad(format!("invalid connect request: {err}")))?;
    let ep = req.endpoint_config.unwrap_or_default();
    let refused = crate::api::create::endpoint_refusals("EndpointConfig", &ep);
    if !refused.is_empty() {
        return Err(ApiError::bad(format!(
            "not supported by berth: {} (leave these unset)",
            refused.join(", ")
        )));
    }
    let conn = crate::api::create::connection(&ep);
    // In order with the container's other requests (a stop never tears its namespace down
    // mid-connect), in a task of its own (a client hanging up never leaves the change
    // unrecorded); the engine is held to plan and to record, not for the network change.
    let container = st.resolve(&req.container)?;
    let machine = st.ops.machine().clone();
    let ctr = container.clone();
    st.ops
        .exclusive(&container, "connecting", move || async move {
            change_network(&machine, &ctr, |e| e.connect_begin(&ctr, &id, conn)).await
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn network_disconnect(st: AppState, id: String, body: Bytes) -> ApiResult {
    let req: Connect = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad(format!("invalid disconnect request: {err}")))?;
    let container = match st.resolve(&req.container) {
        Ok(c) => c,
        // `-f` for a container that is gone: Docker removes an endpoint of that name left in
        // the network. berth leaves none (a removed container's endpoints go with it), so
        // there is none to find, as Docker answers when the name is unknown.
        Err(e) if req.force && e.status == 404 => {
            st.networks.inspect(&id)?;
            return Err(ApiError {
                status: 404,
                message: format!("endpoint {} not found", req.container),
            });
        }
        Err(e) => return Err(e),
    };
    let machine = st.ops.machine().clone();
    let ctr = container.clone();
    st.ops
        .exclusive(&container, "disconnecting", move || async move {
            change_network(&machine, &ctr, |e| e.disconnect_begin(&ctr, &id)).await
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}
