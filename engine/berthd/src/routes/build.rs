//! `POST /build` (the legacy builder's API, which the docker CLI without BuildKit, docker-py
//! and docker-compose use) and `POST /build/prune`. Thin: the query becomes the builder's
//! options (what berth's builder does not do is refused by name before anything runs), the
//! context is spooled and unpacked, and the engine's builder's progress goes out as Docker's
//! JSON lines (`{"stream": ...}`, `{"aux": {"ID": ...}}`, `{"errorDetail": ...}`).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use engine::build::builder::{BuildOptions, Progress};
use engine::build::context::Context;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiResult, AppState, Q, bool_or, flag, json_response};
use crate::api::error::ApiError;

fn json_param<T: serde::de::DeserializeOwned + Default>(
    q: &std::collections::HashMap<String, String>,
    k: &str,
    valid: &str,
) -> Result<T, ApiError> {
    match q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(T::default()),
        // `null` (the docker CLI's empty lists) is nothing.
        Some(v) => serde_json::from_str::<Option<T>>(v)
            .map(Option::unwrap_or_default)
            .map_err(|e| ApiError::bad(format!("invalid {k} {v:?}: {e} (valid: {valid})"))),
    }
}

fn number(q: &std::collections::HashMap<String, String>, k: &str) -> Result<i64, ApiError> {
    match q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad(format!("invalid {k} {v:?}: give a whole number"))),
    }
}

/// The builder's options from the query; what berth does not do is refused by name.
pub(crate) fn options(
    q: &std::collections::HashMap<String, String>,
    uri: &Uri,
) -> Result<BuildOptions, ApiError> {
    let refuse = |what: &str| Err(ApiError::bad(what.to_string()));
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return refuse(
            "remote: berthd builds from the context archive sent with the request; remote contexts (git repositories, tarball URLs) are not supported",
        );
    }
    if q.get("version").is_some_and(|v| v == "2") {
        return refuse(
            "version=2: BuildKit is not supported by berthd; use the legacy builder (DOCKER_BUILDKIT=0)",
        );
    }
    if flag(q, "squash") {
        return refuse("squash: berth's builder does not squash layers");
    }
    let cache_from: Vec<String> = json_param(q, "cachefrom", "a JSON array of image names")?;
    if q.get("outputs").is_some_and(|o| !o.is_empty()) {
        return refuse("outputs: build outputs are BuildKit's; berth's builder makes an image");
    }
    if q.get("isolation")
        .is_some_and(|i| !i.is_empty() && i != "default")
    {
        return refuse("isolation: only the default isolation exists on Linux");
    }
    for k in ["cpushares", "cpuquota", "cpuperiod"] {
        if number(q, k)? != 0 {
            return Err(ApiError::bad(format!(
                "{k}: berth's builder does not limit the CPU of build steps"
            )));
        }
    }
    for k in ["cpusetcpus", "cpusetmems", "cgroupparent"] {
        if q.get(k).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad(format!(
                "{k}: berth's builder does not place build steps in cgroups of their own"
            )));
        }
    }
    let memory = number(q, "memory")?;
    let memswap = number(q, "memswap")?;
    if memswap != 0 && memswap != -1 && memswap != memory {
        return refuse("memswap: berth's builder limits a step's memory only (--memory)");
    }
    let build_args: BTreeMap<String, Option<String>> =
        json_param(q, "buildargs", "a JSON object of names to strings or null")?;
    let labels: BTreeMap<String, String> =
        json_param(q, "labels", "a JSON object of names to strings")?;
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Ulimit {
        name: String,
        soft: i64,
        hard: i64,
    }
    let ulimits: Vec<Ulimit> = json_param(q, "ulimits", "a JSON array of {Name, Soft, Hard}")?;
    let mut add_hosts = Vec::new();
    for h in super::query::all(uri, "extrahosts") {
        add_hosts.extend(
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    let shm = number(q, "shmsize")?;
    Ok(BuildOptions {
        dockerfile: q.get("dockerfile").filter(|d| !d.is_empty()).cloned(),
        tags: super::query::all(uri, "t")
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect(),
        target: q.get("target").filter(|t| !t.is_empty()).cloned(),
        build_args,
        labels,
        no_cache: flag(q, "nocache"),
        pull: flag(q, "pull"),
        rm: bool_or(q, "rm", true),
        force_rm: flag(q, "forcerm"),
        network: q
            .get("networkmode")
            .filter(|n| !n.is_empty() && *n != "default")
            .cloned(),
        shm_size: (shm > 0).then_some(shm as u64),
        ulimits: ulimits
            .into_iter()
            .map(|u| {
                let n = |v: i64| {
                    if v < 0 {
                        "unlimited".to_string()
                    } else {
                        v.to_string()
                    }
                };
                format!("{}={}:{}", u.name, n(u.soft), n(u.hard))
            })
            .collect(),
        add_hosts,
        platform: q.get("platform").filter(|p| !p.is_empty()).cloned(),
        memory: (memory > 0).then_some(memory as u64),
        cache_from,
    })
}

/// The registry clients of a build: `X-Registry-Config`'s login for each registry.
fn registries(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Box<engine::build::builder::RegistryFor>, ApiError> {
    use berth_common::credentials::{decode_config_header, key_for};
    let logins = match headers.get("X-Registry-Config").map(|v| v.to_str()) {
        None => BTreeMap::new(),
        Some(Ok(v)) => decode_config_header(v).map_err(|e| ApiError::bad(e.to_string()))?,
        Some(Err(_)) => {
            return Err(ApiError::bad(
                "invalid X-Registry-Config header: not ASCII (valid: base64url of a JSON object of AuthConfig by registry)",
            ));
        }
    };
    let registry = st.registry.clone();
    Ok(Box::new(move |name: &str| {
        let login = logins.get(&key_for(name)).or_else(|| logins.get(name));
        match login.map(|l| l.request_auth()) {
            Some(Ok(auth)) => registry.as_user(auth),
            _ => (*registry).clone(),
        }
    }))
}

/// The request body as a blocking reader over the chunks a task reads.
struct ChunkReader {
    rx: mpsc::Receiver<std::io::Result<axum::body::Bytes>>,
    cur: axum::body::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// `POST /build`.
pub(crate) async fn build(
    State(st): State<AppState>,
    q: Q,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let opts = options(&q, &uri)?;
    let quiet = flag(&q, "q");
    let registries = registries(&st, &headers)?;
    let builder = st.builder.clone();
    let scratch = builder.scratch().to_path_buf();
    // The body is read by a task of the runtime, ahead of the unpacking thread by up to 256
    // chunks (bounded), so neither waits on the other chunk by chunk.
    let (ctx_tx, ctx_rx) = mpsc::channel::<std::io::Result<axum::body::Bytes>>(256);
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            if ctx_tx
                .send(chunk.map_err(std::io::Error::other))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let reader = ChunkReader {
        rx: ctx_rx,
        cur: axum::body::Bytes::new(),
    };
    // The whole context first, as Docker reads it before the first step.
    let t0 = std::time::Instant::now();
    let ctx = tokio::task::spawn_blocking(move || Context::unpack(reader, &scratch))
        .await
        .map_err(|e| ApiError::internal(format!("build task: {e}")))?
        .map_err(|e| ApiError::bad(e.to_string()))?;
    tracing::debug!("build context received and unpacked in {:?}", t0.elapsed());
    let (tx, rx) = mpsc::channel::<Value>(64);
    tokio::spawn(async move {
        let (ptx, mut prx) = mpsc::channel::<Progress>(64);
        let forward = {
            let tx = tx.clone();
            async move {
                while let Some(p) = prx.recv().await {
                    let v = match p {
                        Progress::Stream(_) if quiet => continue,
                        Progress::Stream(s) => json!({"stream": s}),
                        Progress::Aux(a) => json!({"aux": a}),
                    };
                    if tx.send(v).await.is_err() {
                        // The client went away: dropping the receiver stops the build.
                        return;
                    }
                }
            }
        };
        let building = async {
            let r = builder.build(&ctx, &opts, &*registries, &ptx).await;
            drop(ptx);
            r
        };
        let (result, ()) = tokio::join!(building, forward);
        drop(ctx);
        match result {
            Ok(id) if quiet => {
                let _ = tx.send(json!({"stream": format!("{id}\n")})).await;
            }
            Ok(_) => {}
            Err(e) => {
                let m = e.to_string();
                tracing::info!("build failed: {m}");
                let _ = tx
                    .send(json!({"errorDetail": {"message": m}, "error": m}))
                    .await;
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        super::body::json_lines_body(rx),
    )
        .into_response())
}

/// `POST /build/prune`: the build cache's images nothing else keeps.
pub(crate) async fn build_prune(State(st): State<AppState>) -> ApiResult {
    let builder = st.builder.clone();
    let index = st.containers();
    let (ids, space) = tokio::task::spawn_blocking(move || {
        builder.prune(|id| {
            let id = id.to_string();
            index.entries().any(|e| e.container.image_id == id)
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("build prune task: {e}")))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(
        StatusCode::OK,
        json!({"CachesDeleted": ids, "SpaceReclaimed": space}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> (std::collections::HashMap<String, String>, Uri) {
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "%20").replace('"', "%22")))
            .collect();
        let uri: Uri = format!("/build?{}", query.join("&")).parse().unwrap();
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (map, uri)
    }

    #[test]
    fn the_clis_query_becomes_options() {
        let (m, u) = q(&[
            ("t", "a:1"),
            ("dockerfile", "sub/Dockerfile"),
            ("buildargs", r#"{"A":"1","B":null}"#),
            ("labels", r#"{"l":"v"}"#),
            ("rm", "1"),
            ("nocache", "1"),
            ("networkmode", "default"),
            ("memory", "0"),
            ("cpushares", "0"),
            ("shmsize", "1048576"),
            ("cachefrom", "null"),
            ("ulimits", r#"[{"Name":"nofile","Soft":10,"Hard":20}]"#),
        ]);
        let (n, nu) = q(&[
            ("ulimits", "null"),
            ("buildargs", "null"),
            ("labels", "null"),
        ]);
        assert!(options(&n, &nu).unwrap().ulimits.is_empty());
        let o = options(&m, &u).unwrap();
        assert_eq!(o.tags, ["a:1"]);
        assert_eq!(o.dockerfile.as_deref(), Some("sub/Dockerfile"));
        assert_eq!(o.build_args["A"], Some("1".into()));
        assert_eq!(o.build_args["B"], None);
        assert_eq!(o.labels["l"], "v");
        assert!(o.rm && o.no_cache && o.network.is_none());
        assert_eq!(o.shm_size, Some(1 << 20));
        assert_eq!(o.ulimits, ["nofile=10:20"]);
    }

    #[test]
    fn what_berth_does_not_do_is_refused_by_name() {
        for (k, v) in [
            ("remote", "https://github.com/x/y.git"),
            ("version", "2"),
            ("squash", "1"),
            ("cachefrom", r#"{"not": "a list"}"#),
            ("cpushares", "512"),
            ("cpusetcpus", "0"),
            ("buildargs", "[1]"),
        ] {
            let (m, u) = q(&[(k, v)]);
            let e = options(&m, &u).unwrap_err();
            assert!(e.message.contains(k), "{k}: {}", e.message);
        }
    }
}
