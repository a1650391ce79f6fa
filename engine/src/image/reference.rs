//! Image references by Docker's rules: `busybox` is `docker.io/library/busybox:latest`,
//! `localhost:5000/a/b:1` names a registry by its first component (it has a `.` or a `:`, or is
//! `localhost`), and `name@sha256:<64 hex>` pins a digest. Parsing is pure; errors name the part
//! that is wrong and what would be valid.

use std::fmt;
use std::str::FromStr;

/// The registry a reference without one means.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
/// Where single-component names live on the default registry.
const OFFICIAL_NAMESPACE: &str = "library";
/// The longest repository name (registry excluded), as Docker's.
const NAME_MAX: usize = 255;
/// The longest tag.
const TAG_MAX: usize = 128;

/// A parsed image reference, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `registry.example.com`.
    pub registry: String,
    /// `library/busybox`, `a/b`.
    pub repository: String,
    /// The tag, when the reference names one (always one when no digest is given).
    pub tag: Option<String>,
    /// `sha256:<64 hex>`, when pinned.
    pub digest: Option<Digest>,
}

/// A content digest: algorithm and lowercase hex; `sha256:<hex>` as a string and in JSON.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    /// `sha256` (or `sha512`).
    pub algorithm: String,
    /// Lowercase hex, 64 (sha256) or 128 (sha512) digits.
    pub hex: String,
}

/// What is wrong with a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("invalid reference format: empty image name")]
    Empty,
    /// The repository has capitals.
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    /// A path component breaks the grammar.
    #[error(
        "invalid reference format: {component:?} in {reference:?} is not a valid name component \
         (lowercase letters and digits, separated by '.', '_', '__' or dashes)"
    )]
    Component {
        /// The whole reference.
        reference: String,
        /// The bad component.
        component: String,
    },
    /// The registry part breaks the grammar.
    #[error("invalid reference format: registry {0:?} is not a valid host[:port]")]
    Registry(String),
    /// The tag breaks the grammar.
    #[error(
        "invalid reference format: tag {0:?} must be 1 to 128 of letters, digits, '_', '.', '-', \
         not starting with '.' or '-'"
    )]
    Tag(String),
    /// The digest breaks the grammar.
    #[error(
        "invalid reference format: digest {0:?} must be sha256:<64 hex digits> or sha512:<128 hex digits>"
    )]
    Digest(String),
    /// The name is too long.
    #[error("invalid reference format: repository name {0:?} is longer than 255 characters")]
    TooLong(String),
}

impl Digest {
    /// A sha256 digest of 64 lowercase hex digits.
    pub fn sha256(hex: &str) -> Result<Digest, ReferenceError> {
        format!("sha256:{hex}").parse()
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ReferenceError::Digest(s.to_string());
        let (algorithm, hex) = s.split_once(':').ok_or_else(bad)?;
        let len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(bad()),
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        Ok(Digest {
            algorithm: algorithm.to_string(),
            hex: hex.to_string(),
        })
    }
}

impl TryFrom<String> for Digest {
    type Error = ReferenceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// Whether `c` is a valid path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `r` is a valid registry: a host name or IPv4 (labels of letters, digits and inner
/// dashes), or a bracketed IPv6 address, with an optional port.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u16>().is_err()
        {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Parses `[registry/]path[:tag][@digest]` and fills in Docker's defaults.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A tag follows the last ':' after the last '/'; a ':' before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &rest[at + 1..];
                if !valid_tag(tag) {
                    return Err(ReferenceError::Tag(tag.to_string()));
                }
                (&rest[..at], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (registry, path) = match berth_common::credentials::split_registry(name) {
            (first, path) if path.len() < name.len() => {
                if !valid_registry(first) {
                    return Err(ReferenceError::Registry(first.to_string()));
                }
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(path));
        }
        for component in path.split('/') {
            if !valid_component(component) {
                return Err(ReferenceError::Component {
                    reference: s.to_string(),
                    component: component.to_string(),
                });
            }
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{path}")
        } else {
            path
        };
        if repository.len() > NAME_MAX {
            return Err(ReferenceError::TooLong(repository));
        }
        let tag = tag.or_else(|| digest.is_none().then(|| DEFAULT_TAG.to_string()));
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `registry/repository`, as the store keys repositories.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// How Docker shows the repository: `busybox` for official images, `user/app` on Docker
    /// Hub, `localhost:5000/app` elsewhere.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The familiar name with its tag or digest: `busybox:latest`, `localhost:5000/a@sha256:..`.
    pub fn familiar_name_with_tag(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.familiar_name()),
            (None, Some(d)) => format!("{}@{d}", self.familiar_name()),
            (None, None) => self.familiar_name(),
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_defaults() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r("user/app:1.0").to_string(), "docker.io/user/app:1.0");
        assert_eq!(r("busybox").familiar_name(), "busybox");
        assert_eq!(r("user/app").familiar_name(), "user/app");
        assert_eq!(r("docker.io/library/busybox").familiar_name(), "busybox");
    }

    #[test]
    fn registries_ports_and_digests() {
        let x = r("localhost:5000/a/b:1");
        assert_eq!(
            (x.registry.as_str(), x.repository.as_str(), x.tag.as_deref()),
            ("localhost:5000", "a/b", Some("1"))
        );
        assert_eq!(x.familiar_name(), "localhost:5000/a/b");
        let x = r("localhost/app");
        assert_eq!(x.registry, "localhost");
        let x = r(&format!("127.0.0.1:5000/app@sha256:{HEX}"));
        assert_eq!(x.tag, None);
        assert_eq!(x.digest.as_ref().unwrap().hex, HEX);
        let x = r(&format!("app:v2@sha256:{HEX}"));
        assert_eq!(x.tag.as_deref(), Some("v2"));
        assert_eq!(
            x.to_string(),
            format!("docker.io/library/app:v2@sha256:{HEX}")
        );
        assert_eq!(r("[::1]:5000/app").registry, "[::1]:5000");
        assert_eq!(
            r("registry.example.com/team/app__x-y.z:tag_1").repository,
            "team/app__x-y.z"
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str| s.parse::<Reference>().unwrap_err().to_string();
        assert!(
            e("Busybox").contains("\"Busybox\" must be lowercase"),
            "{}",
            e("Busybox")
        );
        assert!(e("app:").contains("tag \"\""));
        assert!(e("app:-x").contains("tag \"-x\""));
        assert!(e("app@sha256:abc").contains("digest \"sha256:abc\""));
        assert!(e("a/.b").contains("\".b\" in \"a/.b\""));
        assert!(e("a//b").contains("\"\" in \"a//b\""));
        assert!(e("host:99999/app").contains("registry \"host:99999\""));
        assert!(e("a_-b").contains("\"a_-b\""));
        assert_eq!("".parse::<Reference>(), Err(ReferenceError::Empty));
        assert!(e(&"a".repeat(300)).contains("longer than 255"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_display_round_trips(s in "\\PC{0,80}") {
            if let Ok(x) = s.parse::<Reference>() {
                prop_assert_eq!(x.to_string().parse::<Reference>(), Ok(x));
            }
        }

        #[test]
        fn generated_valid_references_parse(
            reg in proptest::option::of("[a-z][a-z0-9]{0,8}\\.[a-z]{2,4}(:[1-9][0-9]{0,3})?"),
            path in "[a-z0-9]{1,8}((__|[._]|-{1,2})[a-z0-9]{1,5})?(/[a-z0-9]{1,8}){0,2}",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let s = format!("{}{}{}", reg.as_ref().map(|r| format!("{r}/")).unwrap_or_default(), path,
                tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default());
            let x: Reference = s.parse().map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
            prop_assert_eq!(x.tag.as_deref(), Some(tag.as_deref().unwrap_or("latest")));
            if let Some(reg) = reg {
                prop_assert_eq!(x.registry, reg);
                prop_assert_eq!(x.repository, path);
            }
        }
    }
}
