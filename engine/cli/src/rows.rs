//! berthd's list answers turned into the rows Docker's `--format` fields name (`ps`:
//! `.ID .Image .Command .CreatedAt .RunningFor .Ports .State .Status .Names .Labels .Mounts
//! .Networks`; `images`: `.ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size`, ...),
//! with the default tables of the docker CLI. Pure: `now` is a parameter.

use berth_common::humanize::{human_duration, human_size};
use berth_common::id::short_id;
use serde_json::{Value, json};

/// `ps`'s default table.
pub const PS_TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
/// `ps`'s headers.
pub const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("Size", "SIZE"),
];
/// `images`' default table.
pub const IMAGES_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
/// `images`' headers.
pub const IMAGES_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
];
/// `network ls`' default table.
pub const NETWORKS_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
/// `network ls`' headers.
pub const NETWORKS_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("CreatedAt", "CREATED AT"),
];
/// `volume ls`' default table.
pub const VOLUMES_TABLE: &str = "{{.Driver}}\t{{.Name}}";
/// `volume ls`' headers.
pub const VOLUMES_HEADERS: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Scope", "SCOPE"),
];
/// `history`'s default table.
pub const HISTORY_TABLE: &str =
    "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
/// `history`'s headers.
pub const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// Go's time format of Docker's `CreatedAt`: `2026-12-02 16:00:00 +0000 UTC` (from the RFC 3339
/// date, `2026-12-02T16:00:00Z`).
pub fn created_at(secs: i64) -> String {
    let t = berth_common::time::rfc3339(secs.max(0));
    format!("{} {} +0000 UTC", &t[..10], &t[11..19])
}

/// `5 minutes ago`.
pub fn ago(created: i64, now: i64) -> String {
    format!(
        "{} ago",
        human_duration(u64::try_from(now - created).unwrap_or(0))
    )
}

/// A list answer's `Ports` as Docker's column: `0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 53/udp`
/// (consecutive ports folded into ranges as Docker does).
pub fn ports(list: &Value) -> String {
    struct P {
        ip: String,
        public: Option<u64>,
        private: u64,
        proto: String,
    }
    let mut ps: Vec<P> = list
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| P {
            ip: p["IP"].as_str().unwrap_or("").to_string(),
            public: p["PublicPort"].as_u64(),
            private: p["PrivatePort"].as_u64().unwrap_or(0),
            proto: p["Type"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect();
    ps.sort_by(|a, b| {
        (a.public.is_none(), &a.ip, &a.proto, a.private, a.public).cmp(&(
            b.public.is_none(),
            &b.ip,
            &b.proto,
            b.private,
            b.public,
        ))
    });
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ps.len() {
        // Fold a run where both sides step by one.
        let mut j = i;
        while j + 1 < ps.len()
            && ps[j + 1].ip == ps[i].ip
            && ps[j + 1].proto == ps[i].proto
            && ps[j + 1].private == ps[j].private + 1
            && match (ps[j].public, ps[j + 1].public) {
                (Some(a), Some(b)) => b == a + 1,
                (None, None) => true,
                _ => false,
            }
        {
            j += 1;
        }
        let (a, b) = (&ps[i], &ps[j]);
        let private = if i == j {
            a.private.to_string()
        } else {
            format!("{}-{}", a.private, b.private)
        };
        out.push(match a.public {
            None => format!("{private}/{}", a.proto),
            Some(pa) => {
                let public = if i == j {
                    pa.to_string()
                } else {
                    format!("{pa}-{}", b.public.unwrap_or(pa))
                };
                // IPv6 in brackets, as the docker CLI since v27 prints it (`[::]:8080`).
                let ip = if a.ip.contains(':') {
                    format!("[{}]", a.ip)
                } else {
                    a.ip.clone()
                };
                format!("{ip}:{public}->{private}/{}", a.proto)
            }
        });
        i = j + 1;
    }
    out.join(", ")
}

fn labels(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `ps`'s `COMMAND`: quoted, cut to 20 characters with `…` unless `full`.
fn command(c: &str, full: bool) -> String {
    let n = c.chars().count();
    if full || n <= 20 {
        format!("\"{c}\"")
    } else {
        format!("\"{}…\"", c.chars().take(19).collect::<String>())
    }
}

/// One `ps` row from a `/containers/json` entry.
pub fn ps_row(c: &Value, now: i64, no_trunc: bool) -> Value {
    let id = c["Id"].as_str().unwrap_or("");
    let created = c["Created"].as_i64().unwrap_or(0);
    let names: Vec<String> = c["Names"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            m["Name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(m["Source"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({
        "ID": if no_trunc { id.to_string() } else { short_id(id) },
        "Image": c["Image"].as_str().unwrap_or(""),
        "Command": command(c["Command"].as_str().unwrap_or(""), no_trunc),
        "CreatedAt": created_at(created),
        "RunningFor": ago(created, now),
        "Ports": ports(&c["Ports"]),
        "State": c["State"].as_str().unwrap_or(""),
        "Status": c["Status"].as_str().unwrap_or(""),
        "Names": names.join(","),
        "Labels": labels(&c["Labels"]),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "Size": "0B",
    })
}

/// The `images` rows of one `/images/json` entry: one per tag (`<none>` when untagged).
pub fn image_rows(i: &Value, now: i64, no_trunc: bool) -> Vec<Value> {
    let id = i["Id"].as_str().unwrap_or("");
    let created = i["Created"].as_i64().unwrap_or(0);
    let size = human_size(i["Size"].as_u64().unwrap_or(0));
    let digest = i["RepoDigests"]
        .get(0)
        .and_then(Value::as_str)
        .and_then(|d| d.split_once('@'))
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| "<none>".into());
    let mut tags: Vec<(String, String)> = i["RepoTags"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| *t != "<none>:<none>")
        .map(|t| match t.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
            _ => (t.to_string(), "<none>".to_string()),
        })
        .collect();
    if tags.is_empty() {
        tags.push(("<none>".into(), "<none>".into()));
    }
    tags.into_iter()
        .map(|(repo, tag)| {
            json!({
                "ID": if no_trunc { id.to_string() } else { short_id(id) },
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "CreatedSince": ago(created, now),
                "CreatedAt": created_at(created),
                "Size": size,
            })
        })
        .collect()
}

/// A `network ls` row.
pub fn network_row(n: &Value, no_trunc: bool) -> Value {
    let id = n["Id"].as_str().unwrap_or("");
    json!({
        "ID": if no_trunc { id.to_string() } else { short_id(id) },
        "Name": n["Name"].as_str().unwrap_or(""),
        "Driver": n["Driver"].as_str().unwrap_or(""),
        "Scope": n["Scope"].as_str().unwrap_or("local"),
        "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
        "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
        "CreatedAt": n["Created"].as_str().unwrap_or(""),
        "Labels": labels(&n["Labels"]),
    })
}

/// A `volume ls` row.
pub fn volume_row(v: &Value) -> Value {
    json!({
        "Driver": v["Driver"].as_str().unwrap_or("local"),
        "Name": v["Name"].as_str().unwrap_or(""),
        "Mountpoint": v["Mountpoint"].as_str().unwrap_or(""),
        "Scope": v["Scope"].as_str().unwrap_or("local"),
        "Labels": labels(&v["Labels"]),
    })
}

/// A `history` row.
pub fn history_row(h: &Value, now: i64, no_trunc: bool) -> Value {
    let id = h["Id"].as_str().unwrap_or("<missing>");
    let created = h["Created"].as_i64().unwrap_or(0);
    let by = h["CreatedBy"].as_str().unwrap_or("");
    let by = if no_trunc || by.chars().count() <= 45 {
        by.to_string()
    } else {
        format!("{}…", by.chars().take(44).collect::<String>())
    };
    json!({
        "ID": if no_trunc || id == "<missing>" { id.to_string() } else { short_id(id) },
        "CreatedSince": ago(created, now),
        "CreatedAt": created_at(created),
        "CreatedBy": by,
        "Size": human_size(h["Size"].as_u64().unwrap_or(0)),
        "Comment": h["Comment"].as_str().unwrap_or(""),
    })
}

/// `port`'s lines from an inspect's `NetworkSettings.Ports`: `80/tcp -> 0.0.0.0:8080`,
/// only those of `filter` (`80`, `80/udp`) when given.
pub fn port_lines(ports: &Value, filter: Option<&str>) -> Result<Vec<String>, String> {
    let filter = filter.map(|f| {
        if f.contains('/') {
            f.to_string()
        } else {
            format!("{f}/tcp")
        }
    });
    let mut out = Vec::new();
    let mut keys: Vec<(&String, &Value)> = ports
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    keys.sort_by_key(|(k, _)| {
        let (p, proto) = k.split_once('/').unwrap_or((k, ""));
        (p.parse::<u32>().unwrap_or(0), proto.to_string())
    });
    for (k, bindings) in keys {
        if filter.as_ref().is_some_and(|f| f != k) {
            continue;
        }
        for b in bindings
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
        {
            let ip = b["HostIp"].as_str().unwrap_or("");
            let port = b["HostPort"].as_str().unwrap_or("");
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            if filter.is_some() {
                out.push(format!("{ip}:{port}"));
            } else {
                out.push(format!("{k} -> {ip}:{port}"));
            }
        }
    }
    if let (Some(f), true) = (filter, out.is_empty()) {
        return Err(format!("no public port '{f}' published"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_column_as_docker() {
        let p = json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"},
            {"IP": "127.0.0.1", "PrivatePort": 90, "PublicPort": 9000, "Type": "tcp"},
            {"IP": "127.0.0.1", "PrivatePort": 91, "PublicPort": 9001, "Type": "tcp"},
        ]);
        assert_eq!(
            ports(&p),
            "0.0.0.0:8080->80/tcp, 127.0.0.1:9000-9001->90-91/tcp, [::]:8080->80/tcp, 53/udp"
        );
        assert_eq!(ports(&json!(null)), "");
    }

    #[test]
    fn ps_rows() {
        let c = json!({"Id": "0123456789abcdef0123", "Names": ["/web"], "Image": "busybox",
            "Command": "httpd -f -p 80 -h /www", "Created": 1_000, "State": "running",
            "Status": "Up 5 seconds", "Ports": [], "Labels": {"a": "b"},
            "NetworkSettings": {"Networks": {"bridge": {}}}, "Mounts": [{"Name": "data", "Source": "/x"}]});
        let r = ps_row(&c, 1_300, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Command"], "\"httpd -f -p 80 -h /…\"");
        assert_eq!(r["RunningFor"], "5 minutes ago");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Labels"], "a=b");
        assert_eq!(r["Mounts"], "data");
        assert_eq!(r["Networks"], "bridge");
        assert_eq!(r["CreatedAt"], "1970-01-01 00:16:40 +0000 UTC");
        let full = ps_row(&c, 1_300, true);
        assert_eq!(full["ID"], "0123456789abcdef0123");
        assert_eq!(full["Command"], "\"httpd -f -p 80 -h /www\"");
    }

    #[test]
    fn dates() {
        assert_eq!(created_at(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(created_at(1_796_227_200), "2026-12-02 16:00:00 +0000 UTC");
        assert_eq!(created_at(951_782_400), "2000-02-29 00:00:00 +0000 UTC");
    }

    #[test]
    fn image_rows_per_tag() {
        let i = json!({"Id": "sha256:abcdef0123456789", "Created": 0, "Size": 1_234_567,
            "RepoTags": ["busybox:latest", "localhost:5000/a/b:v1"], "RepoDigests": []});
        let rows = image_rows(&i, 3600, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["Repository"], "localhost:5000/a/b");
        assert_eq!(rows[1]["Tag"], "v1");
        assert_eq!(rows[0]["ID"], "abcdef012345");
        assert_eq!(rows[0]["Size"], "1.235MB");
        assert_eq!(rows[0]["CreatedSince"], "About an hour ago");
        let none = image_rows(&json!({"Id": "sha256:ff", "RepoTags": []}), 0, false);
        assert_eq!(
            (none[0]["Repository"].as_str(), none[0]["Tag"].as_str()),
            (Some("<none>"), Some("<none>"))
        );
    }

    #[test]
    fn port_command() {
        let p = json!({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}], "53/udp": null});
        assert_eq!(
            port_lines(&p, None).unwrap(),
            ["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"]
        );
        assert_eq!(
            port_lines(&p, Some("80")).unwrap(),
            ["0.0.0.0:8080", "[::]:8080"]
        );
        assert!(port_lines(&p, Some("81")).unwrap_err().contains("81/tcp"));
    }
}
