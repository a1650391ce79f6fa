//! `-e` and `--env-file` as Docker reads them. Pure functions; the caller's own environment
//! comes in as a lookup function.

/// Why an environment entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `=value`, or a name with whitespace.
    #[error(
        "invalid environment variable: {0:?} (expected NAME=VALUE or NAME, NAME without whitespace)"
    )]
    Invalid(String),
    /// A bad line of an env file.
    #[error("{file}:{line}: invalid environment variable {text:?} (expected NAME=VALUE or NAME)")]
    FileLine {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace) && !name.contains('\0')
}

/// One `-e` argument: `NAME=VALUE` sets it; `NAME` takes the caller's value (and is dropped
/// when the caller has none, as Docker does).
pub fn parse_env_arg(
    arg: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<(String, String)>, EnvError> {
    match arg.split_once('=') {
        Some((name, value)) => {
            if !valid_name(name) {
                return Err(EnvError::Invalid(arg.to_string()));
            }
            Ok(Some((name.to_string(), value.to_string())))
        }
        None => {
            if !valid_name(arg) {
                return Err(EnvError::Invalid(arg.to_string()));
            }
            Ok(lookup(arg).map(|v| (arg.to_string(), v)))
        }
    }
}

/// An `--env-file`: one entry per line; blank lines and lines starting with `#` are skipped;
/// leading whitespace is dropped; values are taken verbatim (no quote processing, as Docker).
pub fn parse_env_file(
    file: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_env_arg(line, &lookup) {
            Ok(Some(kv)) => out.push(kv),
            Ok(None) => {}
            Err(_) => {
                return Err(EnvError::FileLine {
                    file: file.to_string(),
                    line: i + 1,
                    text: raw.to_string(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/root".to_string())
    }

    #[test]
    fn dash_e() {
        assert_eq!(
            parse_env_arg("A=1", caller).unwrap(),
            Some(("A".into(), "1".into()))
        );
        assert_eq!(
            parse_env_arg("A==b=", caller).unwrap(),
            Some(("A".into(), "=b=".into()))
        );
        assert_eq!(
            parse_env_arg("A=", caller).unwrap(),
            Some(("A".into(), "".into()))
        );
        assert_eq!(
            parse_env_arg("HOME", caller).unwrap(),
            Some(("HOME".into(), "/root".into()))
        );
        assert_eq!(parse_env_arg("UNSET", caller).unwrap(), None);
        for bad in ["=x", "", "A B=1", "A B"] {
            let e = parse_env_arg(bad, caller).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn env_file() {
        let text = "# comment\n\n  A=1\nB=\"quoted stays\"\nHOME\nUNSET\nC=x=y\n";
        let got = parse_env_file("app.env", text, caller).unwrap();
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"quoted stays\"".into()),
                ("HOME".into(), "/root".into()),
                ("C".into(), "x=y".into()),
            ]
        );
        let e = parse_env_file("app.env", "A=1\n=oops\n", caller).unwrap_err();
        assert_eq!(
            e.to_string(),
            "app.env:2: invalid environment variable \"=oops\" (expected NAME=VALUE or NAME)"
        );
    }
}
