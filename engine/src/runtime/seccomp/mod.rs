//! Seccomp: profiles in Docker's format (`--security-opt seccomp=PROFILE.json`, and the
//! built-in default of [`builtin`]) and their compilation into the OCI spec's
//! `linux.seccomp` for one container on this host, as Docker compiles them: rules kept or
//! dropped by the container's capabilities, the host's architecture and kernel version;
//! `archMap` narrowed to the host's architecture and its sub-architectures. Pure.

pub mod builtin;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A profile in Docker's format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What a syscall no rule matches gets.
    pub default_action: String,
    /// The errno of `defaultAction` `SCMP_ACT_ERRNO` (EPERM when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures, as libseccomp names them (the old form of `archMap`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Per main architecture, the sub-architectures filtered alongside it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
    /// A seccomp agent's socket (`SCMP_ACT_NOTIFY`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_path: String,
    /// Passed to the agent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_metadata: String,
    /// `SECCOMP_FILTER_FLAG_*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// `SCMP_ARCH_X86_64`, ...
    pub architecture: String,
    /// `SCMP_ARCH_X86`, ...
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

/// One rule: syscalls, an action, argument conditions, and when it applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// One syscall (the old form of `names`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The syscalls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// `SCMP_ACT_ALLOW`, ...
    pub action: String,
    /// The errno of `SCMP_ACT_ERRNO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The rule applies only where all of these hold.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    /// The rule does not apply where any of these holds.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

/// A condition on one argument.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Which argument (0..=5).
    pub index: u32,
    /// Compared with.
    pub value: u64,
    /// The second operand of `SCMP_CMP_MASKED_EQ`.
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, ...
    pub op: String,
}

/// When a rule applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Go's names of architectures (`amd64`, `arm64`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    /// Capabilities (`CAP_SYS_ADMIN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// `MAJOR.MINOR`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_kernel: String,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.arches.is_empty() && self.caps.is_empty() && self.min_kernel.is_empty()
    }
}

/// What is wrong with a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Not JSON of the format.
    #[error("seccomp profile: {0}")]
    Json(String),
    /// A value outside what libseccomp knows.
    #[error("seccomp profile: {what} {value:?} is not valid (valid: {valid})")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Its value.
        value: String,
        /// What would be.
        valid: String,
    },
    /// Both forms of one field.
    #[error(
        "seccomp profile: both '{0}' and '{1}' are specified in the seccomp profile, use either '{0}' or '{1}'"
    )]
    Both(&'static str, &'static str),
}

/// libseccomp's actions.
pub const ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

/// libseccomp's comparisons.
pub const OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// libseccomp's architectures.
pub const ARCHES: [&str; 17] = [
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_RISCV64",
];

/// The filter flags runc knows.
pub const FLAGS: [&str; 3] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

/// The most rules a profile may hold (Docker's default has about 30).
pub const MAX_RULES: usize = 4096;

fn check(what: &'static str, value: &str, valid: &[&str]) -> Result<(), ProfileError> {
    if valid.contains(&value) {
        return Ok(());
    }
    Err(ProfileError::Invalid {
        what,
        value: value.to_string(),
        valid: valid.join(", "),
    })
}

fn invalid(what: &'static str, value: impl ToString, valid: &str) -> ProfileError {
    ProfileError::Invalid {
        what,
        value: value.to_string(),
        valid: valid.to_string(),
    }
}

impl Profile {
    /// Reads and checks a profile in Docker's format (the text `--security-opt seccomp=`
    /// carries: the docker CLI sends the file's content).
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let p: Profile =
            serde_json::from_str(text).map_err(|e| ProfileError::Json(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Every name and number in range; each field given in one form only.
    pub fn validate(&self) -> Result<(), ProfileError> {
        check("defaultAction", &self.default_action, &ACTIONS)?;
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(ProfileError::Both("architectures", "archMap"));
        }
        for a in &self.architectures {
            check("architecture", a, &ARCHES)?;
        }
        for m in &self.arch_map {
            check("archMap architecture", &m.architecture, &ARCHES)?;
            for s in &m.sub_architectures {
                check("archMap subArchitecture", s, &ARCHES)?;
            }
        }
        for f in &self.flags {
            check("flag", f, &FLAGS)?;
        }
        if self.syscalls.len() > MAX_RULES {
            return Err(invalid(
                "number of syscall rules",
                self.syscalls.len(),
                &format!("at most {MAX_RULES}"),
            ));
        }
        for r in &self.syscalls {
            if !r.name.is_empty() && !r.names.is_empty() {
                return Err(ProfileError::Both("name", "names"));
            }
            if r.name.is_empty() && r.names.is_empty() {
                return Err(invalid("syscall rule", "", "a rule with 'names'"));
            }
            for n in r.names.iter().chain(std::iter::once(&r.name)) {
                if n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(invalid(
                        "syscall name",
                        n,
                        "a syscall's name: letters, digits and _",
                    ));
                }
            }
            check("action", &r.action, &ACTIONS)?;
            if r.args.len() > 6 {
                return Err(invalid("number of args", r.args.len(), "at most 6"));
            }
            for a in &r.args {
                check("op", &a.op, &OPS)?;
                if a.index > 5 {
                    return Err(invalid("arg index", a.index, "0 to 5"));
                }
            }
            for f in [&r.includes, &r.excludes] {
                if !f.min_kernel.is_empty() && parse_kernel(&f.min_kernel).is_none() {
                    return Err(invalid("minKernel", &f.min_kernel, "MAJOR.MINOR, as 4.8"));
                }
            }
        }
        Ok(())
    }
}

/// `MAJOR.MINOR[.PATCH][-anything]` as (major, minor).
pub fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(['.', '-', '+']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// What a profile is compiled against: the container's and the host's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The container's bounding capabilities (`CAP_...`).
    pub caps: &'a [String],
    /// Go's name of the host's architecture (`amd64`).
    pub arch: &'a str,
    /// The host kernel's (major, minor).
    pub kernel: (u32, u32),
}

/// Go's name of the architecture this program runs on (what profiles' `arches` name).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// libseccomp's name of a Go architecture.
fn seccomp_arch(go: &str) -> &'static str {
    match go {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        _ => "",
    }
}

/// `linux.seccomp` of the OCI spec: the rules of `p` that apply to `t`, in order.
pub fn compile(p: &Profile, t: &Target<'_>) -> Value {
    let architectures: Vec<&str> = if p.architectures.is_empty() {
        let host = seccomp_arch(t.arch);
        p.arch_map
            .iter()
            .filter(|m| m.architecture == host)
            .flat_map(|m| {
                std::iter::once(m.architecture.as_str())
                    .chain(m.sub_architectures.iter().map(String::as_str))
            })
            .collect()
    } else {
        p.architectures.iter().map(String::as_str).collect()
    };
    let has_cap = |c: &String| t.caps.contains(c);
    let kernel_at_least = |v: &str| parse_kernel(v).is_some_and(|k| t.kernel >= k);
    let mut syscalls = Vec::new();
    for r in &p.syscalls {
        let inc = &r.includes;
        let exc = &r.excludes;
        if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == t.arch))
            || !inc.caps.iter().all(has_cap)
            || (!inc.min_kernel.is_empty() && !kernel_at_least(&inc.min_kernel))
            || exc.arches.iter().any(|a| a == t.arch)
            || exc.caps.iter().any(has_cap)
            || (!exc.min_kernel.is_empty() && kernel_at_least(&exc.min_kernel))
        {
            continue;
        }
        let names: Vec<&str> = if r.names.is_empty() {
            vec![r.name.as_str()]
        } else {
            r.names.iter().map(String::as_str).collect()
        };
        let mut rule = json!({"names": names, "action": r.action});
        if let Some(e) = r.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if !r.args.is_empty() {
            rule["args"] = json!(
                r.args
                    .iter()
                    .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                    .collect::<Vec<_>>()
            );
        }
        syscalls.push(rule);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !p.flags.is_empty() {
        out["flags"] = json!(p.flags);
    }
    if !p.listener_path.is_empty() {
        out["listenerPath"] = json!(p.listener_path);
        out["listenerMetadata"] = json!(p.listener_metadata);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    fn allowed(v: &Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn rules_follow_capabilities_arch_and_kernel() {
        let p = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[
                {"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},
                {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
              "syscalls":[
                {"names":["read"],"action":"SCMP_ACT_ALLOW"},
                {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                {"names":["clone"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_SYS_ADMIN"]},
                 "args":[{"index":0,"value":2114060288,"op":"SCMP_CMP_MASKED_EQ"}]},
                {"names":["arch_prctl"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64"]}},
                {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
                {"name":"clone3","action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        )
        .unwrap();
        let plain = caps(&["CAP_CHOWN"]);
        let v = compile(
            &p,
            &Target {
                caps: &plain,
                arch: "amd64",
                kernel: (6, 1),
            },
        );
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(allowed(&v), ["read", "arch_prctl", "ptrace"]);
        assert_eq!(v["syscalls"][1]["names"], json!(["clone"]));
        assert_eq!(v["syscalls"][1]["args"][0]["valueTwo"], 0);
        assert_eq!(v["syscalls"][4]["errnoRet"], 38);
        let admin = caps(&["CAP_SYS_ADMIN"]);
        let v = compile(
            &p,
            &Target {
                caps: &admin,
                arch: "arm64",
                kernel: (4, 4),
            },
        );
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert_eq!(allowed(&v), ["read", "mount"]);
    }

    #[test]
    fn bad_profiles_name_the_bad_value() {
        let e = |s: &str| Profile::parse(s).unwrap_err().to_string();
        assert!(e("{").starts_with("seccomp profile: "));
        assert!(
            e(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).contains("\"SCMP_ACT_NOPE\" is not valid")
        );
        assert!(
            e(r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#)
                .contains("use either 'architectures' or 'archMap'")
        );
        assert!(
            e(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#)
                .contains("use either 'name' or 'names'")
        );
        assert!(
            e(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":9,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#)
                .contains("arg index \"9\" is not valid (valid: 0 to 5)")
        );
        assert!(
            e(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"EQ"}]}]}"#)
                .contains("op \"EQ\" is not valid")
        );
        // Fields Docker does not know are ignored, as Docker's decoder ignores them.
        assert!(Profile::parse(r#"{"defaultAction":"SCMP_ACT_ERRNO","bogus":1}"#).is_ok());
    }

    #[test]
    fn kernel_releases_read_as_major_minor() {
        assert_eq!(parse_kernel("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("5"), None);
    }
}
