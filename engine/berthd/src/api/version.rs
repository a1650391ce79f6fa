//! API versions: berthd speaks 1.43 and accepts clients down to 1.24; paths may carry the
//! client's version (`/v1.43/containers/json`) or none.

/// The API version berthd speaks.
pub const API_VERSION: &str = "1.43";
/// The oldest version it accepts.
pub const MIN_API_VERSION: &str = "1.24";

/// `/v1.NN/rest` → (`Some("1.NN")`, `/rest`); an unversioned path is returned as it is.
pub fn split_version(path: &str) -> (Option<&str>, &str) {
    let Some(rest) = path.strip_prefix("/v") else {
        return (None, path);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let v = &rest[..end];
    let numeric = v
        .split_once('.')
        .is_some_and(|(a, b)| is_number(a) && is_number(b));
    if !numeric {
        return (None, path);
    }
    let tail = &rest[end..];
    (Some(v), if tail.is_empty() { "/" } else { tail })
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether berthd serves clients of version `v` (`1.24` ..= `1.43`); the error names the range.
pub fn check(v: &str) -> Result<(), String> {
    let parse = |s: &str| -> Option<(u32, u32)> {
        let (a, b) = s.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let (Some(got), Some(min), Some(max)) = (parse(v), parse(MIN_API_VERSION), parse(API_VERSION))
    else {
        return Err(format!("invalid API version {v:?}"));
    };
    if got < min {
        return Err(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ));
    }
    if got > max {
        return Err(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_and_plain_paths() {
        assert_eq!(
            split_version("/v1.43/containers/json"),
            (Some("1.43"), "/containers/json")
        );
        assert_eq!(split_version("/v1.24"), (Some("1.24"), "/"));
        assert_eq!(split_version("/_ping"), (None, "/_ping"));
        assert_eq!(split_version("/volumes/x"), (None, "/volumes/x"));
        assert_eq!(split_version("/vx.1/a"), (None, "/vx.1/a"));
        assert!(check("1.43").is_ok() && check("1.24").is_ok() && check("1.41").is_ok());
        assert!(
            check("1.12")
                .unwrap_err()
                .contains("Minimum supported API version is 1.24")
        );
        assert!(check("1.99").unwrap_err().contains("too new"));
        assert!(check("x").is_err());
    }
}
