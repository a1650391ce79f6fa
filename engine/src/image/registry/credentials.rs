//! Docker's credentials file (`~/.docker/config.json`, or `$DOCKER_CONFIG/config.json`): the
//! `auths` map from a registry to `base64(user:password)` (or `username` and `password`). Reading
//! and updating it are pure functions over the JSON; only [`load`] and [`store`] touch the disk,
//! and `store` replaces the file atomically with mode 0600. Other keys are kept as they are.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// The key Docker files Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What is wrong with the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Not JSON, or `auths` is not an object.
    #[error("credentials file {path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// An `auth` value that is not base64 of `user:password`.
    #[error(
        "credentials file {path}: the auth entry for {registry:?} is not base64 of \"user:password\""
    )]
    BadAuth {
        /// The file.
        path: String,
        /// The entry.
        registry: String,
    },
    /// Reading or writing.
    #[error("credentials file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({:?}, <redacted>)", self.username)
    }
}

/// Where Docker keeps the file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker/config.json"),
    }
}

/// The key a registry's entry is filed under.
pub fn key_for(registry: &str) -> String {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// An entry key as the host[:port] it means (`https://host/v1/` and `http://host` as written by
/// older clients).
fn normalise(key: &str) -> &str {
    if key == DOCKER_HUB_KEY {
        return key;
    }
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// The login for `registry` in the parsed file `config`, if any.
pub fn lookup(
    config: &Value,
    registry: &str,
    path: &str,
) -> Result<Option<Login>, CredentialsError> {
    let want = key_for(registry);
    let Some(auths) = config.get("auths") else {
        return Ok(None);
    };
    let auths = auths.as_object().ok_or_else(|| CredentialsError::Invalid {
        path: path.into(),
        detail: "\"auths\" must be an object".into(),
    })?;
    let Some((key, entry)) = auths.iter().find(|(k, _)| normalise(k) == want) else {
        return Ok(None);
    };
    let bad = || CredentialsError::BadAuth {
        path: path.into(),
        registry: key.clone(),
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = STANDARD.decode(auth.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (u, p) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Login {
            username: u.into(),
            password: p.into(),
        }));
    }
    match (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        (Some(u), Some(p)) => Ok(Some(Login {
            username: u.into(),
            password: p.into(),
        })),
        _ => Ok(None),
    }
}

/// `config` with `login` filed for `registry` (replacing any older entry for it).
pub fn with_login(mut config: Value, registry: &str, login: &Login) -> Value {
    let key = key_for(registry);
    if !config.is_object() {
        config = json!({});
    }
    let obj = config.as_object_mut().expect("made an object above");
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let auths = auths.as_object_mut().expect("made an object above");
    auths.retain(|k, _| normalise(k) != key);
    let auth = STANDARD.encode(format!("{}:{}", login.username, login.password));
    auths.insert(key, json!({ "auth": auth }));
    config
}

/// `config` without an entry for `registry`; `None` when it had none (`docker logout`).
pub fn without(mut config: Value, registry: &str) -> Option<Value> {
    let key = key_for(registry);
    let auths = config.get_mut("auths")?.as_object_mut()?;
    let before = auths.len();
    auths.retain(|k, _| normalise(k) != key);
    (auths.len() != before).then_some(config)
}

/// Reads the file; a missing file is an empty configuration.
pub fn load(path: &Path) -> Result<Value, CredentialsError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CredentialsError::Invalid {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(source) => Err(CredentialsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes the file atomically, readable by its owner only.
pub fn store(path: &Path, config: &Value) -> Result<(), CredentialsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CredentialsError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(config).expect("JSON values serialise"))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(u: &str, p: &str) -> Login {
        Login {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn reads_what_docker_login_writes() {
        // `docker login localhost:5000 -u ann -p s3cr:et` and `docker login -u bob` (Hub).
        let cfg = json!({
            "auths": {
                "localhost:5000": {"auth": "YW5uOnMzY3I6ZXQ="},
                "https://index.docker.io/v1/": {"auth": "Ym9iOnB3"},
                "http://old.example:8443/v1/": {"username": "c", "password": "d"},
            },
            "credsStore": "desktop",
        });
        let f = "config.json";
        assert_eq!(
            lookup(&cfg, "localhost:5000", f).unwrap(),
            Some(login("ann", "s3cr:et"))
        );
        assert_eq!(
            lookup(&cfg, "docker.io", f).unwrap(),
            Some(login("bob", "pw"))
        );
        assert_eq!(
            lookup(&cfg, "old.example:8443", f).unwrap(),
            Some(login("c", "d"))
        );
        assert_eq!(lookup(&cfg, "localhost:5001", f).unwrap(), None);
        assert_eq!(lookup(&json!({}), "docker.io", f).unwrap(), None);
    }

    #[test]
    fn a_bad_entry_is_an_error_naming_it() {
        let cfg = json!({"auths": {"r.example": {"auth": "not base64!"}}});
        let e = lookup(&cfg, "r.example", "/x/config.json").unwrap_err();
        assert!(
            e.to_string().contains("r.example") && e.to_string().contains("/x/config.json"),
            "{e}"
        );
        let e = lookup(&json!({"auths": []}), "r.example", "f").unwrap_err();
        assert!(e.to_string().contains("auths"), "{e}");
    }

    #[test]
    fn login_and_logout_keep_everything_else() {
        let cfg = json!({"auths": {"http://a.example/v1/": {"auth": "eDp5"}}, "psFormat": "table {{.ID}}"});
        let cfg = with_login(cfg, "a.example", &login("u", "p"));
        assert_eq!(cfg["psFormat"], "table {{.ID}}");
        assert_eq!(
            cfg["auths"].as_object().unwrap().len(),
            1,
            "the old entry is replaced"
        );
        assert_eq!(
            lookup(&cfg, "a.example", "f").unwrap(),
            Some(login("u", "p"))
        );
        let cfg = with_login(cfg, "docker.io", &login("h", "q"));
        assert!(cfg["auths"].get(DOCKER_HUB_KEY).is_some());
        let cfg = without(cfg, "a.example").unwrap();
        assert_eq!(lookup(&cfg, "a.example", "f").unwrap(), None);
        assert!(without(cfg, "a.example").is_none());
    }

    #[test]
    fn the_file_is_written_atomically_and_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/config.json");
        assert_eq!(load(&path).unwrap(), json!({}));
        let cfg = with_login(load(&path).unwrap(), "localhost:5000", &login("a", "b"));
        store(&path, &cfg).unwrap();
        assert_eq!(load(&path).unwrap(), cfg);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("config.json"));
    }
}
