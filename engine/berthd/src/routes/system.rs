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
    let mut info = json!({
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
            "Runtimes": st.daemon.runtimes,
            "SecurityOptions": st.daemon.security_options,
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "null"], "Log": ["json-file", "local"]},
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "Warnings": [],
    });
    let more = json!({
            "DriverStatus": [["Backing Filesystem", "overlayfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"]],
            "SystemStatus": null,
            "MemoryLimit": true,
            "SwapLimit": std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
            "KernelMemory": false,
            "KernelMemoryTCP": false,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "OomKillDisable": true,
            "IPv4Forwarding": proc_flag("/proc/sys/net/ipv4/ip_forward"),
            "BridgeNfIptables": proc_flag("/proc/sys/net/bridge/bridge-nf-call-iptables"),
            "BridgeNfIp6tables": proc_flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
            "Debug": false,
            "NFd": std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
            "NGoroutines": threads(),
            "SystemTime": berth_common::time::now_rfc3339_nano(),
            "NEventsListener": 0,
            "MemTotal": mem_total(),
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
            "OSVersion": os_version(),
    });
    if let (Value::Object(m), Value::Object(more)) = (&mut info, more) {
        m.extend(more);
    }
    json_response(StatusCode::OK, info)
}

/// Whether a kernel flag file reads `1` (a missing one: no).
fn proc_flag(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
}

/// The host's `VERSION_ID` from /etc/os-release (empty when it has none).
fn os_version() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VERSION_ID="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default()
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

/// The machine's memory in bytes, from /proc/meminfo.
fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
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
        .volumes
        .list(&Default::default())
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
