//! Manifests fetched under a size cap. oci-client reads a manifest response whole into memory,
//! however large, so a hostile registry could exhaust berthd's memory with one endless
//! manifest; berth fetches manifests itself (same authentication: the token oci-client obtained,
//! or the request's basic credentials) and stops past [`MANIFEST_MAX`], Docker's limit.

use oci_client::secrets::RegistryAuth;
use reqwest::StatusCode;

use super::RegistryError;

/// The largest manifest or index taken (Docker's limit, 4 MiB).
pub const MANIFEST_MAX: usize = 4 << 20;

/// How one authenticated session reaches a registry's manifests.
#[derive(Clone)]
pub struct ManifestFetcher {
    pub(crate) http: reqwest::Client,
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    /// The bearer token oci-client obtained for the session, if the registry wanted one.
    pub(crate) token: Option<String>,
    pub(crate) auth: RegistryAuth,
}

impl std::fmt::Debug for ManifestFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestFetcher")
            .field("scheme", &self.scheme)
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl ManifestFetcher {
    /// The manifest `r` names (by tag or digest), accepting `accept`; refused past
    /// [`MANIFEST_MAX`], whether the registry declares the size or streams it. `reference` is
    /// what a 404 names.
    pub async fn manifest(
        &self,
        r: &oci_client::Reference,
        accept: &[&str],
        reference: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let registry = r.resolve_registry();
        let what = "fetching the manifest";
        let url = format!(
            "{}://{registry}/v2/{}/manifests/{}",
            self.scheme,
            r.repository(),
            r.digest().or(r.tag()).unwrap_or("latest"),
        );
        let failed = |detail: String| RegistryError::Registry {
            registry: registry.to_string(),
            what: what.into(),
            detail,
        };
        let mut req = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, accept.join(", "));
        req = match (&self.token, &self.auth) {
            (Some(t), _) | (None, RegistryAuth::Bearer(t)) => req.bearer_auth(t),
            (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            (None, RegistryAuth::Anonymous) => req,
        };
        let mut resp = req.send().await.map_err(|e| failed(chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            // The error body is small by any registry's rule; read at most a little of it.
            let body = read_capped(&mut resp, 64 << 10)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            return Err(refusal(registry, what, reference, status, &body));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MANIFEST_MAX as u64)
        {
            return Err(too_big(registry, what));
        }
        match read_capped(&mut resp, MANIFEST_MAX).await {
            Ok(Some(body)) => Ok(body),
            Ok(None) => Err(too_big(registry, what)),
            Err(e) => Err(failed(chain(&e))),
        }
    }
}

fn too_big(registry: &str, what: &str) -> RegistryError {
    RegistryError::Registry {
        registry: registry.into(),
        what: what.into(),
        detail: format!("the manifest is larger than {MANIFEST_MAX} bytes (Docker's limit, 4 MiB)"),
    }
}

/// The body, or `None` once it passes `max` bytes (the rest is never read).
async fn read_capped(
    resp: &mut reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// What a refusal means: 401/403 (or an `UNAUTHORIZED`/`DENIED` code) is a credentials problem,
/// 404 (or `MANIFEST_UNKNOWN`/`NAME_UNKNOWN`) names what was asked for, anything else is
/// reported with the registry's messages.
pub fn refusal(
    registry: &str,
    what: &str,
    reference: &str,
    status: StatusCode,
    body: &[u8],
) -> RegistryError {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let errors = serde_json::from_slice::<Envelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default();
    let has = |codes: &[&str]| errors.iter().any(|e| codes.contains(&e.code.as_str()));
    if matches!(status.as_u16(), 401 | 403) || has(&["UNAUTHORIZED", "DENIED"]) {
        return RegistryError::Unauthorized {
            registry: registry.into(),
            what: what.into(),
        };
    }
    if status == StatusCode::NOT_FOUND || has(&["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]) {
        return RegistryError::NotFound {
            reference: reference.into(),
        };
    }
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    RegistryError::Registry {
        registry: registry.into(),
        what: what.into(),
        detail: if messages.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {}", messages.join("; "))
        },
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    super::full_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_went_wrong() {
        let r = |status: u16, body: &str| {
            refusal(
                "r.example",
                "fetching the manifest",
                "app:1",
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
            )
        };
        assert!(matches!(r(401, ""), RegistryError::Unauthorized { .. }));
        assert!(matches!(
            r(400, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#),
            RegistryError::Unauthorized { .. }
        ));
        match r(404, "") {
            RegistryError::NotFound { reference } => assert_eq!(reference, "app:1"),
            other => panic!("{other}"),
        }
        assert!(matches!(
            r(400, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
            RegistryError::NotFound { .. }
        ));
        let e = r(500, r#"{"errors":[{"code":"X","message":"disk on fire"}]}"#).to_string();
        assert!(e.contains("500") && e.contains("disk on fire"), "{e}");
        let e = r(502, "<html>").to_string();
        assert!(e.contains("502"), "{e}");
    }
}
