//! Query parameters as Docker reads them: one boolean rule for every route.

use std::collections::HashMap;

/// Docker's boolean query parameter (moby's `httputils.BoolValue`): absent, empty, `0`, `no`,
/// `false` and `none` (any case, spaces around ignored) are false; anything else (`1`, `true`,
/// `True`, `TRUE`, `yes`) is true.
pub fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    bool_or(q, k, false)
}

/// [`flag`], with `default` when the parameter is absent (moby's `BoolValueOrDefault`).
pub fn bool_or(q: &HashMap<String, String>, k: &str, default: bool) -> bool {
    q.get(k).map_or(default, |v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        )
    })
}

/// `repo[:tag]` of an import's or a commit's `repo` and `tag` (a tag without a repository
/// names nothing: Docker ignores it too).
pub fn repo_tag(q: &HashMap<String, String>) -> Option<String> {
    let repo = q.get("repo").filter(|r| !r.is_empty())?;
    Some(match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    })
}

/// Every value of repeated parameter `k` of `uri`'s query (`changes=A&changes=B`), in order.
pub fn all(uri: &axum::http::Uri, k: &str) -> Vec<String> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| {
            q.0.into_iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_s_boolean_rule() {
        let q = |v: &str| HashMap::from([("all".to_string(), v.to_string())]);
        for v in ["1", "true", "True", "TRUE", "yes", " 1 "] {
            assert!(flag(&q(v), "all"), "{v:?}");
        }
        for v in ["", "0", "false", "FALSE", "no", "none", " 0"] {
            assert!(!flag(&q(v), "all"), "{v:?}");
        }
        assert!(!flag(&HashMap::new(), "all"));
        assert!(bool_or(&HashMap::new(), "stream", true));
        assert!(!bool_or(&q("0"), "all", true));
    }

    #[test]
    fn repository_and_tag() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            repo_tag(&q(&[("repo", "a"), ("tag", "1")])).as_deref(),
            Some("a:1")
        );
        assert_eq!(
            repo_tag(&q(&[("repo", "a"), ("tag", "")])).as_deref(),
            Some("a")
        );
        assert_eq!(repo_tag(&q(&[("tag", "1")])), None);
        assert_eq!(repo_tag(&q(&[("repo", "")])), None);
    }

    #[test]
    fn repeated_parameters() {
        let uri: axum::http::Uri = "/commit?changes=ENV%20A%3D1&x=1&changes=CMD+ls"
            .parse()
            .unwrap();
        assert_eq!(all(&uri, "changes"), ["ENV A=1", "CMD ls"]);
        assert!(all(&uri, "nope").is_empty());
    }
}
