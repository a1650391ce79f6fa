//! `--security-opt` entries as Docker's daemon reads them: `seccomp=unconfined|builtin|JSON`
//! (the docker CLI sends a profile file's content), `no-new-privileges[=BOOL]`,
//! `apparmor=PROFILE`, `label=...` (also `label:...`, Docker's old separator), `disable`.
//! Pure; whether the host can apply them is the engine's to check.

/// The seccomp profile a container asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// The built-in default (`seccomp=builtin`, or nothing said).
    #[default]
    Builtin,
    /// No filter.
    Unconfined,
    /// A profile in Docker's format (JSON text).
    Profile(String),
}

/// What a container's `--security-opt` entries ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    /// `seccomp=`.
    pub seccomp: Seccomp,
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
    /// `apparmor=`.
    pub apparmor: Option<String>,
    /// `label=` values (SELinux).
    pub labels: Vec<String>,
}

/// An entry that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --security-opt {0:?}: valid are seccomp=unconfined|builtin|PROFILE.json, no-new-privileges[=true|false], apparmor=PROFILE, label=user:USER|role:ROLE|type:TYPE|level:LEVEL|disable"
)]
pub struct SecurityOptError(pub String);

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Reads every entry (the last of each kind wins, as Docker's).
pub fn parse(entries: &[String]) -> Result<SecurityOpts, SecurityOptError> {
    let mut out = SecurityOpts::default();
    for opt in entries {
        let bad = || SecurityOptError(shorten(opt));
        match opt.as_str() {
            "no-new-privileges" => {
                out.no_new_privileges = true;
                continue;
            }
            "disable" => {
                out.labels.push("disable".into());
                continue;
            }
            _ => {}
        }
        let (key, value) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .ok_or_else(bad)?;
        match key {
            "seccomp" => {
                out.seccomp = match value {
                    "unconfined" => Seccomp::Unconfined,
                    "builtin" | "" => Seccomp::Builtin,
                    json if json.trim_start().starts_with('{') => Seccomp::Profile(json.into()),
                    _ => return Err(bad()),
                }
            }
            "no-new-privileges" => out.no_new_privileges = parse_bool(value).ok_or_else(bad)?,
            "apparmor" => out.apparmor = Some(value.to_string()),
            "label" => out.labels.push(value.to_string()),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// An entry as an error shows it (a profile's JSON can be long).
fn shorten(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<SecurityOpts, SecurityOptError> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn entries_read_as_dockers_daemon_reads_them() {
        assert_eq!(p(&[]).unwrap(), SecurityOpts::default());
        let o = p(&["seccomp=unconfined", "no-new-privileges", "label=disable"]).unwrap();
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert!(o.no_new_privileges);
        assert_eq!(o.labels, ["disable"]);
        assert!(!p(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert!(p(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert_eq!(
            p(&["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"])
                .unwrap()
                .seccomp,
            Seccomp::Profile("{\"defaultAction\":\"SCMP_ACT_ALLOW\"}".into())
        );
        assert_eq!(
            p(&["apparmor=docker-default"]).unwrap().apparmor.as_deref(),
            Some("docker-default")
        );
        for bad in [
            "seccomp=/no/such/file.json",
            "bogus=1",
            "nothing",
            "no-new-privileges=maybe",
        ] {
            let e = p(&[bad]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid --security-opt {bad:?}")),
                "{e}"
            );
        }
    }
}
