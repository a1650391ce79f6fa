//! Capabilities: Docker's default set, the names `--cap-add`/`--cap-drop` take (with or
//! without `CAP_`, any case, `ALL`), and the set a container gets, as Docker computes it.
//! Pure.

/// Every capability Linux defines, by number (`CAP_CHOWN` is 0).
pub const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default set.
pub const DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A capability a container cannot have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// A name no kernel defines.
    #[error(
        "unknown capability: {0:?} (valid: ALL or a name of capabilities(7), as NET_ADMIN or CAP_NET_ADMIN)"
    )]
    Unknown(String),
    /// A capability this host cannot grant (its kernel lacks it, or the daemon does not hold
    /// it in its bounding set: no process can give more than it has).
    #[error(
        "capability {0} cannot be granted on this host: the kernel or berthd's own bounding set lacks it"
    )]
    Unavailable(String),
}

/// `--cap-add` text as the kernel's name (`net_admin` -> `CAP_NET_ADMIN`); `ALL` stays.
pub fn normalize(name: &str) -> Result<String, CapError> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(CapError::Unknown(name.to_string()))
    }
}

/// The capabilities this host's kernel knows (`/proc/sys/kernel/cap_last_cap` is the last
/// one's number) and `bounding` (a mask, as `CapBnd` of `/proc/self/status`) holds, in number
/// order.
pub fn supported(last_cap: usize, bounding: u64) -> Vec<String> {
    ALL.iter()
        .enumerate()
        .take(last_cap.saturating_add(1))
        .filter(|(n, _)| bounding & (1u64 << n) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// `CapBnd` of a `/proc/PID/status` text (all bits when absent).
pub fn bounding_of(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

/// The set a container gets, as Docker's: everything the host can grant when privileged;
/// else with `ALL` added, everything but what is dropped; with `ALL` dropped, only what is
/// added; otherwise Docker's defaults less the drops plus the adds. `supported` is
/// [`supported`]; a capability named in `add` that it lacks is refused, naming it.
pub fn effective(
    add: &[String],
    drop: &[String],
    privileged: bool,
    supported: &[String],
) -> Result<Vec<String>, CapError> {
    if privileged {
        return Ok(supported.to_vec());
    }
    let norm = |v: &[String]| -> Result<Vec<String>, CapError> {
        v.iter().map(|c| normalize(c)).collect()
    };
    let add = norm(add)?;
    let drop = norm(drop)?;
    if let Some(c) = add.iter().find(|c| *c != "ALL" && !supported.contains(c)) {
        return Err(CapError::Unavailable(c.clone()));
    }
    let has = |v: &[String], c: &str| v.iter().any(|x| x == c);
    let mut caps: Vec<String> = if has(&add, "ALL") {
        supported
            .iter()
            .filter(|c| !has(&drop, c))
            .cloned()
            .collect()
    } else if has(&drop, "ALL") {
        add.clone()
    } else {
        let mut v: Vec<String> = DEFAULT
            .iter()
            .filter(|c| !has(&drop, c))
            .map(|c| c.to_string())
            .collect();
        v.extend(add.iter().cloned());
        v
    };
    // Docker's defaults on a host that cannot grant one of them: the rest.
    caps.retain(|c| c != "ALL" && supported.contains(c));
    let mut seen = std::collections::BTreeSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

/// The kernel's mask of a set (as `/proc/PID/status` prints `CapEff`).
pub fn mask(caps: &[String]) -> u64 {
    caps.iter()
        .filter_map(|c| ALL.iter().position(|a| a == c))
        .fold(0, |m, n| m | (1u64 << n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn names_are_normalized_and_unknown_ones_refused() {
        assert_eq!(normalize("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(normalize("CAP_SYS_ADMIN").unwrap(), "CAP_SYS_ADMIN");
        assert_eq!(normalize("all").unwrap(), "ALL");
        assert_eq!(
            normalize("FOO").unwrap_err().to_string(),
            "unknown capability: \"FOO\" (valid: ALL or a name of capabilities(7), as NET_ADMIN or CAP_NET_ADMIN)"
        );
    }

    #[test]
    fn sets_follow_docker() {
        let all = supported(40, u64::MAX);
        assert_eq!(all.len(), 41);
        let dflt = effective(&[], &[], false, &all).unwrap();
        assert_eq!(mask(&dflt), 0xa80425fb, "Docker's default CapEff");
        let one = effective(&s(&["NET_BIND_SERVICE"]), &s(&["ALL"]), false, &all).unwrap();
        assert_eq!(one, ["CAP_NET_BIND_SERVICE"]);
        assert_eq!(mask(&one), 0x400);
        let most = effective(&s(&["ALL"]), &s(&["sys_admin"]), false, &all).unwrap();
        assert_eq!(most.len(), 40);
        assert!(!most.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(
            mask(&effective(&[], &[], true, &all).unwrap()),
            0x1ff_ffff_ffff
        );
        let less = effective(&s(&["NET_ADMIN", "CAP_CHOWN"]), &s(&["mknod"]), false, &all).unwrap();
        assert_eq!(less.len(), 14, "{less:?}");
        assert!(less.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!less.contains(&"CAP_MKNOD".to_string()));
        // A kernel without CAP_CHECKPOINT_RESTORE (39 is its last) does not grant it.
        let older = supported(39, u64::MAX);
        assert_eq!(effective(&[], &[], true, &older).unwrap().len(), 40);
        assert!(effective(&s(&["bogus"]), &[], false, &all).is_err());
        // A daemon without CAP_SYS_RESOURCE (bit 24) cannot grant it: privileged and ALL get
        // the rest, naming it is refused.
        let bounded = supported(40, bounding_of("CapInh:\t0\nCapBnd:\t000001fffeffffff\n"));
        assert_eq!(bounded.len(), 40);
        assert_eq!(
            mask(&effective(&[], &[], true, &bounded).unwrap()),
            0x1ff_feff_ffff
        );
        assert_eq!(
            effective(&s(&["ALL"]), &[], false, &bounded).unwrap().len(),
            40
        );
        assert_eq!(
            effective(&s(&["sys_resource"]), &[], false, &bounded)
                .unwrap_err()
                .to_string(),
            "capability CAP_SYS_RESOURCE cannot be granted on this host: the kernel or berthd's own bounding set lacks it"
        );
    }
}
