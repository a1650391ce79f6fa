//! `docker image inspect` and `docker history` from an image record and its config: pure
//! functions producing Docker's JSON shape and rows.

use serde::Serialize;
use serde_json::Value;

use crate::image::store::ImageRecord;

/// `docker image inspect`, the fields the CLI and SDKs read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// `sha256:...`.
    pub id: String,
    /// Familiar `repo:tag` names.
    pub repo_tags: Vec<String>,
    /// `repo@sha256:...`.
    pub repo_digests: Vec<String>,
    /// The image a `docker commit` was made on (empty for pulled, loaded and imported ones).
    pub parent: String,
    /// The last history entry's comment.
    pub comment: String,
    /// RFC 3339.
    pub created: String,
    /// The container a build committed it from (empty otherwise).
    pub container: String,
    /// That container's configuration; Docker's empty one when there was none (compose
    /// reads its `Volumes`).
    pub container_config: Value,
    /// The engine version that made it (empty when unknown).
    pub docker_version: String,
    /// `MAINTAINER` / `--author`.
    pub author: String,
    /// The image's run configuration (Env, Cmd, Entrypoint, ...), as in its config.
    pub config: Value,
    /// `amd64`.
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// Uncompressed bytes.
    pub size: u64,
    /// The same (the API's older name for it).
    pub virtual_size: u64,
    /// The layers' diff IDs.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
}

/// `RootFS` of an inspect.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Diff IDs, bottom first.
    pub layers: Vec<String>,
}

/// A row of `docker history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The image ID on the newest row, `<missing>` below it (as Docker shows pulled images).
    pub image: String,
    /// RFC 3339, when recorded.
    pub created: String,
    /// The command that made the step.
    pub created_by: String,
    /// Bytes the step's layer adds (0 for steps without a layer).
    pub size: u64,
    /// The step's comment.
    pub comment: String,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Inspect output for `img` with familiar `tags`, from its parsed `config` JSON.
pub fn inspect(img: &ImageRecord, tags: Vec<String>, config: &Value) -> ImageInspect {
    let history = config.get("history").and_then(Value::as_array);
    ImageInspect {
        id: img.id.to_string(),
        repo_tags: tags,
        repo_digests: img.repo_digests.iter().cloned().collect(),
        parent: img
            .parent
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        comment: history
            .and_then(|h| h.last())
            .map(|h| text(h, "comment"))
            .unwrap_or_default(),
        created: img.created.clone(),
        container: text(config, "container"),
        container_config: docker_config(config.get("container_config")),
        docker_version: text(config, "docker_version"),
        author: text(config, "author"),
        config: config.get("config").cloned().unwrap_or(Value::Null),
        architecture: text(config, "architecture"),
        os: text(config, "os"),
        size: img.size,
        virtual_size: img.size,
        root_fs: RootFs {
            kind: "layers".into(),
            layers: img.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        },
    }
}

/// A container configuration as Docker's image inspect shows one: every field, empty ones
/// included, with what `v` sets over them.
fn docker_config(v: Option<&Value>) -> Value {
    let mut out = serde_json::json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    });
    if let (Some(Value::Object(given)), Value::Object(o)) = (v, &mut out) {
        for (k, x) in given {
            o.insert(k.clone(), x.clone());
        }
    }
    out
}

/// `docker history`: the config's history, newest first; steps that made a layer (not
/// `empty_layer`) take the layers' unpacked sizes in order.
pub fn history(img: &ImageRecord, config: &Value) -> Vec<HistoryRow> {
    let steps = config
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut sizes = img.layers.iter().map(|l| l.unpacked);
    let mut rows: Vec<HistoryRow> = steps
        .iter()
        .map(|h| {
            let empty = h
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            HistoryRow {
                image: "<missing>".into(),
                created: text(h, "created"),
                created_by: text(h, "created_by"),
                size: if empty { 0 } else { sizes.next().unwrap_or(0) },
                comment: text(h, "comment"),
            }
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.image = img.id.to_string();
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::reference::Digest;
    use crate::image::store::LayerRecord;

    fn record() -> ImageRecord {
        let d = |c: char| Digest::sha256(&c.to_string().repeat(64)).unwrap();
        let layer = |c: char, unpacked: u64| LayerRecord {
            blob: d(c),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 10,
            unpacked,
            diff_id: d(c),
            chain_id: d(c),
        };
        ImageRecord {
            id: d('f'),
            manifest: d('e'),
            layers: vec![layer('a', 100), layer('b', 200)],
            created: "2026-11-23T10:00:00Z".into(),
            size: 300,
            repo_digests: ["localhost:5000/app@sha256:".to_string() + &"c".repeat(64)].into(),
            parent: None,
        }
    }

    fn config() -> Value {
        serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "history": [
                {"created": "2026-11-20T00:00:00Z", "created_by": "ADD rootfs /"},
                {"created": "2026-11-21T00:00:00Z", "created_by": "ENV PATH=/bin", "empty_layer": true},
                {"created": "2026-11-22T00:00:00Z", "created_by": "RUN make", "comment": "built"}
            ]
        })
    }

    #[test]
    fn inspect_has_dockers_field_names() {
        let v = serde_json::to_value(inspect(&record(), vec!["app:1".into()], &config())).unwrap();
        assert_eq!(v["Id"], format!("sha256:{}", "f".repeat(64)));
        assert_eq!(v["RepoTags"][0], "app:1");
        assert_eq!(v["Config"]["Cmd"][0], "sh");
        assert_eq!(v["RootFS"]["Type"], "layers");
        assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 2);
        assert_eq!(v["Architecture"], "amd64");
        assert_eq!(v["Comment"], "built");
        assert_eq!(v["Size"], 300);
    }

    #[test]
    fn history_is_newest_first_and_sizes_skip_empty_layers() {
        let rows = history(&record(), &config());
        let got: Vec<(&str, u64)> = rows
            .iter()
            .map(|r| (r.created_by.as_str(), r.size))
            .collect();
        assert_eq!(
            got,
            [
                ("RUN make", 200),
                ("ENV PATH=/bin", 0),
                ("ADD rootfs /", 100)
            ]
        );
        assert_eq!(rows[0].image, format!("sha256:{}", "f".repeat(64)));
        assert_eq!(rows[1].image, "<missing>");
    }
}
