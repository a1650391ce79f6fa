//! The routes: each handler parses its request with [`crate::api`], calls the engine under its
//! lock for as short as it can (waits happen outside it), and answers in Docker's shape.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use engine::container::{Engine, Index, LogFollower, LogOptions, LogWatch, Published};
use engine::events::Event;
use engine::image::store::ImageStore;
use engine::runtime::logs::LogLine;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::api::error::ApiError;
use crate::api::{create, filters, stats, version, views};
use crate::streams;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The engine, behind one lock.
    pub engine: Arc<Mutex<Engine>>,
    /// The containers as last recorded: `ps`, `inspect` and name lookups read it without the
    /// engine's lock.
    pub index: tokio::sync::watch::Receiver<Arc<Index>>,
    /// The image store, synchronized inside: image routes never take the engine's lock.
    pub images: Arc<ImageStore>,
    /// Every container's networking and the network manager, behind their own lock: network
    /// routes never take the engine's.
    pub wiring: Arc<Mutex<engine::container::Wiring>>,
    /// What `/info` reports of the daemon's configuration (fixed at start).
    pub daemon: Arc<DaemonInfo>,
    /// Where request bodies are spooled (`<exec-root>/scratch`).
    pub scratch: std::path::PathBuf,
    /// Attachments waiting for their container to start.
    pub pending: crate::streams::Pending,
    /// Execs by ID.
    pub execs: crate::streams::Execs,
    /// The registry client (pull, push; credentials from Docker's config file).
    pub registry: Arc<engine::image::registry::Registry>,
    /// `docker events`: what handlers and the engine report.
    pub events: crate::events::Events,
    /// Per-container locks ordering requests on one container (see [`AppState::container_op`]).
    ops: Arc<std::sync::Mutex<HashMap<String, std::sync::Weak<Mutex<()>>>>>,
}

/// The daemon's configuration as `/info` reports it.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// `DockerRootDir`.
    pub data_root: String,
    /// `DefaultRuntime`.
    pub runtime: String,
}

impl AppState {
    /// The state of a server over `engine`, reporting to `events` (install `events.sink()`
    /// on the engine too, so its own events reach the same bus).
    pub fn new(
        engine: Engine,
        scratch: std::path::PathBuf,
        events: crate::events::Events,
    ) -> AppState {
        let daemon = DaemonInfo {
            data_root: engine.config().data_root.display().to_string(),
            runtime: engine
                .runtime()
                .binary()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let (index, images, wiring) = (engine.index(), engine.images().clone(), engine.wiring());
        AppState {
            wiring,
            engine: Arc::new(Mutex::new(engine)),
            index,
            images,
            daemon: Arc::new(daemon),
            scratch,
            ops: Default::default(),
            events,
            pending: Default::default(),
            execs: Default::default(),
            registry: {
                engine::image::registry::client::install_crypto_provider();
                Arc::new(engine::image::registry::Registry::new(Default::default()))
            },
        }
    }
}

impl AppState {
    /// The containers now (never waits on the engine).
    pub fn containers(&self) -> Arc<Index> {
        self.index.borrow().clone()
    }

    /// The full ID of container `what` (name, ID or unique prefix), from the index.
    pub fn resolve(&self, what: &str) -> Result<String, ApiError> {
        Ok(self.containers().resolve(what)?.to_string())
    }

    /// Orders requests on container `id` as Docker's container lock does: start, stop,
    /// restart, kill, pause, unpause and rm hold it for their whole length, so an `rm -f`
    /// waits for a start to finish, while requests on other containers never wait for it.
    /// The engine's lock is taken only inside, briefly (never the other way round).
    pub async fn container_op(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            ops.retain(|_, w| w.strong_count() > 0);
            match ops.get(id).and_then(std::sync::Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(Mutex::new(()));
                    ops.insert(id.to_string(), Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

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
        let plan = st.engine.lock().await.start_prepare(&id, attach).await?;
        let Some(plan) = plan else {
            return Ok(None);
        };
        let outcome = plan.run().await;
        Ok(st.engine.lock().await.start_finish(outcome).await?)
    })
    .await
    .map_err(|e| ApiError::internal(format!("starting {e}")))?
}

type Q = Query<HashMap<String, String>>;
type ApiResult = Result<Response, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "yes"))
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The router, with `/v1.NN` prefixes stripped (and checked) before routing.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version_info))
        .route("/info", get(info))
        .route("/containers/create", post(container_create))
        .route("/containers/json", get(container_list))
        .route("/containers/prune", post(container_prune))
        .route("/containers/{id}/json", get(container_inspect))
        .route("/containers/{id}/start", post(container_start))
        .route("/containers/{id}/stop", post(container_stop))
        .route("/containers/{id}/restart", post(container_restart))
        .route("/containers/{id}/kill", post(container_kill))
        .route("/containers/{id}/pause", post(container_pause))
        .route("/containers/{id}/unpause", post(container_unpause))
        .route("/containers/{id}/rename", post(container_rename))
        .route("/containers/{id}/wait", post(container_wait))
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}/top", get(container_top))
        .route("/containers/{id}/stats", get(container_stats))
        .route(
            "/containers/{id}/archive",
            get(crate::archive::archive_get)
                .head(crate::archive::archive_head)
                .put(crate::archive::archive_put),
        )
        .route("/events", get(crate::events::events))
        .route("/images/prune", post(image_prune))
        .route("/networks/prune", post(network_prune))
        .route("/build/prune", post(build_prune))
        .route("/system/df", get(system_df))
        .route("/containers/{id}/attach", post(streams::container_attach))
        .route("/containers/{id}/resize", post(streams::container_resize))
        .route("/containers/{id}/exec", post(streams::exec_create))
        .route("/exec/{id}/start", post(streams::exec_start))
        .route("/exec/{id}/json", get(streams::exec_inspect))
        .route("/exec/{id}/resize", post(streams::exec_resize))
        .route("/containers/{id}", axum::routing::delete(container_delete))
        .route("/images/json", get(image_list))
        .route("/images/create", post(crate::images::image_create))
        .route("/auth", post(crate::images::auth))
        .route("/images/load", post(crate::images::image_load))
        .route("/images/get", get(crate::images::image_save))
        .route(
            "/images/{*rest}",
            get(image_get)
                .delete(image_delete)
                .post(crate::images::image_post),
        )
        .route("/volumes", get(volume_list))
        .route("/volumes/create", post(volume_create))
        .route("/volumes/prune", post(volume_prune))
        .route("/volumes/{name}", get(volume_inspect).delete(volume_delete))
        .route("/networks", get(network_list))
        .route("/networks/create", post(network_create))
        .route(
            "/networks/{id}",
            get(network_inspect).delete(network_delete),
        )
        .route("/networks/{id}/connect", post(network_connect))
        .route("/networks/{id}/disconnect", post(network_disconnect))
        .fallback(not_found)
        .with_state(state);
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(strip_version))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("page not found: {method} {}", uri.path()))
}

/// Rewrites `/v1.43/x` to `/x`, refusing versions outside 1.24..=1.43.
async fn strip_version(mut req: Request, next: Next) -> Response {
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

async fn ping() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response();
    let h = r.headers_mut();
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The architecture as Go names it (Docker's `Arch`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

async fn version_info() -> Response {
    let v = env!("CARGO_PKG_VERSION");
    json_response(
        StatusCode::OK,
        json!({
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": v, "Details": {"ApiVersion": version::API_VERSION, "MinAPIVersion": version::MIN_API_VERSION, "Os": "linux", "Arch": go_arch(), "KernelVersion": kernel()}}],
            "Version": v,
            "ApiVersion": version::API_VERSION,
            "MinAPIVersion": version::MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": go_arch(),
            "KernelVersion": kernel(),
            "BuildTime": "",
        }),
    )
}

async fn info(State(st): State<AppState>) -> Response {
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    for e in st.containers().entries() {
        match e.container.state.status.as_str() {
            "running" => running += 1,
            "paused" => paused += 1,
            _ => stopped += 1,
        }
    }
    let images = st.images.snapshot().images().count();
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    json_response(
        StatusCode::OK,
        json!({
            "ID": "berth",
            "Containers": running + paused + stopped,
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": stopped,
            "Images": images,
            "Driver": "overlay2",
            "DockerRootDir": st.daemon.data_root,
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
            "KernelVersion": kernel(),
            "OperatingSystem": "berth",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "Name": nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "DefaultRuntime": st.daemon.runtime,
            "Runtimes": {},
            "SecurityOptions": [],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "null"], "Log": ["json-file"]},
            "Swarm": {"LocalNodeState": "inactive"},
            "Warnings": [],
        }),
    )
}

async fn container_create(State(st): State<AppState>, q: Q, body: Bytes) -> ApiResult {
    let req = create::parse(&body)?;
    let opts = create::to_options(req, q.get("name").cloned())?;
    let mut e = st.engine.lock().await;
    let id = e.create(opts)?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({"Id": id, "Warnings": []}),
    ))
}

async fn container_list(State(st): State<AppState>, q: Q) -> ApiResult {
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

async fn container_inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
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

async fn container_start(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    if st.engine.lock().await.get(&id)?.state.status.as_str() == "running" {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let started: Result<(), ApiError> = async {
        // A client attached before the start (docker run): it gets the first output.
        if !streams::start_with_pending(&st, &id).await? {
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

fn timeout(q: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
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
async fn stop_unlocked(st: &AppState, id: &str, t: Option<Duration>) -> Result<(), ApiError> {
    let plan = st.engine.lock().await.stop_begin(id, t)?;
    if let Some(plan) = plan {
        plan.wait().await?;
        st.engine.lock().await.stop_finish(&plan).await?;
    }
    Ok(())
}

async fn container_stop(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult {
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

async fn container_restart(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult {
    let t = timeout(&q)?;
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    stop_unlocked(&st, &id, t).await?;
    start_unlocked(&st, &id, None).await?;
    st.engine.lock().await.emit_container(&id, "restart", &[]);
    Ok(no_content())
}

async fn container_kill(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult {
    let sig = q.get("signal").cloned().unwrap_or_else(|| "KILL".into());
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    st.engine.lock().await.kill(&id, &sig)?;
    Ok(no_content())
}

async fn container_pause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    st.engine.lock().await.pause(&id, true)?;
    Ok(no_content())
}

async fn container_unpause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = st.resolve(&id)?;
    let _op = st.container_op(&id).await;
    st.engine.lock().await.pause(&id, false)?;
    Ok(no_content())
}

async fn container_rename(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult {
    let name = q
        .get("name")
        .ok_or_else(|| ApiError::bad("rename: no new name given (the name parameter)"))?;
    st.engine.lock().await.rename(&id, name)?;
    Ok(no_content())
}

async fn container_delete(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult {
    let full = st.resolve(&id)?;
    let _op = st.container_op(&full).await;
    let mut e = st.engine.lock().await;
    e.remove(&full, flag(&q, "force"), flag(&q, "v")).await?;
    drop(e);
    // Attachments waiting for it to start end (their senders drop).
    st.pending.lock().await.remove(&full);
    Ok(no_content())
}

async fn container_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    // No filter is applied yet: refuse one rather than prune more than asked.
    filters::parse(q.get("filters").map(String::as_str), &[])?;
    let mut e = st.engine.lock().await;
    let ids: Vec<String> = e
        .containers()
        .filter(|c| matches!(c.state.status.as_str(), "exited" | "created" | "dead"))
        .map(|c| c.id.clone())
        // One being started is not stopped (and `remove` refuses it).
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
async fn container_wait(State(st): State<AppState>, Path(what): Path<String>, q: Q) -> ApiResult {
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
async fn wait_for(mut rx: tokio::sync::watch::Receiver<Published>, condition: &str) -> Option<i32> {
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

async fn container_logs(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult {
    let opts = LogOptions {
        tail: q.get("tail").and_then(|t| t.parse().ok()),
        since: q
            .get("since")
            .filter(|s| !s.is_empty() && *s != "0")
            .cloned(),
        until: q
            .get("until")
            .filter(|s| !s.is_empty() && *s != "0")
            .cloned(),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad(
            "you must choose at least one stream (stdout=1 and/or stderr=1)",
        ));
    }
    let timestamps = flag(&q, "timestamps");
    let follow = flag(&q, "follow");
    // The engine only says where the log is; reading happens outside it.
    let (tty, path, max_file, state, watch, follower) = {
        let e = st.engine.lock().await;
        let tty = e.get(&id)?.options.tty;
        let (path, max_file) = e.log_source(&id)?;
        // For --follow, the watch and the follower's place come before the read of what is
        // there, so nothing written meanwhile is missed.
        let follow_parts = if follow {
            let watch = LogWatch::new(&path)
                .map_err(|err| ApiError::internal(format!("watching the log of {id}: {err}")))?;
            Some((e.subscribe(&id)?, watch, LogFollower::from_end(&path)))
        } else {
            None
        };
        match follow_parts {
            Some((s, w, f)) => (tty, path, max_file, Some(s), Some(w), Some(f)),
            None => (tty, path, max_file, None, None, None),
        }
    };
    let frame = move |l: &LogLine| -> Bytes {
        let text = if timestamps {
            format!("{} {}", l.time, l.log)
        } else {
            l.log.clone()
        };
        if tty {
            return Bytes::from(text);
        }
        let stream = if l.stream == "stderr" { 2 } else { 1 };
        let mut b = engine::runtime::attach::frame_header(stream, text.len()).to_vec();
        b.extend_from_slice(text.as_bytes());
        Bytes::from(b)
    };
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    // Bounded: a slow client holds at most this many frames, however fast the log grows.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    // The history ends where the follower begins: no line twice.
    let mark = follower.as_ref().and_then(LogFollower::mark);
    let past = {
        let tx = tx.clone();
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || {
            let r = engine::container::logs::read(&path, max_file, &opts, mark, |l| {
                tx.blocking_send(Ok(frame(&l))).is_ok()
            });
            if let Err(err) = r {
                let _ = tx.blocking_send(Err(err));
            }
        })
    };
    if let (Some(mut state), Some(watch), Some(mut follower)) = (state, watch, follower) {
        let (want_out, want_err) = (opts.stdout, opts.stderr);
        tokio::spawn(async move {
            if past.await.is_err() || tx.is_closed() {
                return;
            }
            loop {
                // Looked at before the drain: once it is seen ended, the drain that follows
                // reads everything it wrote.
                let live = {
                    let s = state.borrow_and_update();
                    s.state.status.is_live()
                        || s.state.status == engine::container::Status::Restarting
                };
                // What was appended, a bounded batch at a time.
                loop {
                    let batch = match follower.poll(256) {
                        Ok(b) => b,
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for l in batch.iter().filter(|l| {
                        if l.stream == "stderr" {
                            want_err
                        } else {
                            want_out
                        }
                    }) {
                        if tx.send(Ok(frame(l))).await.is_err() {
                            return;
                        }
                    }
                }
                if !live {
                    return;
                }
                // Woken by the log, by the container's state, or by the client leaving.
                tokio::select! {
                    () = tx.closed() => return,
                    r = watch.changed() => if r.is_err() { return },
                    // Removed: one last look at the log.
                    r = state.changed() => if r.is_err() { continue },
                }
            }
        });
    }
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(tokio_stream_from(rx)),
    )
        .into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn image_list(State(st): State<AppState>) -> ApiResult {
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
            "Created": engine::container::logs::parse_time(&img.created).map_or(0, |(s, _)| s),
            "Size": img.size,
            "SharedSize": -1,
            "VirtualSize": img.size,
            "Labels": {},
            "Containers": -1,
        }));
    }
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

async fn image_get(State(st): State<AppState>, Path(rest): Path<String>) -> ApiResult {
    if let Some(name) = rest.strip_suffix("/history") {
        return crate::images::image_history(&st, name).await;
    }
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found(format!(
            "page not found: GET /images/{rest}"
        )));
    };
    let store = st.images.snapshot();
    let img = store.resolve(name)?;
    let config = crate::images::image_config(&st.images, img, name)?;
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
fn publish_removals(st: &AppState, lines: &[String], image_id: Option<&str>) {
    for (action, id) in crate::api::events::image_removal_events(lines, image_id) {
        st.events.publish(Event::image(&id, action, &id));
    }
}

/// The store's "Untagged: X" / "Deleted: X" lines as Docker's JSON items.
fn removal_json(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| match l.split_once(": ") {
            Some(("Untagged", v)) => json!({"Untagged": v}),
            Some((_, v)) => json!({"Deleted": v}),
            None => json!({"Deleted": l}),
        })
        .collect()
}

async fn image_delete(State(st): State<AppState>, Path(name): Path<String>, q: Q) -> ApiResult {
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

fn volume_json(v: &engine::volume::store::Volume, mountpoint: &std::path::Path) -> Value {
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

async fn volume_list(State(st): State<AppState>, q: Q) -> ApiResult {
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
struct VolumeCreate {
    name: String,
    driver: String,
    labels: std::collections::BTreeMap<String, String>,
}

async fn volume_create(State(st): State<AppState>, body: Bytes) -> ApiResult {
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

async fn volume_inspect(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let mut e = st.engine.lock().await;
    let vs = e.volumes();
    let v = vs.get(&name)?.clone();
    let mp = vs.path(&v.name);
    Ok(json_response(StatusCode::OK, volume_json(&v, &mp)))
}

async fn volume_delete(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let mut e = st.engine.lock().await;
    let users = e.volume_users(&name);
    e.volumes().remove(&name, &users)?;
    st.events.publish(Event::volume(&name, "destroy"));
    Ok(no_content())
}

/// `POST /volumes/prune`: unused anonymous volumes, and named ones with the filter `all=true`
/// (Docker's API 1.42 behaviour).
async fn volume_prune(State(st): State<AppState>, q: Q) -> ApiResult {
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

/// `POST /images/prune`: dangling images (`dangling=false`: every unused one).
async fn image_prune(State(st): State<AppState>, q: Q) -> ApiResult {
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

/// `POST /networks/prune`: user-defined networks without endpoints.
async fn network_prune(State(st): State<AppState>, q: Q) -> ApiResult {
    filters::parse(q.get("filters").map(String::as_str), &[])?;
    let mut w = st.wiring.lock().await;
    let unused: Vec<String> = w
        .networks()
        .list()
        .into_iter()
        .map(|n| n.name)
        .filter(|n| !matches!(n.as_str(), "bridge" | "host" | "none"))
        .collect();
    let mut deleted = Vec::new();
    for n in unused {
        if w.networks().endpoints_of(&n).next().is_some() {
            continue;
        }
        let ev = network_event(w.networks().find(&n)?, "destroy");
        if w.networks().remove(&n).await.is_ok() {
            st.events.publish(ev);
            deleted.push(n);
        }
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"NetworksDeleted": deleted}),
    ))
}

/// `POST /build/prune`: berth has no build cache yet, so there is nothing to reclaim.
async fn build_prune() -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        json!({"CachesDeleted": [], "SpaceReclaimed": 0}),
    ))
}

/// `GET /system/df`.
async fn system_df(State(st): State<AppState>) -> ApiResult {
    // What containers and volumes there are, under the engine's lock; the walk of the image
    // store on disk after it is let go.
    let (in_use, containers, volumes) = {
        let mut e = st.engine.lock().await;
        let in_use = e.images_in_use();
        let containers: Vec<Value> = e
            .containers()
            .map(|c| json!({"Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.options.image, "State": c.state.status.as_str(), "SizeRw": 0}))
            .collect();
        let names: Vec<String> = e.volumes().list().map(|v| v.name.clone()).collect();
        let mut volumes = Vec::new();
        for n in names {
            let users = e.volume_users(&n).len();
            volumes.push(
                json!({"Name": n, "Driver": "local", "UsageData": {"Size": -1, "RefCount": users}}),
            );
        }
        (in_use, containers, volumes)
    };
    let store = st.images.snapshot();
    let images: Vec<Value> = store
        .images()
        .map(|img| {
            json!({
                "Id": img.id.to_string(),
                "RepoTags": store.tags_of(&img.id),
                "Size": img.size,
                "SharedSize": -1,
                "Containers": i64::from(in_use.contains(&img.id.to_string())),
                "Created": engine::container::logs::parse_time(&img.created).map_or(0, |(s, _)| s),
            })
        })
        .collect();
    let layers = tokio::task::spawn_blocking({
        let images = st.images.clone();
        move || images.disk_usage()
    })
    .await
    .unwrap_or(0);
    Ok(json_response(
        StatusCode::OK,
        json!({"LayersSize": layers, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []}),
    ))
}

/// `GET /containers/{id}/top`.
async fn container_top(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let rows = st.engine.lock().await.top(&id)?;
    Ok(json_response(
        StatusCode::OK,
        json!({"Titles": engine::container::top::TITLES, "Processes": rows}),
    ))
}

/// Docker's reading of a boolean parameter: absent gives `default`; empty, `0`, `no`, `false`
/// and `none` are false, anything else true.
fn bool_or(q: &HashMap<String, String>, k: &str, default: bool) -> bool {
    q.get(k).map_or(default, |v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        )
    })
}

/// How far apart the samples of a stats stream are (and the two of a single answer).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// `GET /containers/{id}/stats?stream=&one-shot=`. Without `stream` (the default is true), one
/// object whose `precpu_stats` is a sample taken a second before (so the client can compute
/// CPU %), or with `one-shot` a single sample at once. With `stream`, one object per second,
/// each against the one before, until the client goes; a stopped container gives zeroed
/// objects, and the stream ends when it is removed. The samples are read without the
/// engine's lock, and the body is produced only as fast as the client reads it.
async fn container_stats(State(st): State<AppState>, Path(id): Path<String>, q: Q) -> ApiResult {
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

async fn network_list(State(st): State<AppState>, q: Q) -> ApiResult {
    let f = filters::parse(q.get("filters").map(String::as_str), filters::NETWORK_KEYS)?;
    let mut w = st.wiring.lock().await;
    let list = serde_json::to_value(w.networks().list())
        .map_err(|err| ApiError::internal(err.to_string()))?;
    let list: Vec<Value> = list
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            filters::object_matches(&f, n, |k, want| match k {
                "type" => {
                    let builtin = matches!(n["Name"].as_str(), Some("bridge" | "host" | "none"));
                    (want == "builtin") == builtin && matches!(want, "builtin" | "custom")
                }
                "scope" => n["Scope"].as_str().unwrap_or("local") == want,
                _ => false,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(list)))
}

async fn network_inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let mut w = st.wiring.lock().await;
    let n = w.networks().inspect(&id)?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_value(n).map_err(|err| ApiError::internal(err.to_string()))?,
    ))
}

async fn network_create(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let req = crate::api::network::parse_create(&body)?;
    let n = st.wiring.lock().await.networks().create(req).await?;
    st.events.publish(network_event(&n, "create"));
    Ok(json_response(
        StatusCode::CREATED,
        json!({"Id": n.id, "Warning": ""}),
    ))
}

async fn network_delete(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let mut w = st.wiring.lock().await;
    let ev = network_event(w.networks().find(&id)?, "destroy");
    let name = ev.attributes["name"].clone();
    let users: Vec<String> = w
        .networks()
        .endpoints_of(&name)
        .map(|ep| ep.container_name.clone())
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "error while removing network: network {name} has active endpoints ({})",
            users.join(", ")
        )));
    }
    w.networks().remove(&id).await?;
    st.events.publish(ev);
    Ok(no_content())
}

fn network_event(n: &netcore::network::Network, action: &str) -> Event {
    Event::network(&n.id, action, &n.name, n.driver.name(), None)
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Connect {
    container: String,
    endpoint_config: Option<create::EndpointConfig>,
    force: bool,
}

async fn network_connect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: Connect = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad(format!("invalid connect request: {err}")))?;
    let ep = req.endpoint_config.unwrap_or_default();
    let ip = ep
        .ipam_config
        .map(|i| i.ipv4_address)
        .filter(|s| !s.is_empty());
    st.engine
        .lock()
        .await
        .connect(&req.container, &id, ep.aliases.unwrap_or_default(), ip)
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn network_disconnect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: Connect = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad(format!("invalid disconnect request: {err}")))?;
    st.engine
        .lock()
        .await
        .disconnect(&req.container, &id, req.force)
        .await?;
    Ok(StatusCode::OK.into_response())
}
