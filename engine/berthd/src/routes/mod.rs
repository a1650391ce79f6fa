//! The routes: each handler parses its request with [`crate::api`], calls the engine (or the
//! image store, the wiring, the index) for as short as it can, and answers in Docker's shape.
//! One file per group of routes; [`state`] is what they share, [`query`] how they read query
//! parameters.

pub mod archive;
pub mod body;
pub mod build;
pub mod containers;
pub mod image_transfer;
pub mod images;
pub mod logs;
pub mod networks;
pub mod query;
pub mod state;
pub mod stats;
pub mod streams;
pub mod system;
pub mod volumes;

use std::collections::HashMap;

use axum::extract::{Query, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::error::ApiError;
use crate::api::version;
use axum::Router;
use axum::middleware::Next;
use axum::routing::{get, post};

pub(crate) use query::{bool_or, flag};
pub use state::AppState;

pub(crate) type Q = Query<HashMap<String, String>>;

pub(crate) type ApiResult = Result<Response, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

pub(crate) fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The router, with `/v1.NN` prefixes stripped (and checked) before routing.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version_info))
        .route("/info", get(system::info))
        .route("/containers/create", post(containers::container_create))
        .route("/containers/json", get(containers::container_list))
        .route("/containers/prune", post(containers::container_prune))
        .route("/containers/{id}/json", get(containers::container_inspect))
        .route("/containers/{id}/start", post(containers::container_start))
        .route("/containers/{id}/stop", post(containers::container_stop))
        .route(
            "/containers/{id}/restart",
            post(containers::container_restart),
        )
        .route("/containers/{id}/kill", post(containers::container_kill))
        .route("/containers/{id}/pause", post(containers::container_pause))
        .route(
            "/containers/{id}/unpause",
            post(containers::container_unpause),
        )
        .route(
            "/containers/{id}/update",
            post(containers::container_update),
        )
        .route(
            "/containers/{id}/rename",
            post(containers::container_rename),
        )
        .route("/containers/{id}/wait", post(containers::container_wait))
        .route("/containers/{id}/logs", get(logs::container_logs))
        .route("/containers/{id}/top", get(containers::container_top))
        .route(
            "/containers/{id}/changes",
            get(containers::container_changes),
        )
        .route("/containers/{id}/stats", get(stats::container_stats))
        .route(
            "/containers/{id}/archive",
            get(crate::routes::archive::archive_get)
                .head(crate::routes::archive::archive_head)
                .put(crate::routes::archive::archive_put),
        )
        .route("/events", get(crate::events::events))
        .route("/images/prune", post(images::image_prune))
        .route("/networks/prune", post(networks::network_prune))
        .route("/build", post(build::build))
        .route("/build/prune", post(build::build_prune))
        .route("/system/df", get(system::system_df))
        .route(
            "/containers/{id}/attach",
            post(crate::routes::streams::container_attach),
        )
        .route(
            "/containers/{id}/resize",
            post(crate::routes::streams::container_resize),
        )
        .route(
            "/containers/{id}/exec",
            post(crate::routes::streams::exec_create),
        )
        .route("/exec/{id}/start", post(crate::routes::streams::exec_start))
        .route("/exec/{id}/json", get(crate::routes::streams::exec_inspect))
        .route(
            "/exec/{id}/resize",
            post(crate::routes::streams::exec_resize),
        )
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::container_delete),
        )
        .route("/images/json", get(images::image_list))
        .route("/commit", post(images::commit))
        .route(
            "/containers/{id}/export",
            get(crate::routes::archive::container_export),
        )
        .route("/images/search", get(system::image_search))
        .route(
            "/images/create",
            post(crate::routes::image_transfer::image_create),
        )
        .route("/auth", post(crate::routes::image_transfer::auth))
        .route(
            "/images/load",
            post(crate::routes::image_transfer::image_load),
        )
        .route(
            "/images/get",
            get(crate::routes::image_transfer::image_save),
        )
        .route(
            "/images/{*rest}",
            get(images::image_get)
                .delete(images::image_delete)
                .post(crate::routes::image_transfer::image_post),
        )
        .route("/volumes", get(volumes::volume_list))
        .route("/volumes/create", post(volumes::volume_create))
        .route("/volumes/prune", post(volumes::volume_prune))
        .route(
            "/volumes/{name}",
            get(volumes::volume_inspect).delete(volumes::volume_delete),
        )
        .route("/networks", get(networks::network_list))
        .route("/networks/create", post(networks::network_create))
        // Network names may hold slashes (as Docker's): the rest of the path is the name,
        // with `/connect` or `/disconnect` after it for a POST.
        .route(
            "/networks/{*id}",
            get(networks::network_inspect)
                .delete(networks::network_delete)
                .post(networks::network_post),
        )
        .route("/swarm", axum::routing::any(system::swarm))
        .route("/swarm/{*rest}", axum::routing::any(system::swarm))
        .route("/nodes", axum::routing::any(system::swarm))
        .route("/nodes/{*rest}", axum::routing::any(system::swarm))
        .route("/services", axum::routing::any(system::swarm))
        .route("/services/{*rest}", axum::routing::any(system::swarm))
        .route("/tasks", axum::routing::any(system::swarm))
        .route("/tasks/{*rest}", axum::routing::any(system::swarm))
        .route("/secrets", axum::routing::any(system::swarm))
        .route("/secrets/{*rest}", axum::routing::any(system::swarm))
        .route("/configs", axum::routing::any(system::swarm))
        .route("/configs/{*rest}", axum::routing::any(system::swarm))
        .fallback(fallback)
        .with_state(state);
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(strip_version))
}

/// What no route matches: `DELETE /containers/web/db` (a link's name holds a slash, which
/// no `{id}` segment takes), else a 404.
async fn fallback(st: axum::extract::State<AppState>, method: Method, uri: Uri, q: Q) -> Response {
    if method == Method::DELETE {
        if let Some(name) = uri.path().strip_prefix("/containers/") {
            let name = image_transfer::percent_decode(name);
            return match containers::container_delete(st, axum::extract::Path(name), q).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
        }
    }
    not_found(method, uri).await.into_response()
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("page not found: {method} {}", uri.path()))
}

/// Rewrites `/v1.43/x` to `/x`, refusing versions outside 1.24..=1.43.
pub(crate) async fn strip_version(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let (v, rest) = version::split_version(&path);
    if let Some(v) = v {
        if let Err(e) = version::check(v) {
            return ApiError::bad(e).into_response();
        }
        let pq = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        if let Ok(u) = pq.parse::<Uri>() {
            *req.uri_mut() = u;
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        HeaderValue::from_static(version::API_VERSION),
    );
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Server", HeaderValue::from_static("berthd/0.1.0 (linux)"));
    resp
}
