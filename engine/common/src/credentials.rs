//! Docker's credentials file (`~/.docker/config.json`, or `$DOCKER_CONFIG/config.json`): the
//! `auths` map from a registry to `base64(user:password)` (or `username` and `password`). Reading
//! and updating it are pure functions over the JSON; only [`load`] and [`store`] touch the disk,
//! and `store` replaces the file atomically with mode 0600. Other keys are kept as they are.
//!
//! Docker's daemon keeps no logins: its client reads the file and hands the daemon the login for
//! each pull or push in the `X-Registry-Auth` header ([`encode_header`], [`decode_header`]),
//! base64url of Docker's `AuthConfig` JSON ([`AuthConfig`]); berth's CLI and berthd do the same.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The longest `X-Registry-Auth` value taken (Docker's CLI sends well under 1 KiB; a JWT
/// registry token may take a few).
pub const HEADER_MAX: usize = 16 * 1024;

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
    /// An `X-Registry-Auth` header that is not base64url of Docker's `AuthConfig` JSON, or
    /// asks for what berth does not do.
    #[error("invalid X-Registry-Auth header: {0}")]
    Header(String),
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

/// The registry a login's server address names: its host[:port], and `docker.io` for Docker
/// Hub's key (`https://index.docker.io/v1/`, what the docker CLI sends when no server is given).
pub fn registry_of_server(address: &str) -> &str {
    match normalise(address.trim()) {
        DOCKER_HUB_KEY | "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

/// An entry key or server address as the host[:port] it means (`https://host/v1/` and
/// `http://host` as written by older clients; Docker Hub's key stays as it is).
pub fn normalise(key: &str) -> &str {
    if key == DOCKER_HUB_KEY {
        return key;
    }
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// `base64(user:password)` as the login it holds.
fn decode_auth(auth: &str) -> Option<Login> {
    let raw = STANDARD.decode(auth.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Login {
        username: u.into(),
        password: p.into(),
    })
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
        return decode_auth(auth).map(Some).ok_or_else(bad);
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

/// Writes the file atomically, readable by its owner only, in a directory made 0700 when it
/// has to be made (as Docker's CLI). A file that is a symbolic link is written where it points,
/// the link kept.
pub fn store(path: &Path, config: &Value) -> Result<(), CredentialsError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |source| CredentialsError::Io {
        path: path.display().to_string(),
        source,
    };
    let linked;
    let path = match std::fs::read_link(path) {
        Ok(to) => {
            linked = path.parent().unwrap_or(Path::new("/")).join(to);
            linked.as_path()
        }
        Err(_) => path,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
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
mod config_header_tests {
    use super::*;

    #[test]
    fn a_builds_logins_by_registry() {
        let v = URL_SAFE.encode(
            r#"{"https://index.docker.io/v1/":{"username":"u","password":"p"},"http://127.0.0.1:5000/v2/":{"auth":"dTpw"}}"#,
        );
        let m = decode_config_header(&v).unwrap();
        assert_eq!(m["https://index.docker.io/v1/"].username, "u");
        assert_eq!(m["127.0.0.1:5000"].auth, "dTpw");
        assert!(decode_config_header("").unwrap().is_empty());
        assert!(
            decode_config_header("%%%")
                .unwrap_err()
                .to_string()
                .contains("X-Registry-Config")
        );
        assert!(decode_config_header(&URL_SAFE.encode("[1]")).is_err());
    }
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
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700, "a directory made for the file");
        // A linked file is written where the link points; the link stays.
        let real = dir.path().join("real.json");
        std::fs::write(&real, "{}").unwrap();
        let link = dir.path().join("linked.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        store(&link, &cfg).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(load(&real).unwrap(), cfg);
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("config.json"));
    }
}

/// Docker's `AuthConfig`: what `POST /auth` takes and `X-Registry-Auth` carries. Unknown keys are
/// ignored, as Docker's daemon does.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// `base64(user:password)`, as the file's `auth`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    /// Not used by registries (Docker keeps it for old clients).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The registry the login is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// An OAuth refresh token from an earlier login.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token to send as it is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

/// What a request's credentials amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAuth {
    /// None given.
    Anonymous,
    /// A user name and password.
    Basic(Login),
    /// A bearer token (`registrytoken`).
    Bearer(String),
}

impl AuthConfig {
    /// The credentials in it: a user name and password (given as such or as `auth`), else a
    /// registry token, else none. An identity token is refused by name: berth does not do
    /// OAuth refresh tokens.
    pub fn request_auth(&self) -> Result<RequestAuth, CredentialsError> {
        let basic = if !self.username.is_empty() || !self.password.is_empty() {
            Some(Login {
                username: self.username.clone(),
                password: self.password.clone(),
            })
        } else if !self.auth.is_empty() {
            Some(decode_auth(&self.auth).ok_or_else(|| {
                CredentialsError::Header("\"auth\" is not base64 of \"user:password\"".into())
            })?)
        } else {
            None
        };
        // Docker sends the user name beside an identity token, with no password.
        if !self.identitytoken.is_empty() && basic.as_ref().is_none_or(|l| l.password.is_empty()) {
            return Err(CredentialsError::Header(
                "\"identitytoken\" is not supported: berth does not use OAuth refresh tokens (send a username and password, or a registrytoken)".into(),
            ));
        }
        if let Some(l) = basic {
            return Ok(RequestAuth::Basic(l));
        }
        if !self.registrytoken.is_empty() {
            return Ok(RequestAuth::Bearer(self.registrytoken.clone()));
        }
        Ok(RequestAuth::Anonymous)
    }
}

/// The `X-Registry-Auth` value for `config`: base64url of its JSON, as Docker's CLI sends it.
pub fn encode_header(config: &AuthConfig) -> String {
    URL_SAFE.encode(serde_json::to_vec(config).expect("AuthConfig serialises"))
}

/// The bytes of a base64url header value (padded or not; plain base64 too, as some clients
/// send), at most [`HEADER_MAX`] long; `None` when it is empty.
fn header_bytes(value: &str, header: &str) -> Result<Option<Vec<u8>>, CredentialsError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > HEADER_MAX {
        return Err(CredentialsError::Header(format!(
            "{header}: {} bytes (at most {HEADER_MAX})",
            value.len()
        )));
    }
    [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(value).ok())
        .map(Some)
        .ok_or_else(|| CredentialsError::Header(format!("{header} is not base64url")))
}

/// Reads an `X-Registry-Auth` value: base64url of Docker's `AuthConfig` JSON. Empty means no
/// credentials.
pub fn decode_header(value: &str) -> Result<AuthConfig, CredentialsError> {
    let Some(json) = header_bytes(value, "X-Registry-Auth")? else {
        return Ok(AuthConfig::default());
    };
    serde_json::from_slice(&json)
        .map_err(|e| CredentialsError::Header(format!("not Docker's AuthConfig JSON: {e}")))
}

/// Reads an `X-Registry-Config` value (a build's logins): base64url of a JSON object from
/// registry (as the credentials file names it) to Docker's `AuthConfig`. Empty means none.
pub fn decode_config_header(
    value: &str,
) -> Result<std::collections::BTreeMap<String, AuthConfig>, CredentialsError> {
    let Some(json) = header_bytes(value, "X-Registry-Config")? else {
        return Ok(Default::default());
    };
    let map: std::collections::BTreeMap<String, AuthConfig> = serde_json::from_slice(&json)
        .map_err(|e| {
            CredentialsError::Header(format!(
                "X-Registry-Config is not a JSON object of Docker's AuthConfig by registry: {e}"
            ))
        })?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (normalise(&k).to_string(), v))
        .collect())
}

/// The registry a reference names, by Docker's rule: its first component when that has a `.`
/// or a `:`, is `localhost` or a bracketed IPv6 address, and more follows; else Docker Hub
/// (`docker.io`). Returns the registry and the rest of the reference.
pub fn split_registry(reference: &str) -> (&str, &str) {
    match reference.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.starts_with('[') =>
        {
            (first, rest)
        }
        _ => ("docker.io", reference),
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[test]
    fn the_header_docker_sends_is_read() {
        // What docker CLI v28 sends after `docker login -u ann -p s3cret localhost:5000`.
        let v = URL_SAFE
            .encode(br#"{"username":"ann","password":"s3cret","serveraddress":"localhost:5000"}"#);
        let c = decode_header(&v).unwrap();
        assert_eq!(c.serveraddress, "localhost:5000");
        assert_eq!(
            c.request_auth().unwrap(),
            RequestAuth::Basic(Login {
                username: "ann".into(),
                password: "s3cret".into()
            })
        );
        // `{}`, which it sends with no login; and nothing at all.
        assert_eq!(
            decode_header("e30=").unwrap().request_auth().unwrap(),
            RequestAuth::Anonymous
        );
        assert_eq!(decode_header("").unwrap(), AuthConfig::default());
        // Unpadded and plain base64 too; `auth` and a registry token.
        let c = decode_header(&URL_SAFE_NO_PAD.encode(br#"{"auth":"YW5uOnM/Mw=="}"#)).unwrap();
        assert_eq!(
            c.request_auth().unwrap(),
            RequestAuth::Basic(Login {
                username: "ann".into(),
                password: "s?3".into()
            })
        );
        let c = decode_header(&STANDARD.encode(br#"{"registrytoken":"t0k"}"#)).unwrap();
        assert_eq!(c.request_auth().unwrap(), RequestAuth::Bearer("t0k".into()));
    }

    #[test]
    fn bad_headers_are_refused_by_name() {
        for bad in [
            "%%%",
            &URL_SAFE.encode(b"[1,2]"),
            &"A".repeat(HEADER_MAX + 4),
        ] {
            let e = decode_header(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid X-Registry-Auth header"), "{e}");
        }
        for json in [
            &br#"{"identitytoken":"x"}"#[..],
            br#"{"username":"u","identitytoken":"x"}"#,
            br#"{"auth":"dTo=","identitytoken":"x"}"#,
        ] {
            let c = decode_header(&URL_SAFE.encode(json)).unwrap();
            let e = c.request_auth().unwrap_err().to_string();
            assert!(e.contains("identitytoken"), "{e}");
        }
        let c = decode_header(&URL_SAFE.encode(br#"{"auth":"bm9jb2xvbg=="}"#)).unwrap();
        assert!(c.request_auth().is_err(), "auth without a colon");
    }

    #[test]
    fn encode_then_decode_is_the_same() {
        let c = AuthConfig {
            username: "u".into(),
            password: "p:w?>".into(),
            serveraddress: "r.example:5000".into(),
            ..AuthConfig::default()
        };
        assert_eq!(decode_header(&encode_header(&c)).unwrap(), c);
        assert!(!encode_header(&c).contains(['+', '/']));
    }

    #[test]
    fn login_server_addresses_name_their_registry() {
        assert_eq!(
            registry_of_server("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(registry_of_server("index.docker.io"), "docker.io");
        assert_eq!(
            registry_of_server("http://r.example:5000/v2/"),
            "r.example:5000"
        );
        assert_eq!(registry_of_server(" 127.0.0.1:5000 "), "127.0.0.1:5000");
    }

    #[test]
    fn registries_by_dockers_rule() {
        assert_eq!(split_registry("busybox"), ("docker.io", "busybox"));
        assert_eq!(split_registry("user/app:1"), ("docker.io", "user/app:1"));
        assert_eq!(
            split_registry("localhost:5000/a/b:1"),
            ("localhost:5000", "a/b:1")
        );
        assert_eq!(split_registry("localhost/app"), ("localhost", "app"));
        assert_eq!(split_registry("r.example/app"), ("r.example", "app"));
        assert_eq!(split_registry("[::1]:5000/app"), ("[::1]:5000", "app"));
    }
}
