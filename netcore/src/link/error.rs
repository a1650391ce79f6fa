//! Errors of the link layer: each names the operation, the link and the namespace, and keeps the
//! kernel's errno as the source.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::op::LinkOp;
use super::types::NsRef;

/// A link operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The kernel refused the operation (or a link it needs does not exist).
    #[error("failed to {op}: {source}")]
    Op {
        /// What was being done, naming the link and namespace ("create bridge berth1").
        op: String,
        /// The link the operation names.
        link: String,
        /// Where it ran.
        ns: NsRef,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The kernel has no driver for the link type, so the network cannot work on this host at
    /// all; kept apart so the API can answer "not supported" rather than "internal error".
    #[error(
        "cannot create {kind} link {link}{}: this kernel has no {kind} support ({config}): {source}",
        ns.suffix()
    )]
    KernelUnsupported {
        /// Link type (`ipvlan`).
        kind: &'static str,
        /// The kernel option that provides it (`CONFIG_IPVLAN`).
        config: &'static str,
        /// The link that could not be created.
        link: String,
        /// Where it was to be created.
        ns: NsRef,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The namespace file could not be opened or entered.
    #[error("failed to {op}: cannot enter network namespace {}: {source}", path.display())]
    Namespace {
        /// What was being done.
        op: String,
        /// The namespace file.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: io::Error,
    },
}

impl LinkError {
    /// The error for `op` failing with `source`, recognising a missing link driver.
    pub fn from_op(op: &LinkOp, source: io::Error) -> LinkError {
        if let LinkOp::CreateIpvlan { name, .. } = op {
            if is_unsupported(&source) {
                return LinkError::KernelUnsupported {
                    kind: "ipvlan",
                    config: "CONFIG_IPVLAN",
                    link: name.clone(),
                    ns: op.ns(),
                    source,
                };
            }
        }
        if let LinkOp::CreateMacvlan { name, .. } = op {
            if is_unsupported(&source) {
                return LinkError::KernelUnsupported {
                    kind: "macvlan",
                    config: "CONFIG_MACVLAN",
                    link: name.clone(),
                    ns: op.ns(),
                    source,
                };
            }
        }
        LinkError::Op {
            op: op.describe(),
            link: op.link().to_string(),
            ns: op.ns(),
            source,
        }
    }

    /// The kernel's errno, when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Op { source, .. }
            | LinkError::KernelUnsupported { source, .. }
            | LinkError::Namespace { source, .. } => source.raw_os_error(),
        }
    }
}

/// What rtnetlink answers when the requested link kind has no driver: the core replies
/// EOPNOTSUPP ("Unknown device type") once loading the module failed.
fn is_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EOPNOTSUPP)
}

/// Every error of a best-effort run (teardown), in the order they happened: one failure must not
/// hide the others, and must not stop the rest of the cleanup.
#[derive(Debug, Default)]
pub struct LinkErrors(pub Vec<LinkError>);

impl LinkErrors {
    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for LinkErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no link operation failed"),
            [one] => fmt::Display::fmt(one, f),
            many => {
                write!(f, "{} link operations failed: ", many.len())?;
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    fmt::Display::fmt(e, f)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LinkErrors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.first().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::IpvlanMode;

    #[test]
    fn messages_name_operation_link_and_namespace() {
        let op = LinkOp::CreateBridge {
            name: "berth1".into(),
            mtu: None,
        };
        let e = LinkError::from_op(&op, io::Error::from_raw_os_error(nix::libc::EEXIST));
        assert_eq!(
            e.to_string(),
            "failed to create bridge berth1: File exists (os error 17)"
        );
        assert_eq!(e.errno(), Some(nix::libc::EEXIST));
    }

    #[test]
    fn missing_ipvlan_driver_is_kernel_unsupported() {
        let op = LinkOp::CreateIpvlan {
            parent: "eno1".into(),
            ns: "/run/netns/c".into(),
            name: "eth0".into(),
            mode: IpvlanMode::L2,
            mtu: None,
        };
        let e = LinkError::from_op(&op, io::Error::from_raw_os_error(nix::libc::EOPNOTSUPP));
        assert!(matches!(e, LinkError::KernelUnsupported { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "cannot create ipvlan link eth0 in netns /run/netns/c: this kernel has no ipvlan \
             support (CONFIG_IPVLAN): Operation not supported (os error 95)"
        );
        // Other failures stay ordinary.
        let e = LinkError::from_op(&op, io::Error::from_raw_os_error(nix::libc::ENODEV));
        assert!(matches!(e, LinkError::Op { .. }), "{e:?}");
    }

    #[test]
    fn error_lists_show_every_error() {
        let op = |n: &str| LinkOp::DeleteLink {
            ns: NsRef::Host,
            name: n.into(),
        };
        let errs = LinkErrors(vec![
            LinkError::from_op(&op("a"), io::Error::from_raw_os_error(nix::libc::EBUSY)),
            LinkError::from_op(&op("b"), io::Error::from_raw_os_error(nix::libc::EPERM)),
        ]);
        let s = errs.to_string();
        assert!(
            s.starts_with("2 link operations failed: failed to delete link a"),
            "{s}"
        );
        assert!(s.contains("; failed to delete link b"), "{s}");
    }
}
