//! The few sysctls networking needs (forwarding), written under a root path so tests point it
//! at a temporary directory.

use std::path::{Path, PathBuf};

/// Writes `/proc/sys` keys (or the same tree under another root).
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl::new("/proc/sys")
    }
}

impl Sysctl {
    /// Keys resolve under `root` (`/proc/sys` for the real thing).
    pub fn new(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl { root: root.into() }
    }

    /// The file of `key` (`net/ipv4/ip_forward`).
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Sets `key` to `value` unless it already has it (a write can be refused even when it
    /// would change nothing, e.g. in a namespace without the privilege); whether it wrote.
    pub fn ensure(&self, key: &str, value: &str) -> std::io::Result<bool> {
        let path = self.path(key);
        if read_trimmed(&path).as_deref() == Some(value) {
            return Ok(false);
        }
        std::fs::write(&path, value).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot set {}: {e}", path.display()))
        })?;
        Ok(true)
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_different() {
        let dir = std::env::temp_dir().join(format!("berth-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net/ipv4")).unwrap();
        let s = Sysctl::new(&dir);
        std::fs::write(s.path("net/ipv4/ip_forward"), "0\n").unwrap();
        assert!(s.ensure("net/ipv4/ip_forward", "1").unwrap());
        assert!(!s.ensure("net/ipv4/ip_forward", "1").unwrap());
        assert_eq!(
            std::fs::read_to_string(s.path("net/ipv4/ip_forward")).unwrap(),
            "1"
        );
        let e = s.ensure("net/nope/x", "1").unwrap_err().to_string();
        assert!(e.contains("net/nope/x"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
