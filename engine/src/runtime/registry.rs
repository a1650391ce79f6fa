//! The OCI runtimes a daemon offers, by name, as dockerd's `runtimes` (daemon.json,
//! `--add-runtime`) and `default-runtime`: a container names one at create (`--runtime`), keeps
//! it in its record, and every later call on it (start, exec, kill, pause, delete) goes to that
//! runtime.

use std::collections::BTreeMap;
use std::path::Path;

use super::oci::{RuncLike, RuntimeError};

/// A runtime as daemon.json declares it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeSpec {
    /// The program: a path, or a name looked up in the usual directories.
    pub path: String,
    /// Given before every subcommand (`runtimeArgs`).
    pub args: Vec<String>,
}

/// Names dockerd keeps for itself; a `runtimes` entry may not take them.
pub const RESERVED: [&str; 2] = ["runc", "io.containerd.runc.v2"];

/// The runtimes by name, and the default.
#[derive(Debug, Clone)]
pub struct Runtimes {
    default: String,
    by_name: BTreeMap<String, RuncLike>,
}

impl Runtimes {
    /// `runc` and `crun` where installed (under their names; `runc` also as
    /// `io.containerd.runc.v2`, as dockerd lists it), then `declared`, with `default`
    /// (`--runtime` / `default-runtime`: one of those names, or a program's path) as the default;
    /// without one, `runc` where installed, else `crun`. Every runtime keeps its state under
    /// `root`.
    pub fn new(
        default: Option<&str>,
        declared: &BTreeMap<String, RuntimeSpec>,
        root: &Path,
    ) -> Result<Runtimes, RuntimeError> {
        let mut by_name = BTreeMap::new();
        for n in ["runc", "crun"] {
            if let Ok(r) = RuncLike::find(Some(n), root) {
                by_name.insert(n.to_string(), r);
            }
        }
        if let Some(r) = by_name.get("runc").cloned() {
            by_name.insert("io.containerd.runc.v2".into(), r);
        }
        for (name, spec) in declared {
            check_declared_name(name).map_err(RuntimeError::Invalid)?;
            if spec.path.contains('/') && !spec.path.starts_with('/') {
                return Err(RuntimeError::Invalid(format!(
                    "runtime {name}: its path {:?} is relative; give an absolute path or a program's name",
                    spec.path
                )));
            }
            // A program that is not there (yet) fails the starts that ask for it, not the
            // daemon, as dockerd's: it may be installed later.
            let r = RuncLike::find(Some(&spec.path), root).unwrap_or_else(|_| {
                tracing::warn!(
                    runtime = %name,
                    path = %spec.path,
                    "a declared runtime's program is not there; containers asking for it will fail to start"
                );
                // A bare name stands for where `find` looks first.
                let path = if spec.path.contains('/') {
                    std::path::PathBuf::from(&spec.path)
                } else {
                    Path::new("/usr/bin").join(&spec.path)
                };
                RuncLike::new(&path, root)
            });
            by_name.insert(name.clone(), r.with_args(spec.args.clone()));
        }
        let default = match default {
            Some(d) if by_name.contains_key(d) => d.to_string(),
            // A program's absolute path, or a name in the usual directories (`--runtime
            // youki`): offered under what was given.
            Some(d) if !d.contains('/') || d.starts_with('/') => {
                let r = RuncLike::find(Some(d), root).map_err(|_| {
                    RuntimeError::Invalid(format!(
                        "default runtime {d:?} is none of the runtimes ({}) and no program of that name or path",
                        by_name.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                by_name.insert(d.to_string(), r);
                d.to_string()
            }
            Some(d) => {
                return Err(RuntimeError::Invalid(format!(
                    "default runtime {d:?}: give a name or an absolute path"
                )));
            }
            None if by_name.contains_key("runc") => "runc".into(),
            None if by_name.contains_key("crun") => "crun".into(),
            None => {
                // Says where it looked.
                return Err(RuncLike::find(None, root)
                    .err()
                    .unwrap_or_else(|| RuntimeError::NotFound("runc, crun".into())));
            }
        };
        Ok(Runtimes { default, by_name })
    }

    /// The default's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The default runtime.
    pub fn default_runtime(&self) -> &RuncLike {
        &self.by_name[&self.default]
    }

    /// The runtime named `name`.
    pub fn get(&self, name: &str) -> Option<&RuncLike> {
        self.by_name.get(name)
    }

    /// The runtime to start (or exec in) a container that recorded `name` (`""`: recorded
    /// before runtimes had names, the default's): refused when the daemon no longer offers it,
    /// so a container made for one runtime never runs under another.
    pub fn to_run(&self, name: &str) -> Result<&RuncLike, String> {
        if name.is_empty() {
            return Ok(self.default_runtime());
        }
        self.get(name)
            .ok_or_else(|| format!("Unknown runtime specified {name}"))
    }

    /// The runtime of a container that recorded `name` for what must go on whatever the
    /// configuration (signals, pause, deletion); the default, with a warning, when the daemon
    /// no longer offers it.
    pub fn of(&self, name: &str) -> &RuncLike {
        if name.is_empty() {
            return self.default_runtime();
        }
        self.get(name).unwrap_or_else(|| {
            tracing::warn!(
                runtime = name,
                "a container's runtime is no longer configured; using the default"
            );
            self.default_runtime()
        })
    }

    /// What a create asking for `wanted` gets: its name, or Docker's refusal.
    pub fn choose(&self, wanted: Option<&str>) -> Result<String, String> {
        match wanted.filter(|w| !w.is_empty()) {
            None => Ok(self.default.clone()),
            Some(w) if self.by_name.contains_key(w) => Ok(w.to_string()),
            Some(w) => Err(format!("Unknown runtime specified {w}")),
        }
    }

    /// Every runtime: name, program, arguments.
    pub fn list(&self) -> impl Iterator<Item = (&str, &Path, &[String])> {
        self.by_name
            .iter()
            .map(|(n, r)| (n.as_str(), r.binary(), r.args()))
    }
}

/// Whether `name` may name a declared runtime: letters, digits, `.`, `_` and `-`, and none of
/// the [`RESERVED`] names (dockerd's rule and message).
pub fn check_declared_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(format!(
            "invalid runtime name {name:?}: use letters, digits, '.', '_' and '-'"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!("runtime name '{name}' is reserved"));
    }
    Ok(())
}

/// Parses `--add-runtime NAME=PATH`.
pub fn parse_add_runtime(flag: &str) -> Result<(String, RuntimeSpec), String> {
    let (name, path) = flag
        .split_once('=')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| format!("invalid --add-runtime {flag:?}: expected NAME=PATH"))?;
    check_declared_name(name)?;
    Ok((
        name.to_string(),
        RuntimeSpec {
            path: path.to_string(),
            args: Vec::new(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn program(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn declared_runtimes_are_offered_and_chosen_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = program(dir.path(), "traced");
        let declared = BTreeMap::from([(
            "traced".to_string(),
            RuntimeSpec {
                path: p.display().to_string(),
                args: vec!["--debug".into()],
            },
        )]);
        let r = Runtimes::new(Some("traced"), &declared, dir.path()).unwrap();
        assert_eq!(r.default_name(), "traced");
        assert_eq!(r.choose(None).unwrap(), "traced");
        assert_eq!(r.choose(Some("")).unwrap(), "traced");
        assert_eq!(r.of("traced").args(), ["--debug"]);
        assert_eq!(r.of("").binary(), p);
        assert_eq!(r.of("gone").binary(), p, "an unknown record falls back");
        assert_eq!(
            r.to_run("gone").unwrap_err(),
            "Unknown runtime specified gone",
            "but never runs under another runtime"
        );
        assert_eq!(r.to_run("").unwrap().binary(), p);
        assert_eq!(
            r.choose(Some("bogus")).unwrap_err(),
            "Unknown runtime specified bogus"
        );
        assert!(r.list().any(|(n, b, _)| n == "traced" && b == p));
    }

    #[test]
    fn bad_declarations_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = program(dir.path(), "x").display().to_string();
        let one = |name: &str, path: &str| {
            BTreeMap::from([(
                name.to_string(),
                RuntimeSpec {
                    path: path.into(),
                    args: vec![],
                },
            )])
        };
        let err = |d: BTreeMap<String, RuntimeSpec>, default: Option<&str>| {
            Runtimes::new(default, &d, dir.path())
                .unwrap_err()
                .to_string()
        };
        assert!(err(one("runc", &p), None).contains("runtime name 'runc' is reserved"));
        assert!(err(one("a b", &p), None).contains("invalid runtime name \"a b\""));
        assert!(err(one("ok", &p), Some("other")).contains("default runtime \"other\""));
        assert!(err(one("ok", "bin/x"), None).contains("relative"));
        assert!(err(one("ok", &p), Some("bin/x")).contains("absolute path"));
    }

    #[test]
    fn add_runtime_flags_parse() {
        assert_eq!(
            parse_add_runtime("fast=/usr/bin/crun").unwrap(),
            (
                "fast".to_string(),
                RuntimeSpec {
                    path: "/usr/bin/crun".into(),
                    args: vec![]
                }
            )
        );
        for bad in ["fast", "=x", "fast=", "a/b=x"] {
            assert!(parse_add_runtime(bad).is_err(), "{bad}");
        }
    }
}
