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
}
