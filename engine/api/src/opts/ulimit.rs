//! `--ulimit NAME=SOFT[:HARD]` as Docker reads it (`-1` and `unlimited` are no limit). Pure;
//! whether the host allows a limit is the engine's to check.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::container_create::Ulimit;

/// Why a `--ulimit` is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UlimitError {
    /// Not `name=soft[:hard]`.
    #[error("invalid ulimit {0:?}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048")]
    Syntax(String),
    /// An unknown name.
    #[error("invalid ulimit {spec:?}: unknown name {name:?} (valid: {valid})")]
    Name {
        /// What the user wrote.
        spec: String,
        /// The bad name.
        name: String,
        /// Valid names.
        valid: String,
    },
    /// Soft above hard.
    #[error("invalid ulimit {0:?}: the soft limit is above the hard limit")]
    SoftAboveHard(String),
}

/// The names Docker takes (each `RLIMIT_` + the upper-cased name).
pub const NAMES: [&str; 16] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

/// A parsed `--ulimit`: no limit is `u64::MAX`. Serialised as its text form and read back
/// through the parser, as a `-p` spec is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UlimitSpec {
    /// `nofile`.
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

impl fmt::Display for UlimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: u64| {
            if v == u64::MAX {
                "-1".to_string()
            } else {
                v.to_string()
            }
        };
        write!(f, "{}={}:{}", self.name, n(self.soft), n(self.hard))
    }
}

impl FromStr for UlimitSpec {
    type Err = UlimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_ulimit(s)
    }
}

impl TryFrom<String> for UlimitSpec {
    type Error = UlimitError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse_ulimit(&s)
    }
}

impl From<UlimitSpec> for String {
    fn from(u: UlimitSpec) -> String {
        u.to_string()
    }
}

impl UlimitSpec {
    /// An API `HostConfig.Ulimits` entry (`-1`: no limit), checked as `--ulimit` text is.
    pub fn from_api(u: &Ulimit) -> Result<UlimitSpec, UlimitError> {
        let n = |v: i64| {
            if v < 0 {
                "-1".to_string()
            } else {
                v.to_string()
            }
        };
        parse_ulimit(&format!("{}={}:{}", u.name, n(u.soft), n(u.hard)))
    }

    /// As an API `Ulimits` entry, as the docker CLI sends `--ulimit`.
    pub fn to_api(&self) -> Ulimit {
        let n = |v: u64| i64::try_from(v).unwrap_or(-1);
        Ulimit {
            name: self.name.clone(),
            soft: n(self.soft),
            hard: n(self.hard),
        }
    }
}

/// Parses `NAME=SOFT[:HARD]`.
pub fn parse_ulimit(spec: &str) -> Result<UlimitSpec, UlimitError> {
    let (name, vals) = spec
        .split_once('=')
        .ok_or_else(|| UlimitError::Syntax(spec.into()))?;
    if !NAMES.contains(&name) {
        return Err(UlimitError::Name {
            spec: spec.into(),
            name: name.into(),
            valid: NAMES.join(", "),
        });
    }
    let num = |s: &str| -> Result<u64, UlimitError> {
        if s == "-1" || s == "unlimited" {
            return Ok(u64::MAX);
        }
        s.parse().map_err(|_| UlimitError::Syntax(spec.into()))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => {
            let v = num(vals)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(UlimitError::SoftAboveHard(spec.into()));
    }
    Ok(UlimitSpec {
        name: name.into(),
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_ulimit_syntax() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            UlimitSpec {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }
        );
        let u = parse_ulimit("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (u64::MAX, u64::MAX));
        assert_eq!(
            parse_ulimit("nproc=unlimited:unlimited").unwrap().hard,
            u64::MAX
        );
        assert!(matches!(
            parse_ulimit("nofile=10:5"),
            Err(UlimitError::SoftAboveHard(_))
        ));
        let e = parse_ulimit("files=1").unwrap_err().to_string();
        assert!(e.contains("\"files\"") && e.contains("nofile"), "{e}");
        for bad in ["nofile", "nofile=x", "nofile=1:", "=1"] {
            assert!(parse_ulimit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_entries_and_records_read_back() {
        let u = parse_ulimit("nofile=100:200").unwrap();
        assert_eq!(UlimitSpec::from_api(&u.to_api()).unwrap(), u);
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(json, "\"nofile=100:200\"");
        assert_eq!(serde_json::from_str::<UlimitSpec>(&json).unwrap(), u);
        let api = Ulimit {
            name: "core".into(),
            soft: -1,
            hard: -1,
        };
        assert_eq!(UlimitSpec::from_api(&api).unwrap().hard, u64::MAX);
        let e = UlimitSpec::from_api(&Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1,
        })
        .unwrap_err();
        assert!(e.to_string().contains("\"bogus\""), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_never_panics(s in ".{0,40}") {
            if let Ok(u) = parse_ulimit(&s) {
                proptest::prop_assert!(u.soft <= u.hard);
                proptest::prop_assert_eq!(parse_ulimit(&u.to_string()), Ok(u));
            }
        }
    }
}
