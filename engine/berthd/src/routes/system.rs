//! `/_ping`, `/version`, `/info`, `/system/df`, `/build/prune`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use engine::system::SystemBackend;

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
    let i = st.system.info();
    let runtimes: serde_json::Map<String, Value> = i
        .runtimes
        .iter()
        .map(|r| {
            let mut v = json!({"path": r.path});
            if !r.args.is_empty() {
                v["runtimeArgs"] = json!(r.args);
            }
            (r.name.clone(), v)
        })
        .collect();
    let mut info = json!({
            "ID": "berth",
            "Containers": i.running + i.paused + i.stopped,
            "ContainersRunning": i.running,
            "ContainersPaused": i.paused,
            "ContainersStopped": i.stopped,
            "Images": i.images,
            "Driver": "overlay2",
            "DockerRootDir": i.data_root,
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": i.cgroup_version,
            "KernelVersion": i.kernel,
            "OperatingSystem": "berth",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "NCPU": i.ncpu,
            "Name": i.hostname,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "DefaultRuntime": i.default_runtime,
            "Runtimes": runtimes,
            "SecurityOptions": i.security_options,
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "null"], "Log": ["json-file", "local"]},
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "Warnings": [],
    });
    let more = json!({
            "DriverStatus": [["Backing Filesystem", "overlayfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"]],
            "SystemStatus": null,
            "MemoryLimit": true,
            "SwapLimit": i.swap_limit,
            "KernelMemory": false,
            "KernelMemoryTCP": false,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "OomKillDisable": true,
            "IPv4Forwarding": i.ipv4_forwarding,
            "BridgeNfIptables": i.bridge_nf_iptables,
            "BridgeNfIp6tables": i.bridge_nf_ip6tables,
            "Debug": false,
            "NFd": std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
            "NGoroutines": threads(),
            "SystemTime": berth_common::time::now_rfc3339_nano(),
            "NEventsListener": 0,
            "MemTotal": i.mem_total,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}},
                "Mirrors": [],
            },
            "GenericResources": null,
            "HttpProxy": std::env::var("HTTP_PROXY").or_else(|_| std::env::var("http_proxy")).unwrap_or_default(),
            "HttpsProxy": std::env::var("HTTPS_PROXY").or_else(|_| std::env::var("https_proxy")).unwrap_or_default(),
            "NoProxy": std::env::var("NO_PROXY").or_else(|_| std::env::var("no_proxy")).unwrap_or_default(),
            "Labels": [],
            "ExperimentalBuild": false,
            // Containers keep running while berthd restarts, as with Docker's live-restore.
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "ProductLicense": "",
            "OSVersion": i.os_version,
    });
    if let (Value::Object(m), Value::Object(more)) = (&mut info, more) {
        m.extend(more);
    }
    json_response(StatusCode::OK, info)
}

/// The daemon's threads (Docker reports its goroutines there).
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `GET /system/df`.
pub(crate) async fn system_df(State(st): State<AppState>) -> ApiResult {
    let du = st.system.disk_usage().await;
    let containers: Vec<Value> = du
        .containers
        .iter()
        .map(|c| json!({"Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image, "State": c.state, "SizeRw": 0}))
        .collect();
    let volumes: Vec<Value> = du
        .volumes
        .iter()
        .map(|v| json!({"Name": v.name, "Driver": "local", "UsageData": {"Size": -1, "RefCount": v.users}}))
        .collect();
    let images: Vec<Value> = du
        .images
        .iter()
        .map(|img| {
            json!({
                "Id": img.id,
                "RepoTags": img.tags,
                "Size": img.size,
                "SharedSize": -1,
                "Containers": i64::from(img.in_use),
                "Created": img.created,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"LayersSize": du.layers_size, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []}),
    ))
}

/// Docker's answer to swarm requests on a node that is not in a swarm.
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// The swarm endpoints (`/swarm`, `/nodes`, `/services`, `/tasks`, `/secrets`, `/configs`),
/// answered as a dockerd outside a swarm answers them: 503. berthd never joins a swarm, so
/// `swarm init` and `swarm join` are refused by name.
pub(crate) async fn swarm(uri: axum::http::Uri) -> super::ApiError {
    let path = uri.path();
    let (status, message) = match path {
        "/swarm/init" | "/swarm/join" => (
            503,
            format!(
                "{path}: berthd does not run swarm mode (it is a single-node engine); \
                 run services with docker-compose instead"
            ),
        ),
        "/swarm/leave" => (503, "This node is not part of a swarm".to_string()),
        _ => (503, NOT_A_MANAGER.to_string()),
    };
    super::ApiError { status, message }
}

/// `GET /images/search`: there is no image index to search from here. berthd speaks to
/// registries by the distribution API, which has no search; Docker Hub's index is not reached.
pub(crate) async fn image_search(q: super::Q) -> super::ApiError {
    let term = q.get("term").cloned().unwrap_or_default();
    if term.is_empty() {
        return super::ApiError::bad("term is required: give the name to search for");
    }
    super::ApiError::internal(format!(
        "searching {term:?}: no image index is reachable from berthd (it reaches registries by \
         the distribution API, which has no search; pull by name instead)"
    ))
}
