//! `-v` and `--mount` as Docker reads them, into one [`MountSpec`]: pure parsers over the
//! user's text, errors naming the bad part and what would be valid.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::container_create::{BindOptions, Mount, TmpfsOptions, VolumeOptions};

/// What a mount attaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A host path (`-v /host:/ctr`, `type=bind`).
    Bind(String),
    /// A named volume (`-v data:/ctr`, `type=volume,source=data`).
    Volume(String),
    /// A fresh anonymous volume (`-v /ctr`, `type=volume` without a source).
    Anonymous,
    /// A tmpfs (`--mount type=tmpfs` or `--tmpfs`), with size in bytes and mode when given.
    Tmpfs {
        /// `tmpfs-size`.
        size: Option<u64>,
        /// `tmpfs-mode` (octal).
        mode: Option<u32>,
    },
}

/// Mount propagation (`-v ...:rshared`, `bind-propagation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// Docker's default.
    #[default]
    RPrivate,
    /// `private`.
    Private,
    /// `shared`.
    Shared,
    /// `rshared`.
    RShared,
    /// `slave`.
    Slave,
    /// `rslave`.
    RSlave,
}

impl Propagation {
    fn parse(s: &str) -> Option<Propagation> {
        Some(match s {
            "private" => Propagation::Private,
            "rprivate" => Propagation::RPrivate,
            "shared" => Propagation::Shared,
            "rshared" => Propagation::RShared,
            "slave" => Propagation::Slave,
            "rslave" => Propagation::RSlave,
            _ => return None,
        })
    }

    /// The mount option name.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::RPrivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::RShared => "rshared",
            Propagation::Slave => "slave",
            Propagation::RSlave => "rslave",
        }
    }
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// What is mounted.
    pub source: Source,
    /// Where, inside the container (absolute, not `/`).
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// Propagation (binds).
    pub propagation: Propagation,
    /// Do not copy the image's content into an empty volume (`nocopy`, `volume-nocopy`).
    pub no_copy: bool,
}

/// Why a mount spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountSpecError {
    /// The spec as a whole.
    #[error("invalid volume specification: '{spec}': {why}")]
    Spec {
        /// What the user wrote.
        spec: String,
        /// What is wrong and what would be valid.
        why: String,
    },
}

fn bad(spec: &str, why: impl fmt::Display) -> MountSpecError {
    MountSpecError::Spec {
        spec: spec.to_string(),
        why: why.to_string(),
    }
}

/// A named volume's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, as Docker's local driver.
pub fn valid_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn check_target(spec: &str, target: &str) -> Result<(), MountSpecError> {
    if !target.starts_with('/') {
        return Err(bad(
            spec,
            format!("container path {target:?} must be absolute"),
        ));
    }
    if target.trim_end_matches('/').is_empty() {
        return Err(bad(spec, "the container path cannot be '/'"));
    }
    if target.split('/').any(|c| c == "..") {
        return Err(bad(
            spec,
            format!("container path {target:?} must not contain '..'"),
        ));
    }
    Ok(())
}

/// `-v [SOURCE:]TARGET[:OPTIONS]`: SOURCE an absolute host path (bind) or a volume name;
/// OPTIONS comma-separated from `ro`, `rw`, `z`, `Z`, `nocopy`, a propagation mode, and
/// `consistent`/`cached`/`delegated` (accepted and ignored, as on Linux Docker).
pub fn parse_volume(spec: &str) -> Result<MountSpec, MountSpecError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] if t.starts_with('/') => (Some(*s), *t, None),
        [t, o] if t.starts_with('/') => (None, *t, Some(*o)),
        [s, t] => (Some(*s), *t, None),
        [s, t, o] => (Some(*s), *t, Some(*o)),
        _ => return Err(bad(spec, "expected [SOURCE:]TARGET[:OPTIONS]")),
    };
    if spec.is_empty() {
        return Err(bad(spec, "empty"));
    }
    check_target(spec, target)?;
    let source = match source {
        None => Source::Anonymous,
        Some(s) if s.starts_with('/') => Source::Bind(s.to_string()),
        Some(s) if valid_volume_name(s) => Source::Volume(s.to_string()),
        Some(s) => {
            return Err(bad(
                spec,
                format!(
                    "{s:?} is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
                ),
            ));
        }
    };
    let mut m = MountSpec {
        source,
        target: target.to_string(),
        read_only: false,
        propagation: Propagation::default(),
        no_copy: false,
    };
    let (mut rw_seen, mut prop_seen) = (false, false);
    for o in opts.into_iter().flat_map(|o| o.split(',')) {
        match o {
            "ro" | "rw" if rw_seen => return Err(bad(spec, "ro/rw given twice")),
            "ro" | "rw" => {
                rw_seen = true;
                m.read_only = o == "ro";
            }
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "nocopy" if matches!(m.source, Source::Bind(_)) => {
                return Err(bad(spec, "nocopy applies to volumes, not bind mounts"));
            }
            "nocopy" => m.no_copy = true,
            p => match Propagation::parse(p) {
                Some(_) if prop_seen => return Err(bad(spec, "propagation given twice")),
                Some(_) if !matches!(m.source, Source::Bind(_)) => {
                    return Err(bad(
                        spec,
                        format!("propagation {p:?} applies to bind mounts only"),
                    ));
                }
                Some(pr) => {
                    prop_seen = true;
                    m.propagation = pr;
                }
                None => {
                    return Err(bad(
                        spec,
                        format!(
                            "invalid mode {p:?}: valid are ro, rw, z, Z, nocopy, private, rprivate, shared, rshared, slave, rslave"
                        ),
                    ));
                }
            },
        }
    }
    Ok(m)
}

/// Splits `--mount`'s value as CSV (Docker reads it with a CSV reader): fields separated by
/// commas, a field in double quotes may hold commas, `""` is a quote inside one.
fn csv_fields(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if cur.is_empty() || cur.ends_with('=') => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out)
}

fn parse_bool(spec: &str, key: &str, v: Option<&str>) -> Result<bool, MountSpecError> {
    match v {
        None | Some("1" | "true" | "True" | "TRUE") => Ok(true),
        Some("0" | "false" | "False" | "FALSE") => Ok(false),
        Some(v) => Err(bad(spec, format!("{key}={v:?}: expected true or false"))),
    }
}

/// `--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...`.
pub fn parse_mount(spec: &str) -> Result<MountSpec, MountSpecError> {
    let fields = csv_fields(spec).ok_or_else(|| bad(spec, "unterminated quote"))?;
    let mut f = Fields::default();
    for field in fields {
        if field.is_empty() {
            continue;
        }
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(String::from)
                .ok_or_else(|| bad(spec, format!("{k} needs a value ({k}=...)")))
        };
        match k.as_str() {
            "type" => f.kind = Some(need(v)?),
            "source" | "src" => f.source = Some(need(v)?),
            "target" | "destination" | "dst" => f.target = Some(need(v)?),
            "readonly" | "ro" => f.read_only = parse_bool(spec, &k, v)?,
            "bind-propagation" => {
                let p = need(v)?;
                f.propagation = Some(Propagation::parse(&p).ok_or_else(|| {
                    bad(spec, format!("bind-propagation={p:?}: valid are private, rprivate, shared, rshared, slave, rslave"))
                })?);
            }
            "volume-nocopy" => f.no_copy = parse_bool(spec, &k, v)?,
            "volume-driver" => {
                let d = need(v)?;
                if d != "local" {
                    return Err(bad(
                        spec,
                        format!("volume-driver={d:?}: berth has the local driver only"),
                    ));
                }
            }
            "tmpfs-size" => {
                let s = need(v)?;
                f.size = Some(parse_size(&s).ok_or_else(|| {
                    bad(
                        spec,
                        format!("tmpfs-size={s:?}: expected bytes, optionally with k, m or g"),
                    )
                })?);
            }
            "tmpfs-mode" => {
                let s = need(v)?;
                f.mode = Some(
                    u32::from_str_radix(&s, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            bad(
                                spec,
                                format!("tmpfs-mode={s:?}: expected an octal mode such as 1777"),
                            )
                        })?,
                );
            }
            "consistency" | "bind-nonrecursive" | "volume-label" | "volume-opt" => {}
            other => {
                return Err(bad(
                    spec,
                    format!(
                        "unknown key {other:?}: valid are type, source, target, readonly, bind-propagation, volume-nocopy, volume-driver, tmpfs-size, tmpfs-mode"
                    ),
                ));
            }
        }
    }
    f.build(spec)
}

/// A mount's fields, from `--mount` text or an API `Mount`, checked in one place.
#[derive(Debug, Default)]
struct Fields {
    kind: Option<String>,
    source: Option<String>,
    target: Option<String>,
    read_only: bool,
    propagation: Option<Propagation>,
    no_copy: bool,
    size: Option<u64>,
    mode: Option<u32>,
}

impl Fields {
    /// The mount, or an error naming `spec` (the text, or the API mount as JSON).
    fn build(self, spec: &str) -> Result<MountSpec, MountSpecError> {
        let Fields {
            kind,
            source,
            target,
            read_only: ro,
            propagation: prop,
            no_copy: nocopy,
            size,
            mode,
        } = self;
        let target = target.ok_or_else(|| bad(spec, "target is required (target=/path)"))?;
        check_target(spec, &target)?;
        let kind = kind.unwrap_or_else(|| "volume".into());
        let source = match kind.as_str() {
            "bind" => {
                let s = source.ok_or_else(|| bad(spec, "a bind mount needs source=/host/path"))?;
                if !s.starts_with('/') {
                    return Err(bad(
                        spec,
                        format!("bind source {s:?} must be an absolute path"),
                    ));
                }
                Source::Bind(s)
            }
            "volume" => match source {
                None => Source::Anonymous,
                Some(s) if valid_volume_name(&s) => Source::Volume(s),
                Some(s) => {
                    return Err(bad(
                        spec,
                        format!("volume name {s:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]+"),
                    ));
                }
            },
            "tmpfs" => {
                if source.is_some() {
                    return Err(bad(spec, "a tmpfs mount takes no source"));
                }
                Source::Tmpfs { size, mode }
            }
            other => {
                return Err(bad(
                    spec,
                    format!("type={other:?}: valid are bind, volume, tmpfs"),
                ));
            }
        };
        if prop.is_some() && !matches!(source, Source::Bind(_)) {
            return Err(bad(spec, "bind-propagation applies to bind mounts only"));
        }
        if (size.is_some() || mode.is_some()) && !matches!(source, Source::Tmpfs { .. }) {
            return Err(bad(
                spec,
                "tmpfs-size and tmpfs-mode apply to tmpfs mounts only",
            ));
        }
        Ok(MountSpec {
            source,
            target,
            read_only: ro,
            propagation: prop.unwrap_or_default(),
            no_copy: nocopy,
        })
    }
}

/// An API `HostConfig.Mounts` entry (what docker-py and compose send, and what `berth run
/// --mount` becomes) as a mount, checked as `--mount` text is; the error shows the entry.
pub fn from_api(m: &Mount) -> Result<MountSpec, MountSpecError> {
    let spec = serde_json::to_string(m).unwrap_or_default();
    // What berth cannot apply yet is refused by name, never dropped.
    if let Some(o) = &m.volume_options {
        let driver = o.driver_config.as_ref();
        for (field, set) in [
            ("VolumeOptions.Subpath", !o.subpath.is_empty()),
            (
                "VolumeOptions.Labels",
                o.labels.as_ref().is_some_and(|l| !l.is_empty()),
            ),
            (
                "VolumeOptions.DriverConfig",
                driver.is_some_and(|d| {
                    !matches!(d.name.as_str(), "" | "local")
                        || d.options.as_ref().is_some_and(|o| !o.is_empty())
                }),
            ),
        ] {
            if set {
                return Err(bad(&spec, format!("{field} is not supported by berth yet")));
            }
        }
    }
    if let Some(o) = &m.bind_options {
        for (field, set) in [
            ("BindOptions.NonRecursive", o.non_recursive),
            ("BindOptions.CreateMountpoint", o.create_mountpoint),
            (
                "BindOptions.ReadOnlyNonRecursive",
                o.read_only_non_recursive,
            ),
            (
                "BindOptions.ReadOnlyForceRecursive",
                o.read_only_force_recursive,
            ),
        ] {
            if set {
                return Err(bad(&spec, format!("{field} is not supported by berth yet")));
            }
        }
    }
    let propagation = match m.bind_options.as_ref().map(|o| o.propagation.as_str()) {
        None | Some("") => None,
        Some(p) => Some(Propagation::parse(p).ok_or_else(|| {
            bad(
                &spec,
                format!("BindOptions.Propagation {p:?}: valid are private, rprivate, shared, rshared, slave, rslave"),
            )
        })?),
    };
    let tmpfs = m.tmpfs_options.as_ref();
    let size = match tmpfs.map(|o| o.size_bytes) {
        None | Some(0) => None,
        Some(n) => Some(u64::try_from(n).map_err(|_| {
            bad(
                &spec,
                format!("TmpfsOptions.SizeBytes {n}: expected 0 or more bytes"),
            )
        })?),
    };
    let mode = match tmpfs.and_then(|o| o.mode) {
        Some(md) if md > 0o7777 => {
            return Err(bad(
                &spec,
                format!("TmpfsOptions.Mode {md:o}: expected permission bits up to 7777 (octal)"),
            ));
        }
        md => md,
    };
    Fields {
        kind: Some(m.kind.clone()).filter(|k| !k.is_empty()),
        source: Some(m.source.clone()).filter(|s| !s.is_empty()),
        target: Some(m.target.clone()).filter(|t| !t.is_empty()),
        read_only: m.read_only,
        propagation,
        no_copy: m.volume_options.as_ref().is_some_and(|o| o.no_copy),
        size,
        mode,
    }
    .build(&spec)
}

/// A mount as an API `Mount` entry, as the docker CLI sends `--mount`.
pub fn to_api(m: &MountSpec) -> Mount {
    let mut out = Mount {
        target: m.target.clone(),
        read_only: m.read_only,
        ..Mount::default()
    };
    match &m.source {
        Source::Bind(src) => {
            out.kind = "bind".into();
            out.source = src.clone();
            out.bind_options = Some(BindOptions {
                propagation: m.propagation.as_str().into(),
                ..BindOptions::default()
            });
        }
        Source::Volume(name) => {
            out.kind = "volume".into();
            out.source = name.clone();
            out.volume_options = Some(VolumeOptions {
                no_copy: m.no_copy,
                ..VolumeOptions::default()
            });
        }
        Source::Anonymous => {
            out.kind = "volume".into();
            out.volume_options = Some(VolumeOptions {
                no_copy: m.no_copy,
                ..VolumeOptions::default()
            });
        }
        Source::Tmpfs { size, mode } => {
            out.kind = "tmpfs".into();
            out.tmpfs_options = Some(TmpfsOptions {
                size_bytes: size.map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX)),
                mode: *mode,
            });
        }
    }
    out
}

/// `512`, `64k`, `100m`, `1g` (binary units, as Docker's RAMInBytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let idx = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let v: f64 = num.trim().parse().ok()?;
    if !(0.0..1.8e19).contains(&v) {
        return None;
    }
    let bytes = v * mult as f64;
    (bytes < 1.8e19).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> MountSpec {
        parse_volume(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn dash_v_forms() {
        assert_eq!(v("/data").source, Source::Anonymous);
        let m = v("/srv/www:/usr/share/www:ro");
        assert_eq!(m.source, Source::Bind("/srv/www".into()));
        assert_eq!(m.target, "/usr/share/www");
        assert!(m.read_only);
        let m = v("pgdata:/var/lib/pg");
        assert_eq!(m.source, Source::Volume("pgdata".into()));
        assert!(!m.read_only);
        assert!(v("cache:/c:nocopy").no_copy);
        assert_eq!(v("/h:/c:rshared,ro").propagation, Propagation::RShared);
        assert!(v("/h:/c:z").source == Source::Bind("/h".into()));
        assert!(v("/data:ro").read_only, "anonymous volume with options");
    }

    #[test]
    fn dash_v_errors_name_the_part() {
        for (spec, needle) in [
            ("", "empty"),
            ("data", "absolute"),
            ("data:rel/path", "absolute"),
            ("/h:/", "cannot be '/'"),
            ("/h:/a/../b", ".."),
            ("a b:/c", "neither"),
            ("/h:/c:rx", "invalid mode \"rx\""),
            ("/h:/c:ro,rw", "twice"),
            ("vol:/c:rshared", "bind mounts only"),
            ("/h:/c:nocopy", "not bind"),
            ("a:b:c:d", "expected [SOURCE:]TARGET"),
        ] {
            let e = parse_volume(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
            assert!(e.contains(&format!("'{spec}'")), "{e}");
        }
    }

    #[test]
    fn dash_dash_mount_forms() {
        let m =
            parse_mount("type=bind,source=/h,target=/c,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(
            (m.source, m.read_only, m.propagation),
            (Source::Bind("/h".into()), true, Propagation::RSlave)
        );
        let m = parse_mount("type=volume,src=data,dst=/d,volume-nocopy").unwrap();
        assert_eq!(m.source, Source::Volume("data".into()));
        assert!(m.no_copy);
        assert_eq!(
            parse_mount("target=/anon").unwrap().source,
            Source::Anonymous
        );
        let m = parse_mount("type=tmpfs,destination=/run,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            m.source,
            Source::Tmpfs {
                size: Some(64 << 20),
                mode: Some(0o1770)
            }
        );
        let m = parse_mount("type=bind,\"source=/a,b\",target=/c,readonly=false").unwrap();
        assert_eq!(m.source, Source::Bind("/a,b".into()));
        assert!(!m.read_only);
    }

    #[test]
    fn dash_dash_mount_errors_name_the_part() {
        for (spec, needle) in [
            ("type=bind,target=/c", "needs source"),
            ("type=bind,source=rel,target=/c", "absolute"),
            ("type=volume,source=/c", "target is required"),
            ("source=x", "target is required"),
            ("type=nfs,target=/c", "valid are bind, volume, tmpfs"),
            ("type=tmpfs,source=x,target=/c", "no source"),
            ("type=tmpfs,target=/c,tmpfs-size=lots", "tmpfs-size"),
            ("type=tmpfs,target=/c,tmpfs-mode=999", "octal"),
            ("type=volume,target=/c,tmpfs-size=1m", "tmpfs mounts only"),
            (
                "type=volume,target=/c,bind-propagation=shared",
                "bind mounts only",
            ),
            (
                "type=bind,source=/h,target=/c,readonly=maybe",
                "true or false",
            ),
            (
                "type=bind,source=/h,target=/c,color=red",
                "unknown key \"color\"",
            ),
            ("type=bind,\"source=/h,target=/c", "unterminated quote"),
            (
                "type=volume,target=/c,volume-driver=nfs",
                "local driver only",
            ),
        ] {
            let e = parse_mount(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("100MiB"), Some(100 << 20));
        assert_eq!(parse_size("10b"), Some(10));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn api_mounts_are_checked_as_mount_text_is() {
        for text in [
            "type=bind,source=/h,target=/c,readonly,bind-propagation=rshared",
            "type=volume,source=data,target=/d,volume-nocopy",
            "type=volume,target=/anon",
            "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
        ] {
            let m = parse_mount(text).unwrap();
            assert_eq!(from_api(&to_api(&m)).unwrap(), m, "{text}");
        }
        let bad = |json: &str| {
            from_api(&serde_json::from_str(json).unwrap())
                .unwrap_err()
                .to_string()
        };
        let e = bad(r#"{"Type":"bind","Source":"rel","Target":"/c"}"#);
        assert!(e.contains("\"rel\"") && e.contains("absolute"), "{e}");
        let e = bad(r#"{"Type":"nfs","Target":"/c"}"#);
        assert!(
            e.contains("\"nfs\"") && e.contains("bind, volume, tmpfs"),
            "{e}"
        );
        let e = bad(
            r#"{"Type":"bind","Source":"/h","Target":"/c","BindOptions":{"Propagation":"odd"}}"#,
        );
        assert!(e.contains("Propagation \"odd\""), "{e}");
        let e = bad(r#"{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":-1}}"#);
        assert!(e.contains("SizeBytes -1"), "{e}");
        assert!(bad(r#"{"Type":"volume"}"#).contains("target is required"));
        // What berth cannot apply is refused by name, not dropped.
        for (json, field) in [
            (
                r#"{"Type":"volume","Source":"v","Target":"/d","VolumeOptions":{"Subpath":"sub"}}"#,
                "Subpath",
            ),
            (
                r#"{"Type":"volume","Source":"v","Target":"/d","VolumeOptions":{"DriverConfig":{"Name":"nfs"}}}"#,
                "DriverConfig",
            ),
            (
                r#"{"Type":"bind","Source":"/h","Target":"/c","BindOptions":{"CreateMountpoint":true}}"#,
                "CreateMountpoint",
            ),
            (
                r#"{"Type":"bind","Source":"/h","Target":"/c","BindOptions":{"NonRecursive":true}}"#,
                "NonRecursive",
            ),
        ] {
            let e = bad(json);
            assert!(e.contains(field) && e.contains("not supported"), "{e}");
        }
        // What the docker CLI sends for a plain --mount is accepted.
        let cli = r#"{"Type":"volume","Source":"vol","Target":"/d","VolumeOptions":{"DriverConfig":{"Name":"local"},"Labels":{}},"BindOptions":null}"#;
        let m: Mount = serde_json::from_str(cli).unwrap();
        assert!(from_api(&m).is_ok(), "{:?}", from_api(&m));
    }

    proptest! {
        #[test]
        fn api_mounts_never_panic(kind in "(bind|volume|tmpfs|x)", source in ".{0,12}", target in ".{0,12}", size in any::<i64>(), mode in any::<u32>()) {
            let m = Mount {
                kind,
                source,
                target,
                tmpfs_options: Some(TmpfsOptions { size_bytes: size, mode: Some(mode) }),
                ..Mount::default()
            };
            if let Ok(spec) = from_api(&m) {
                prop_assert!(spec.target.starts_with('/'));
            }
        }

        #[test]
        fn never_panics(s in ".{0,64}") {
            let _ = parse_volume(&s);
            let _ = parse_mount(&s);
            let _ = parse_size(&s);
        }

        #[test]
        fn a_valid_bind_round_trips(host in "/[a-z]{1,8}(/[a-z0-9]{1,8}){0,3}", ctr in "/[a-z]{1,8}(/[a-z0-9]{1,8}){0,3}", ro in any::<bool>()) {
            let spec = format!("{host}:{ctr}{}", if ro { ":ro" } else { "" });
            let m = parse_volume(&spec).unwrap();
            prop_assert_eq!(m.source, Source::Bind(host.clone()));
            prop_assert_eq!(&m.target, &ctr);
            prop_assert_eq!(m.read_only, ro);
            let m2 = parse_mount(&format!("type=bind,source={host},target={ctr},readonly={ro}")).unwrap();
            prop_assert_eq!(m2.read_only, ro);
        }
    }
}
