//! The connection to registries: one oci-client [`Client`] per registry and identity, plain HTTP
//! where Docker allows it (loopback, and `--insecure-registry` entries, which may be host[:port]
//! or CIDR ranges), TLS (rustls, system roots) otherwise.
//!
//! Credentials are either those of Docker's file ([`RegistryOptions::credentials`], for the
//! command-line tools) or handed in per request ([`Registry::as_user`]: berthd, from the
//! client's `X-Registry-Auth`, as Docker's daemon, which keeps no logins of its own). A client
//! caches the tokens it was given, so clients are never shared between identities: a request
//! without credentials never rides on another one's token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::RegistryError;
use super::credentials::{self, Login};
use super::fetch::ManifestFetcher;
use crate::image::reference::Reference;

/// How berth talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `--insecure-registry`: host[:port] names or CIDR ranges reached over plain HTTP.
    /// Loopback registries always are, as Docker's.
    pub insecure: Vec<String>,
    /// Docker's credentials file (`None`: never send credentials).
    pub credentials: Option<PathBuf>,
    /// Upload blobs in chunks of this many bytes (`PATCH` per chunk) instead of one request.
    pub chunk_size: Option<usize>,
    /// Layers transferred at once (Docker's default is 3).
    pub concurrency: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            credentials: Some(credentials::default_path()),
            chunk_size: None,
            concurrency: 3,
        }
    }
}

/// Connections kept at once; past it, one is dropped for each new one (it is made again on its
/// next use), so many registries or logins cannot grow the table without end.
const MAX_CLIENTS: usize = 64;

/// How long a registry may take to accept a connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a registry may stay silent in the middle of an answer (a stalled transfer ends
/// instead of holding its pull, and what it protects, for ever).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A registry client with its connections. Cloning it (or [`Registry::as_user`]) shares the
/// connections.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
    who: Who,
}

/// A registry (host[:port]) and an identity (`None`: anonymous).
type ClientKey = (String, Option<[u8; 32]>);

struct Shared {
    opts: RegistryOptions,
    clients: Mutex<HashMap<ClientKey, Arc<Client>>>,
    /// For manifests ([`ManifestFetcher`]): plain HTTP with no state of its own (no cookies),
    /// each request carrying its session's credentials, so one serves every identity.
    http: reqwest::Client,
}

/// One authenticated session on one repository: the oci-client connection of the request's
/// identity, its credentials, and the fetcher of its manifests.
pub struct Session {
    /// The connection (blobs, uploads).
    pub client: Arc<Client>,
    /// The credentials.
    pub auth: RegistryAuth,
    /// Manifests, size-capped.
    pub manifests: ManifestFetcher,
}

/// Whose credentials requests carry.
#[derive(Clone)]
enum Who {
    /// The credentials file of the options, if any.
    Configured,
    /// These (anonymous too): the file is not read.
    Given(RegistryAuth),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("auth", &self.auth)
            .field("manifests", &self.manifests)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("opts", &self.shared.opts)
            .field(
                "who",
                &match &self.who {
                    Who::Configured => "configured".to_string(),
                    Who::Given(a) => format!("{a:?}"),
                },
            )
            .finish_non_exhaustive()
    }
}

/// What identifies the credentials of `auth` (never the credentials themselves).
fn identity(auth: &RegistryAuth) -> Option<[u8; 32]> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    match auth {
        RegistryAuth::Anonymous => return None,
        RegistryAuth::Basic(user, password) => {
            h.update(b"basic\0");
            h.update(user.as_bytes());
            h.update(b"\0");
            h.update(password.as_bytes());
        }
        RegistryAuth::Bearer(token) => {
            h.update(b"bearer\0");
            h.update(token.as_bytes());
        }
    }
    Some(h.finalize().into())
}

/// Whether `registry` (host[:port]) is reached over plain HTTP.
pub fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    if host == "localhost" {
        return true;
    }
    let ip: Option<IpAddr> = host.parse().ok();
    if ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    insecure.iter().any(|entry| {
        if let Ok(net) = entry.parse::<ipnet::IpNet>() {
            return ip.is_some_and(|ip| net.contains(&ip));
        }
        entry == registry || (!entry.contains(':') && entry == host)
    })
}

/// The host of `host[:port]` or `[v6]:port`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// berth's reference as oci-client's.
pub fn oci_reference(r: &Reference) -> oci_client::Reference {
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
            r.registry.clone(),
            r.repository.clone(),
            t.clone(),
            d.to_string(),
        ),
        (None, Some(d)) => oci_client::Reference::with_digest(
            r.registry.clone(),
            r.repository.clone(),
            d.to_string(),
        ),
        (t, None) => oci_client::Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            t.clone().unwrap_or_else(|| "latest".into()),
        ),
    }
}

/// Makes ring the process's TLS crypto provider (reqwest is built without one, to avoid
/// aws-lc's C++/cmake build). Harmless when one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Registry {
    /// A client with `opts`.
    pub fn new(opts: RegistryOptions) -> Registry {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!("registry HTTP client with defaults: {e}");
                reqwest::Client::default()
            });
        Registry {
            shared: Arc::new(Shared {
                opts,
                clients: Mutex::new(HashMap::new()),
                http,
            }),
            who: Who::Configured,
        }
    }

    /// The same registry client for requests carrying `auth` (anonymous too), never the
    /// credentials file: berthd's pulls and pushes, with what the API client sent.
    pub fn as_user(&self, auth: credentials::RequestAuth) -> Registry {
        use credentials::RequestAuth as R;
        let auth = match auth {
            R::Anonymous => RegistryAuth::Anonymous,
            R::Basic(l) => RegistryAuth::Basic(l.username, l.password),
            R::Bearer(t) => RegistryAuth::Bearer(t),
        };
        Registry {
            shared: self.shared.clone(),
            who: Who::Given(auth),
        }
    }

    /// The options.
    pub fn options(&self) -> &RegistryOptions {
        &self.shared.opts
    }

    /// The connection to `registry` for the identity of `auth`.
    pub fn client(&self, registry: &str, auth: &RegistryAuth) -> Arc<Client> {
        let opts = &self.shared.opts;
        let key = (registry.to_string(), identity(auth));
        let mut clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            if let Some(old) = clients.keys().next().cloned() {
                clients.remove(&old);
            }
        }
        clients
            .entry(key)
            .or_insert_with(|| {
                let protocol = if is_insecure(registry, &opts.insecure) {
                    ClientProtocol::HttpsExcept(vec![registry.to_string()])
                } else {
                    ClientProtocol::Https
                };
                Arc::new(Client::new(ClientConfig {
                    protocol,
                    use_monolithic_push: opts.chunk_size.is_none(),
                    max_concurrent_download: opts.concurrency,
                    max_concurrent_upload: opts.concurrency,
                    platform_resolver: None,
                    user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
                    connect_timeout: Some(CONNECT_TIMEOUT),
                    read_timeout: Some(READ_TIMEOUT),
                    ..ClientConfig::default()
                }))
            })
            .clone()
    }

    /// The credentials for `registry`: those given, else from the credentials file, if any.
    pub fn auth_for(&self, registry: &str) -> Result<RegistryAuth, RegistryError> {
        if let Who::Given(auth) = &self.who {
            return Ok(auth.clone());
        }
        let Some(path) = &self.shared.opts.credentials else {
            return Ok(RegistryAuth::Anonymous);
        };
        let config = credentials::load(path)?;
        Ok(
            match credentials::lookup(&config, registry, &path.display().to_string())? {
                Some(Login { username, password }) => RegistryAuth::Basic(username, password),
                None => RegistryAuth::Anonymous,
            },
        )
    }

    /// Authenticates for `op` on `r`'s repository (a bearer token when the registry asks for
    /// one, basic auth when it asks for that), so the requests that follow carry it.
    pub async fn authenticate(
        &self,
        r: &Reference,
        op: RegistryOperation,
    ) -> Result<Session, RegistryError> {
        let auth = self.auth_for(&r.registry)?;
        let client = self.client(&r.registry, &auth);
        let token = client
            .auth(&oci_reference(r), &auth, op)
            .await
            .map_err(|e| RegistryError::from_oci(&r.registry, "authenticating", e))?;
        let scheme = if is_insecure(&r.registry, &self.shared.opts.insecure) {
            "http"
        } else {
            "https"
        };
        Ok(Session {
            manifests: ManifestFetcher {
                http: self.shared.http.clone(),
                scheme,
                token,
                auth: auth.clone(),
            },
            client,
            auth,
        })
    }

    /// `docker login`: checks `login` against the registry and files it in the credentials
    /// file; a refused login changes nothing.
    pub async fn login(&self, registry: &str, login: &Login) -> Result<(), RegistryError> {
        let Some(path) = &self.shared.opts.credentials else {
            return Err(RegistryError::NoCredentialsFile);
        };
        self.check_login(registry, login).await?;
        let config = credentials::with_login(credentials::load(path)?, registry, login);
        credentials::store(path, &config)?;
        Ok(())
    }

    /// Whether the registry accepts `login` (berthd's `POST /auth`: checked, not kept).
    pub async fn check_login(&self, registry: &str, login: &Login) -> Result<(), RegistryError> {
        // A fresh client: a cached one may hold tokens of another login.
        let client = Client::new(ClientConfig {
            protocol: if is_insecure(registry, &self.shared.opts.insecure) {
                ClientProtocol::HttpsExcept(vec![registry.to_string()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        });
        let probe = oci_client::Reference::with_tag(
            registry.to_string(),
            "berth/login-probe".into(),
            "latest".into(),
        );
        let auth = RegistryAuth::Basic(login.username.clone(), login.password.clone());
        // For basic-auth registries `auth` only records the credentials; a catalog-free probe
        // of the repository's tags is what makes the registry check them.
        client
            .auth(&probe, &auth, RegistryOperation::Pull)
            .await
            .map_err(|e| RegistryError::from_oci(registry, "logging in", e))?;
        match client.list_tags(&probe, &auth, Some(1), None).await {
            Ok(_) => {}
            Err(oci_client::errors::OciDistributionError::AuthenticationFailure(m)) => {
                return Err(RegistryError::LoginRefused {
                    registry: registry.into(),
                    detail: m,
                });
            }
            Err(oci_client::errors::OciDistributionError::UnauthorizedError { url }) => {
                return Err(RegistryError::LoginRefused {
                    registry: registry.into(),
                    detail: format!("401 Unauthorized from {url}"),
                });
            }
            // Anything else (404: no such repository) means the credentials were accepted.
            Err(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_plain_http() {
        let list = vec![
            "10.1.0.0/16".to_string(),
            "reg.lan".into(),
            "other.lan:5000".into(),
        ];
        for r in [
            "localhost:5000",
            "localhost",
            "127.0.0.1:5000",
            "127.9.9.9",
            "[::1]:5000",
        ] {
            assert!(is_insecure(r, &[]), "{r}");
        }
        for r in ["10.1.2.3:5000", "reg.lan", "reg.lan:443", "other.lan:5000"] {
            assert!(is_insecure(r, &list), "{r}");
        }
        for r in [
            "docker.io",
            "10.2.0.1:5000",
            "other.lan:5001",
            "localhost.example.com",
            "reg.lan.evil",
        ] {
            assert!(!is_insecure(r, &list), "{r}");
        }
    }

    #[test]
    fn references_keep_registry_repository_tag_and_digest() {
        let r: Reference = "localhost:5000/a/b:1".parse().unwrap();
        let o = oci_reference(&r);
        assert_eq!(o.registry(), "localhost:5000");
        assert_eq!(o.repository(), "a/b");
        assert_eq!(o.tag(), Some("1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r: Reference = format!("busybox@{d}").parse().unwrap();
        let o = oci_reference(&r);
        assert_eq!(o.repository(), "library/busybox");
        assert_eq!(o.digest(), Some(d.as_str()));
    }
}
