//! The environment a container starts with: the image's `Env`, overridden by the caller's
//! (`-e`, `--env-file`, parsed by [`berth_api::opts::env`]), with a default `PATH`. Pure.

/// The `PATH` a container gets when neither the image nor the caller sets one (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The container's environment: the image's `NAME=VALUE` entries, each overridden by the
/// caller's (last one wins, in the order given), then `PATH` when still missing and
/// `HOSTNAME`. Order: image entries in their order, then new names in the caller's order.
pub fn merge(image: &[String], run: &[(String, String)], hostname: &str) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(n, _)| n == k) {
        Some(e) => e.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    for e in image {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(k, v);
    }
    for (k, v) in run {
        set(k, v);
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    if !out.iter().any(|(k, _)| k == "HOSTNAME") {
        out.insert(1.min(out.len()), ("HOSTNAME".into(), hostname.into()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `Config.Env` as Docker records it at create: the client's entries (the last of a name
/// wins, in the place of its first), then the image's whose names the client does not set.
pub fn config_env(image: &[String], run: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in run {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    for e in image {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        if !out.iter().any(|(n, _)| n == k) {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_overrides_the_image_and_adds_path_and_hostname() {
        let image = vec!["PATH=/app/bin".to_string(), "LANG=C".into(), "EMPTY".into()];
        let run = vec![
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("X".into(), "1".into()),
            ("X".into(), "2".into()),
        ];
        assert_eq!(
            merge(&image, &run, "abc123"),
            [
                "PATH=/app/bin",
                "HOSTNAME=abc123",
                "LANG=C.UTF-8",
                "EMPTY=",
                "X=2"
            ]
        );
        assert_eq!(
            merge(&[], &[], "h"),
            [format!("PATH={DEFAULT_PATH}"), "HOSTNAME=h".into()]
        );
    }
}
