//! A container's isolation as its options ask for it and this host allows it: capabilities,
//! the seccomp filter, no-new-privileges, AppArmor and SELinux options, privileged mode and
//! the cgroup namespace. [`HostSecurity`] is read once when the engine opens; [`resolve`] is
//! pure, run at create (a bad option is refused there, naming it) and at every start.

use std::path::Path;

use berth_api::opts::security::{self, Seccomp};
use serde_json::Value;

use super::ContainerError;
use super::model::CreateOptions;
use crate::runtime::caps;
use crate::runtime::cgroup::{Layout, layout};
use crate::runtime::seccomp::{self as sc, Profile, Target};

/// What this host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSecurity {
    /// The capabilities its kernel knows.
    pub caps: Vec<String>,
    /// Its kernel's (major, minor).
    pub kernel: (u32, u32),
    /// Go's name of its architecture.
    pub arch: &'static str,
    /// AppArmor is enabled.
    pub apparmor: bool,
    /// SELinux is enabled.
    pub selinux: bool,
    /// `/sys/fs/cgroup` is cgroup v2 only.
    pub cgroup_v2: bool,
    /// `--init`'s binary ([`init_binary`]).
    pub init: Option<std::path::PathBuf>,
}

impl HostSecurity {
    /// Reads the host's facts.
    pub fn detect() -> HostSecurity {
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(caps::ALL.len() - 1);
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| sc::parse_kernel(&u.release().to_string_lossy()))
            .unwrap_or((0, 0));
        let bounding =
            caps::bounding_of(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
        HostSecurity {
            caps: caps::supported(last_cap, bounding),
            kernel,
            arch: sc::host_arch(),
            apparmor: std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|s| s.trim() == "Y"),
            selinux: Path::new("/sys/fs/selinux/enforce").exists(),
            cgroup_v2: layout(Path::new("/sys/fs/cgroup")) == Layout::V2,
            init: init_binary(),
        }
    }

    /// `SecurityOptions` of `GET /info`, as Docker's daemon lists them.
    pub fn security_options(&self) -> Vec<String> {
        // AppArmor is not listed: berth loads no default profile (Docker's docker-default),
        // so containers do not run under one even where the kernel has AppArmor.
        let mut v = vec!["name=seccomp,profile=builtin".to_string()];
        if self.selinux {
            v.push("name=selinux".to_string());
        }
        if self.cgroup_v2 {
            v.push("name=cgroupns".to_string());
        }
        v
    }

    /// The cgroup namespace a container gets when it asks for none: private on cgroup v2,
    /// the host's on v1 and hybrid hosts (Docker's default).
    pub fn default_cgroupns(&self) -> &'static str {
        if self.cgroup_v2 { "private" } else { "host" }
    }
}

/// Where `--init`'s binary is looked for (once, when the engine opens), in order: Docker's own, Debian's (docker.io links
/// `docker-init` to tini-static), tini's static build.
pub const INIT_PATHS: [&str; 3] = [
    "/usr/libexec/docker/docker-init",
    "/usr/bin/docker-init",
    "/usr/bin/tini-static",
];

/// The init `--init` runs as the container's PID 1 (reaping zombies, forwarding signals).
pub fn init_binary() -> Option<std::path::PathBuf> {
    INIT_PATHS
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
}

/// A container's isolation, ready for its spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Isolation {
    /// Bounding, effective and permitted capabilities.
    pub caps: Vec<String>,
    /// `linux.seccomp`, when filtered.
    pub seccomp: Option<Value>,
    /// `process.noNewPrivileges`.
    pub no_new_privileges: bool,
    /// `process.apparmorProfile`.
    pub apparmor: Option<String>,
    /// `--privileged`: every device, nothing masked, `/sys` writable.
    pub privileged: bool,
    /// A cgroup namespace of its own.
    pub cgroupns: bool,
}

fn invalid(msg: String) -> ContainerError {
    ContainerError::Invalid(msg)
}

/// The isolation `o` asks for on `host`, or why it cannot have it (naming the option).
pub fn resolve(o: &CreateOptions, host: &HostSecurity) -> Result<Isolation, ContainerError> {
    let opts = security::parse(&o.security_opt).map_err(|e| invalid(e.to_string()))?;
    let caps = caps::effective(&o.cap_add, &o.cap_drop, o.privileged, &host.caps)
        .map_err(|e| invalid(e.to_string()))?;
    let seccomp = match (&opts.seccomp, o.privileged) {
        // Privileged containers are not filtered, as Docker's.
        (_, true) | (Seccomp::Unconfined, _) => None,
        (Seccomp::Builtin, _) => Some(sc::builtin::profile()),
        (Seccomp::Profile(text), _) => {
            Some(Profile::parse(text).map_err(|e| invalid(format!("--security-opt {e}")))?)
        }
    }
    .map(|p| {
        sc::compile(
            &p,
            &Target {
                caps: &caps,
                arch: host.arch,
                kernel: host.kernel,
            },
        )
    });
    let apparmor = match opts.apparmor.as_deref() {
        None => None,
        Some(p) if !host.apparmor => {
            return Err(invalid(format!(
                "--security-opt apparmor={p}: AppArmor is not enabled on this host (valid: no apparmor= option)"
            )));
        }
        Some("unconfined") | Some("") => None,
        Some(p) => Some(p.to_string()),
    };
    for l in &opts.labels {
        if l != "disable" {
            let why = if host.selinux {
                "SELinux labels are not supported by berth"
            } else {
                "SELinux is not enabled on this host"
            };
            return Err(invalid(format!(
                "--security-opt label={l}: {why} (valid: label=disable)"
            )));
        }
    }
    let cgroupns = match o.cgroupns.as_str() {
        "" => host.default_cgroupns() == "private",
        "private" => true,
        "host" => false,
        other => {
            return Err(invalid(format!(
                "invalid --cgroupns {other:?}: valid are host and private"
            )));
        }
    };
    Ok(Isolation {
        caps,
        seccomp,
        no_new_privileges: opts.no_new_privileges,
        apparmor,
        privileged: o.privileged,
        cgroupns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostSecurity {
        HostSecurity {
            caps: caps::supported(40, u64::MAX),
            kernel: (6, 1),
            arch: "amd64",
            apparmor: false,
            selinux: false,
            cgroup_v2: false,
            init: None,
        }
    }

    fn opts(f: impl FnOnce(&mut CreateOptions)) -> CreateOptions {
        let mut o = CreateOptions::default();
        f(&mut o);
        o
    }

    fn names(v: &Value) -> Vec<&str> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| r["names"].as_array().unwrap())
            .map(|n| n.as_str().unwrap())
            .collect()
    }

    #[test]
    fn defaults_filter_and_privileged_does_not() {
        let i = resolve(&CreateOptions::default(), &host()).unwrap();
        assert_eq!(i.caps.len(), 14);
        assert!(!names(i.seccomp.as_ref().unwrap()).contains(&"mount"));
        assert!(!i.cgroupns, "host cgroupns on a v1 host");
        let p = resolve(&opts(|o| o.privileged = true), &host()).unwrap();
        assert_eq!((p.caps.len(), p.seccomp.is_none()), (41, true));
        // CAP_SYS_ADMIN added: the filter lets its calls through.
        let a = resolve(&opts(|o| o.cap_add = vec!["SYS_ADMIN".into()]), &host()).unwrap();
        assert!(names(a.seccomp.as_ref().unwrap()).contains(&"mount"));
        let u = resolve(
            &opts(|o| o.security_opt = vec!["seccomp=unconfined".into()]),
            &host(),
        )
        .unwrap();
        assert!(u.seccomp.is_none());
        let v2 = HostSecurity {
            cgroup_v2: true,
            ..host()
        };
        assert!(resolve(&CreateOptions::default(), &v2).unwrap().cgroupns);
        assert_eq!(
            v2.security_options(),
            ["name=seccomp,profile=builtin", "name=cgroupns"]
        );
    }

    #[test]
    fn what_the_host_cannot_do_is_refused_by_name() {
        let e = |f: fn(&mut CreateOptions)| resolve(&opts(f), &host()).unwrap_err().to_string();
        assert!(
            e(|o| o.security_opt = vec!["apparmor=x".into()])
                .contains("apparmor=x: AppArmor is not enabled")
        );
        assert!(
            e(|o| o.security_opt = vec!["label=type:t".into()])
                .contains("label=type:t: SELinux is not enabled")
        );
        assert!(e(|o| o.cap_add = vec!["NOPE".into()]).contains("unknown capability: \"NOPE\""));
        assert!(e(|o| o.cgroupns = "shared".into()).contains("invalid --cgroupns \"shared\""));
        assert!(
            e(|o| o.security_opt = vec!["seccomp={\"defaultAction\":\"x\"}".into()])
                .contains("defaultAction \"x\" is not valid")
        );
        assert!(
            resolve(
                &opts(|o| o.security_opt = vec!["label=disable".into()]),
                &host()
            )
            .is_ok()
        );
    }
}
