//! `--device HOST[:CONTAINER][:PERMISSIONS]` and `--device-cgroup-rule 'TYPE MAJOR:MINOR
//! ACCESS'` as Docker reads them. Pure; whether the host has the device is the engine's to check.

use serde::{Deserialize, Serialize};

/// `HostConfig.Devices` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DeviceMapping {
    /// The host's device (or a directory of devices).
    pub path_on_host: String,
    /// Where it appears in the container (the host path when empty).
    pub path_in_container: String,
    /// `r`, `w`, `m` (all when empty).
    pub cgroup_permissions: String,
}

/// A `--device` or `--device-cgroup-rule` that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Bad `--device`.
    #[error(
        "invalid --device {0:?}: {1} (valid: HOST[:CONTAINER][:PERMISSIONS], as /dev/fuse or /dev/sda:/dev/xvda:rwm)"
    )]
    Device(String, &'static str),
    /// Bad `--device-cgroup-rule`.
    #[error(
        "invalid --device-cgroup-rule {0:?}: valid is 'TYPE MAJOR:MINOR ACCESS', TYPE a, b or c, MAJOR and MINOR numbers or *, ACCESS of r, w and m (as 'c 1:3 rwm')"
    )]
    Rule(String),
}

/// `rwm` and its subsets, each letter once.
pub fn valid_permissions(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 3
        && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && (0..p.len()).all(|i| !p[i + 1..].contains(&p[i..i + 1]))
}

impl DeviceMapping {
    /// Reads `--device` text.
    pub fn parse(spec: &str) -> Result<DeviceMapping, DeviceError> {
        let bad = |why| DeviceError::Device(spec.to_string(), why);
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, ctr, perms) = match parts[..] {
            [h] => (h, h, "rwm"),
            [h, p] if valid_permissions(p) => (h, h, p),
            [h, c] => (h, c, "rwm"),
            [h, c, p] => (h, c, p),
            _ => return Err(bad("too many ':'")),
        };
        if !host.starts_with('/') {
            return Err(bad("the host path must be absolute"));
        }
        if !ctr.starts_with('/') {
            return Err(bad("the container path must be absolute"));
        }
        if !valid_permissions(perms) {
            return Err(bad("the permissions are letters of rwm"));
        }
        Ok(DeviceMapping {
            path_on_host: host.into(),
            path_in_container: ctr.into(),
            cgroup_permissions: perms.into(),
        })
    }

    /// The mapping as the engine applies it (defaults filled, checked as `--device` is).
    pub fn normalized(&self) -> Result<DeviceMapping, DeviceError> {
        let ctr = if self.path_in_container.is_empty() {
            &self.path_on_host
        } else {
            &self.path_in_container
        };
        let perms = if self.cgroup_permissions.is_empty() {
            "rwm"
        } else {
            &self.cgroup_permissions
        };
        DeviceMapping::parse(&format!("{}:{ctr}:{perms}", self.path_on_host))
    }
}

/// A device cgroup rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRule {
    /// `a`, `b` or `c`.
    pub kind: char,
    /// None: any.
    pub major: Option<i64>,
    /// None: any.
    pub minor: Option<i64>,
    /// `rwm` subset.
    pub access: String,
}

impl CgroupRule {
    /// Reads `--device-cgroup-rule` text.
    pub fn parse(rule: &str) -> Result<CgroupRule, DeviceError> {
        let bad = || DeviceError::Rule(rule.to_string());
        let f: Vec<&str> = rule.split_whitespace().collect();
        let [kind, numbers, access] = f[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "a" | "b" | "c" => kind.chars().next().unwrap_or('a'),
            _ => return Err(bad()),
        };
        let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
        let num = |s: &str| -> Result<Option<i64>, DeviceError> {
            match s {
                "*" => Ok(None),
                n => n
                    .parse::<u32>()
                    .map(|v| Some(i64::from(v)))
                    .map_err(|_| bad()),
            }
        };
        if !valid_permissions(access) {
            return Err(bad());
        }
        Ok(CgroupRule {
            kind,
            major: num(major)?,
            minor: num(minor)?,
            access: access.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_read_as_docker_reads_them() {
        let d = DeviceMapping::parse("/dev/null:/dev/mynull").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/mynull", "rwm")
        );
        let d = DeviceMapping::parse("/dev/fuse:r").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/fuse", "r")
        );
        assert_eq!(
            DeviceMapping::parse("/dev/sda:/dev/xvda:mr")
                .unwrap()
                .cgroup_permissions,
            "mr"
        );
        for bad in [
            "dev/null",
            "/dev/null:rel",
            "/dev/null:/x:rwx",
            "/a:/b:r:w",
            "/dev/null:/x:rr",
        ] {
            assert!(DeviceMapping::parse(bad).is_err(), "{bad}");
        }
        let api = DeviceMapping {
            path_on_host: "/dev/null".into(),
            ..DeviceMapping::default()
        };
        assert_eq!(api.normalized().unwrap().path_in_container, "/dev/null");
    }

    #[test]
    fn cgroup_rules_read_as_docker_reads_them() {
        let r = CgroupRule::parse("c 1:3 rwm").unwrap();
        assert_eq!(
            (r.kind, r.major, r.minor, r.access.as_str()),
            ('c', Some(1), Some(3), "rwm")
        );
        let r = CgroupRule::parse("a *:* r").unwrap();
        assert_eq!((r.major, r.minor), (None, None));
        for bad in ["c 1:3", "x 1:3 rwm", "c 1-3 rwm", "c 1:3 rwx", "c -1:3 r"] {
            let e = CgroupRule::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid --device-cgroup-rule {bad:?}")),
                "{e}"
            );
        }
    }
}
