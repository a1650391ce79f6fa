//! Plain values the link layer is planned with: where an operation runs, MAC addresses and the
//! macvlan/ipvlan modes. No I/O here.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::options::OptionError;

/// The network namespace an operation runs in. Containers' namespaces are named by file (a
/// bind mount under /run/netns or /proc/PID/ns/net), never by PID alone, so the reference stays
/// valid for exactly as long as the namespace does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsRef {
    /// The calling process's own network namespace (where bridges and host-side veths live).
    Host,
    /// The namespace behind this file.
    Path(PathBuf),
}

impl NsRef {
    /// A reference to the namespace behind `path`.
    pub fn path(path: impl Into<PathBuf>) -> NsRef {
        NsRef::Path(path.into())
    }

    /// Suffix naming the namespace in messages: nothing for the host (the usual case), and
    /// " in netns PATH" otherwise, so "failed to create bridge berth1: ..." stays short.
    pub(crate) fn suffix(&self) -> InNs<'_> {
        InNs(self)
    }
}

impl fmt::Display for NsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsRef::Host => f.write_str("host namespace"),
            NsRef::Path(p) => write!(f, "netns {}", p.display()),
        }
    }
}

/// Display helper behind [`NsRef::suffix`].
#[derive(Debug)]
pub(crate) struct InNs<'a>(&'a NsRef);

impl fmt::Display for InNs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            NsRef::Host => Ok(()),
            NsRef::Path(p) => write!(f, " in netns {}", p.display()),
        }
    }
}

/// " in netns PATH", for operations that name a namespace by path.
pub(crate) fn in_netns(p: &Path) -> String {
    format!(" in netns {}", p.display())
}

/// An Ethernet address. Serialised as its text form (`02:42:ac:11:00:02`) so state files and the
/// API show what `ip link` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Docker's rule for an endpoint with an IPv4 address: `02:42` followed by the four address
    /// bytes. Containers keep the MAC Docker would have given them, and the address is unique on
    /// the network because the IPv4 address is.
    pub fn from_ipv4(ip: Ipv4Addr) -> MacAddr {
        let [a, b, c, d] = ip.octets();
        MacAddr([0x02, 0x42, a, b, c, d])
    }

    /// A random locally administered unicast address, for endpoints without an IPv4 address to
    /// derive one from (IPv6-only networks). Drawn from the standard library's per-process
    /// random hash keys mixed with the time and a counter, which is ample for 46 random bits and
    /// needs no extra dependency.
    pub fn random_local() -> MacAddr {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        h.write_u128(now);
        let bits = h.finish().to_le_bytes();
        let mut mac = [bits[0], bits[1], bits[2], bits[3], bits[4], bits[5]];
        // Locally administered (bit 1 set), unicast (bit 0 clear).
        mac[0] = (mac[0] | 0x02) & !0x01;
        MacAddr(mac)
    }

    /// Whether this is a locally administered unicast address (what random_local produces and
    /// what Docker's 02:42 prefix is).
    pub fn is_local_unicast(&self) -> bool {
        self.0[0] & 0x03 == 0x02
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = OptionError;

    /// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case), as `--mac-address` takes it.
    fn from_str(s: &str) -> Result<MacAddr, OptionError> {
        let bad = || OptionError {
            option: "mac address",
            value: s.to_string(),
            expected: "six hex bytes separated by colons, e.g. 02:42:ac:11:00:02",
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for MacAddr {
    type Error = OptionError;
    fn try_from(s: String) -> Result<MacAddr, OptionError> {
        s.parse()
    }
}

/// How macvlan endpoints on one parent reach each other (`-o macvlan_mode=`). Docker's default
/// is bridge: endpoints talk directly, the parent's other traffic goes out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Endpoints on the same parent switch frames between each other in the kernel.
    #[default]
    Bridge,
    /// Endpoints on the same parent cannot talk to each other at all.
    Private,
    /// Frames between endpoints go out to the external switch (which must hairpin them).
    Vepa,
    /// The single endpoint takes over the parent (one container per parent).
    Passthru,
}

impl FromStr for MacvlanMode {
    type Err = OptionError;

    /// Parses the `macvlan_mode` driver option exactly as Docker spells its values.
    fn from_str(s: &str) -> Result<MacvlanMode, OptionError> {
        match s {
            "bridge" => Ok(MacvlanMode::Bridge),
            "private" => Ok(MacvlanMode::Private),
            "vepa" => Ok(MacvlanMode::Vepa),
            "passthru" => Ok(MacvlanMode::Passthru),
            _ => Err(OptionError {
                option: "macvlan_mode",
                value: s.to_string(),
                expected: "bridge, private, vepa or passthru",
            }),
        }
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        })
    }
}

/// How ipvlan endpoints route (`-o ipvlan_mode=`). Docker's default is l2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanMode {
    /// Endpoints share the parent's MAC and ARP/ND for themselves; default routes use a gateway.
    #[default]
    L2,
    /// The parent routes for the endpoints; no ARP/broadcast, default routes go via the device.
    L3,
}

impl FromStr for IpvlanMode {
    type Err = OptionError;

    /// Parses the `ipvlan_mode` driver option exactly as Docker spells its values.
    fn from_str(s: &str) -> Result<IpvlanMode, OptionError> {
        match s {
            "l2" => Ok(IpvlanMode::L2),
            "l3" => Ok(IpvlanMode::L3),
            _ => Err(OptionError {
                option: "ipvlan_mode",
                value: s.to_string(),
                expected: "l2 or l3",
            }),
        }
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_from_ipv4_follows_docker() {
        let m = MacAddr::from_ipv4(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert!(m.is_local_unicast());
    }

    #[test]
    fn mac_text_round_trips() {
        let m: MacAddr = "02:42:AC:11:00:ff".parse().unwrap();
        assert_eq!(m, MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0xff]));
        assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"02:42:ac:11:00:ff\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&json).unwrap(), m);
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "2:42:ac:11:00:02",
            "zz:42:ac:11:00:02",
            "+2:42:ac:11:00:02",
        ] {
            let e = bad.parse::<MacAddr>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn random_macs_are_local_unicast_and_differ() {
        let a = MacAddr::random_local();
        let b = MacAddr::random_local();
        assert!(a.is_local_unicast() && b.is_local_unicast());
        assert_ne!(a, b);
    }

    #[test]
    fn modes_parse_and_name_bad_values() {
        assert_eq!("vepa".parse::<MacvlanMode>().unwrap(), MacvlanMode::Vepa);
        assert_eq!(
            "passthru".parse::<MacvlanMode>().unwrap(),
            MacvlanMode::Passthru
        );
        assert_eq!("l3".parse::<IpvlanMode>().unwrap(), IpvlanMode::L3);
        assert_eq!(
            "foo".parse::<MacvlanMode>().unwrap_err().to_string(),
            r#"invalid macvlan_mode "foo": expected bridge, private, vepa or passthru"#
        );
        assert_eq!(
            "L2".parse::<IpvlanMode>().unwrap_err().to_string(),
            r#"invalid ipvlan_mode "L2": expected l2 or l3"#
        );
        for m in [
            MacvlanMode::Bridge,
            MacvlanMode::Private,
            MacvlanMode::Vepa,
            MacvlanMode::Passthru,
        ] {
            assert_eq!(m.to_string().parse::<MacvlanMode>().unwrap(), m);
        }
    }

    #[test]
    fn namespaces_are_named_in_messages() {
        assert_eq!(NsRef::Host.suffix().to_string(), "");
        assert_eq!(
            NsRef::path("/run/netns/x").suffix().to_string(),
            " in netns /run/netns/x"
        );
    }
}
