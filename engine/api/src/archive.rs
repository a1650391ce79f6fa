//! `docker cp`'s view of a container path: Docker's `X-Docker-Container-Path-Stat` header
//! (`container.PathStat`), base64 of a small JSON object. Pure.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Docker's `X-Docker-Container-Path-Stat` (`container.PathStat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    /// The base name (`.` for a directory's contents).
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds.
    pub mtime: String,
    /// Where a symlink points, as an absolute container path; empty otherwise.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The header value: base64 of the JSON.
    pub fn header(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(self).expect("a stat serialises"))
    }

    /// Parses a header value (what a client receives); `None` when it is not one.
    pub fn from_header(v: &str) -> Option<PathStat> {
        let json = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// Whether it is a symlink.
    pub fn is_symlink(&self) -> bool {
        self.mode & (1 << 27) != 0
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & (1 << 31) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_base64_of_dockers_json() {
        let s = PathStat {
            name: "f".into(),
            size: 3,
            mode: 0o644,
            mtime: "1970-01-01T00:00:00Z".into(),
            link_target: String::new(),
        };
        let json = base64::engine::general_purpose::STANDARD
            .decode(s.header())
            .unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"name":"f","size":3,"mode":420,"mtime":"1970-01-01T00:00:00Z","linkTarget":""}"#
        );
        assert!(!s.is_dir());
        assert_eq!(PathStat::from_header(&s.header()), Some(s));
    }

    proptest::proptest! {
        #[test]
        fn any_header_never_panics(s in ".{0,80}") {
            let _ = PathStat::from_header(&s);
        }
    }
}
