//! Image endpoints that move data: pull (`POST /images/create`) and push with Docker's JSON
//! progress stream, tag, history, save (`GET /images/get`) and load (`POST /images/load`).
//! Registry work runs on the engine's registry client, with the credentials the API client sent
//! in `X-Registry-Auth` for that request only (berthd keeps no logins, as Docker's daemon);
//! progress flows through a bounded channel.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use engine::events::Event as EngineEvent;
use engine::image::registry::progress::{Event, Sink};
use engine::image::registry::{Registry, pull, push};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::routes::AppState;

use super::Q;

/// Progress lines kept in flight per operation; past it, byte-count updates are dropped (the
/// status lines are few and always fit).
const PROGRESS_QUEUE: usize = 1024;

fn progress_stream(
    run: impl FnOnce(Sink) -> futures::future::BoxFuture<'static, Result<Vec<Value>, String>>
    + Send
    + 'static,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(PROGRESS_QUEUE);
    let sink_tx = tx.clone();
    let sink: Sink = Arc::new(move |ev: Event| {
        let _ = sink_tx.try_send(ev.to_docker_json());
    });
    tokio::spawn(async move {
        let last = match run(sink).await {
            Ok(lines) => lines,
            Err(message) => vec![json!({"errorDetail": {"message": message}, "error": message})],
        };
        for l in last {
            let _ = tx.send(l).await;
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::body::json_lines_body(rx),
    )
        .into_response()
}

/// The registry client for one request, carrying the credentials of its `X-Registry-Auth`
/// header (none when absent or `{}`). A header that cannot be read is refused, naming it, but
/// for a pull (`lenient`), which goes on without credentials, as Docker's daemon does "to
/// increase compatibility"; credentials berth cannot use (an identity token) are refused always.
fn registry_for(st: &AppState, headers: &HeaderMap, lenient: bool) -> Result<Registry, ApiError> {
    use engine::image::registry::credentials::{
        AuthConfig, CredentialsError, RequestAuth, decode_header,
    };
    let bad = |e: CredentialsError| ApiError::bad(e.to_string());
    let config = match headers.get("X-Registry-Auth").map(|v| v.to_str()) {
        None => AuthConfig::default(),
        Some(Ok(v)) => match decode_header(v) {
            Ok(c) => c,
            Err(e) if lenient => {
                tracing::debug!("pulling without credentials: {e}");
                AuthConfig::default()
            }
            Err(e) => return Err(bad(e)),
        },
        Some(Err(_)) if lenient => AuthConfig::default(),
        Some(Err(_)) => {
            return Err(ApiError::bad(
                "invalid X-Registry-Auth header: not ASCII (valid: base64url of Docker's AuthConfig JSON)",
            ));
        }
    };
    let auth: RequestAuth = config.request_auth().map_err(bad)?;
    Ok(st.registry.as_user(auth))
}

/// `POST /images/create?fromImage=NAME&tag=TAG` (pull), or `?fromSrc=-&repo=NAME&tag=TAG`
/// with a root filesystem tarball (plain, gzip or zstd) as the body (import).
pub async fn image_create(
    State(st): State<AppState>,
    q: Q,
    req: Request,
) -> Result<Response, ApiError> {
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(ApiError::bad(format!(
                "fromSrc {src:?} is not supported: berth imports from the request body only (valid: -)"
            )));
        }
        return image_import(st, &q, req).await;
    }
    let from = q
        .get("fromImage")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad("fromImage is required (the image to pull)"))?;
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    let familiar = name
        .parse::<engine::image::reference::Reference>()
        .map_err(|e| ApiError::bad(e.to_string()))?
        .familiar_name_with_tag();
    let store = st.images.clone();
    let registry = registry_for(&st, req.headers(), true)?;
    let events = st.events.clone();
    Ok(progress_stream(move |sink| {
        Box::pin(async move {
            let pulled = pull::pull(&registry, &store, &name, None, sink)
                .await
                .map_err(|e| e.to_string())?;
            let _ = pulled;
            events.publish(EngineEvent::image(&familiar, "pull", &familiar));
            Ok(Vec::new())
        })
    }))
}

/// `POST /images/{name}/push`, `POST /images/{name}/tag?repo=&tag=` (names may hold slashes).
pub async fn image_post(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    q: Q,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = q
            .get("repo")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::bad("tag: repo is required"))?;
        let target = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.clone(),
        };
        st.images.tag(name, &target)?;
        let id = st.images.resolve(&target)?.id.to_string();
        let familiar = target
            .parse::<engine::image::reference::Reference>()
            .map_or(target, |r| r.familiar_name_with_tag());
        st.events.publish(EngineEvent::image(&id, "tag", &familiar));
        return Ok(StatusCode::CREATED.into_response());
    }
    let Some(name) = rest.strip_suffix("/push") else {
        return Err(ApiError::not_found(format!(
            "page not found: POST /images/{rest}"
        )));
    };
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let store = st.images.clone();
    store.resolve(&name)?;
    let registry = registry_for(&st, &headers, false)?;
    let events = st.events.clone();
    Ok(progress_stream(move |sink| {
        Box::pin(async move {
            push::push(&registry, &store, &name, sink)
                .await
                .map_err(|e| e.to_string())?;
            let familiar = name
                .parse::<engine::image::reference::Reference>()
                .map_or_else(|_| name.clone(), |r| r.familiar_name_with_tag());
            events.publish(EngineEvent::image(&familiar, "push", &familiar));
            Ok(Vec::new())
        })
    }))
}

/// The parsed config of `img` (named `name` in errors).
pub fn image_config(
    store: &engine::image::store::ImageStore,
    img: &engine::image::store::ImageRecord,
    name: &str,
) -> Result<Value, ApiError> {
    let bytes = store
        .blobs()
        .read(&img.id)
        .map_err(|err| ApiError::internal(format!("image {name}: {err}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::internal(format!("image {name}: its config: {err}")))
}

/// `GET /images/{name}/history`.
pub async fn image_history(st: &AppState, name: &str) -> Result<Response, ApiError> {
    let store = &st.images;
    let img = store.resolve(name)?;
    let config = image_config(store, &img, name)?;
    let rows: Vec<Value> = engine::image::inspect::history(&img, &config)
        .into_iter()
        .map(|r| {
            json!({
                "Id": r.image,
                "Created": berth_common::time::parse(&r.created).map_or(0, |(s, _)| s),
                "CreatedBy": r.created_by,
                "Tags": null,
                "Size": r.size,
                "Comment": r.comment,
            })
        })
        .collect();
    let v = Value::Array(rows);
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}

/// `GET /images/get?names=a&names=b` (docker save): the archive, written to a scratch file
/// first so a failure is an error status, not a truncated tar.
pub async fn image_save(
    State(st): State<AppState>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let names: Vec<String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("names="))
        .map(percent_decode)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad("save: give at least one image (names=...)"));
    }
    save(&st, names).await
}

/// `docker save` of `names` as a tar body (`GET /images/get`, `GET /images/{name}/get`): written
/// to a scratch file off the async workers, then streamed.
pub async fn save(st: &AppState, names: Vec<String>) -> Result<Response, ApiError> {
    let (store, scratch) = (st.images.clone(), st.scratch.clone());
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, ApiError> {
        std::fs::create_dir_all(&scratch).map_err(|e| ApiError::internal(e.to_string()))?;
        let f = tempfile::tempfile_in(&scratch).map_err(|e| ApiError::internal(e.to_string()))?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut w = std::io::BufWriter::new(f);
        engine::image::archive::save(&store, &refs, &mut w).map_err(|e| match e.to_string() {
            m if m.contains("No such image") || m.contains("no such image") => {
                ApiError::not_found(m)
            }
            m => ApiError::internal(m),
        })?;
        let mut f = w
            .into_inner()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        std::io::Seek::rewind(&mut f).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(f)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        file_body(tokio::fs::File::from_std(file)),
    )
        .into_response())
}

/// The bytes of `f` as a body, read in 256 KiB chunks by a task as the client takes them.
fn file_body(mut f: tokio::fs::File) -> Body {
    use tokio::io::AsyncReadExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match f.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    super::body::channel_body(rx)
}

/// `%XX` escapes (and `+`, a space in a query) decoded; bytes that are not UTF-8 replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /images/load` (docker load): the archive body is spooled to a scratch file, then loaded.
pub async fn image_load(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let store = st.images.clone();
    let mut f = spool(&st, req).await?;
    let lines = tokio::task::spawn_blocking(move || -> Result<Vec<String>, ApiError> {
        std::io::Seek::rewind(&mut f).map_err(|e| ApiError::internal(e.to_string()))?;
        engine::image::archive::load(&store, std::io::BufReader::new(f))
            .map_err(|e| ApiError::bad(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let body: String = lines
        .iter()
        .map(|l| format!("{}\r\n", json!({"stream": format!("{l}\n")})))
        .collect();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `POST /auth` (`docker login`): checks the credentials against the registry and keeps
/// nothing, as Docker's daemon: the client files them and sends them with each pull and push.
pub async fn auth(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    use engine::image::registry::credentials::{AuthConfig, RequestAuth};
    let b: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid auth request: {e}")))?;
    let login = match b.request_auth().map_err(|e| ApiError::bad(e.to_string()))? {
        RequestAuth::Basic(l) => l,
        RequestAuth::Anonymous | RequestAuth::Bearer(_) => {
            return Err(ApiError::bad(
                "auth: a username and password are required (registrytoken logins are not checked by berth)",
            ));
        }
    };
    // The docker CLI sends Docker Hub's key (`https://index.docker.io/v1/`) for a login
    // without a server: the registry is docker.io.
    let server =
        engine::image::registry::credentials::registry_of_server(&b.serveraddress).to_string();
    if server.is_empty() {
        return Err(ApiError::bad(
            "auth: serveraddress is required (berth has no default registry)",
        ));
    }
    st.registry
        .check_login(&server, &login)
        .await
        .map_err(|e| {
            let m = e.to_string();
            if m.to_ascii_lowercase().contains("unauthorized") || m.contains("401") {
                ApiError {
                    status: 401,
                    message: m,
                }
            } else {
                ApiError::internal(m)
            }
        })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"Status": "Login Succeeded", "IdentityToken": ""}).to_string(),
    )
        .into_response())
}

/// The request body in an unlinked scratch file (a crash leaves nothing), rewound.
async fn spool(st: &AppState, req: Request) -> Result<std::fs::File, ApiError> {
    let scratch = &st.scratch;
    std::fs::create_dir_all(scratch).map_err(|e| ApiError::internal(e.to_string()))?;
    let f = tempfile::tempfile_in(scratch).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out = tokio::fs::File::from_std(f);
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(format!("reading the archive: {e}")))?;
        tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    let mut f = out.into_std().await;
    std::io::Seek::rewind(&mut f).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(f)
}

/// `docker import`: the body as the single layer of a new image, tagged `repo[:tag]` when
/// given; Docker's answer is one status line with the image ID.
async fn image_import(
    st: AppState,
    q: &HashMap<String, String>,
    req: Request,
) -> Result<Response, ApiError> {
    let name = super::query::repo_tag(q);
    if let Some(n) = &name {
        n.parse::<engine::image::reference::Reference>()
            .map_err(|e| ApiError::bad(e.to_string()))?;
    }
    let changes = super::query::all(req.uri(), "changes");
    let comment = q
        .get("message")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| "Imported from -".into());
    let store = st.images.clone();
    // The body is read whole first: a client still sending it sees the answer, not a reset.
    let f = spool(&st, req).await?;
    let tag = name.clone();
    let rec = tokio::task::spawn_blocking(move || {
        // `--change`: applied before anything is stored, so a bad one leaves nothing behind
        // (off the async workers: substitutions can be long).
        let mut config = serde_json::Map::new();
        engine::container::commit::apply_changes(&mut config, &changes)?;
        store
            .import_with(
                std::io::BufReader::new(f),
                tag.as_deref(),
                Value::Object(config),
                &comment,
            )
            .map_err(|e| ApiError::bad(format!("importing the tarball: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let id = rec.id.to_string();
    st.events.publish(EngineEvent::image(
        &id,
        "import",
        name.as_deref().unwrap_or(&id),
    ));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\r\n", json!({"status": id})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_decode() {
        assert_eq!(
            super::percent_decode("localhost%3A5000%2Fa%2Fb%3A1"),
            "localhost:5000/a/b:1"
        );
        assert_eq!(super::percent_decode("a+b%zz%4"), "a b%zz%4");
    }
}
