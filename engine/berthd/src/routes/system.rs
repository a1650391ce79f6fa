//! `/_ping`, `/version`, `/info`, `/system/df`, `/build/prune`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiResult, AppState, json_response};
use crate::api::version;

pub(crate) async fn ping() -> Response {
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

pub(crate) fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The architecture as Go names it (Docker's `Arch`).
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub(crate) async fn version_info() -> Response {
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

pub(crate) async fn info(State(st): State<AppState>) -> Response {
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
            "SecurityOptions": st.daemon.security_options,
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "null"], "Log": ["json-file"]},
            "Swarm": {"LocalNodeState": "inactive"},
            "Warnings": [],
        }),
    )
}

/// `GET /system/df`.
pub(crate) async fn system_df(State(st): State<AppState>) -> ApiResult {
    // Containers from the index, volumes under the engine's lock (a moment), the walk of the
    // image store on disk off the async workers.
    let in_use = st.image_backend.in_use();
    let containers: Vec<Value> = st
        .containers()
        .entries()
        .map(|e| {
            let c = &e.container;
            json!({"Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.options.image, "State": c.state.status.as_str(), "SizeRw": 0})
        })
        .collect();
    let volumes: Vec<Value> = st
        .engine
        .lock()
        .await
        .volume_list()
        .iter()
        .map(|v| json!({"Name": v.volume.name, "Driver": "local", "UsageData": {"Size": -1, "RefCount": v.users}}))
        .collect();
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
                "Created": berth_common::time::parse(&img.created).map_or(0, |(s, _)| s),
            })
        })
        .collect();
    let layers = st.image_backend.disk_usage().await;
    Ok(json_response(
        StatusCode::OK,
        json!({"LayersSize": layers, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []}),
    ))
}

/// `POST /build/prune`: berth has no build cache yet, so there is nothing to reclaim.
pub(crate) async fn build_prune() -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        json!({"CachesDeleted": [], "SpaceReclaimed": 0}),
    ))
}
