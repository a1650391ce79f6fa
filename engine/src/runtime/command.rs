//! What a container runs: the image's `Entrypoint` and `Cmd` with `--entrypoint` and the
//! command line's arguments, by Docker's rules. Pure.

/// Why there is nothing to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Neither the image nor the caller gives a command.
    #[error(
        "no command specified: the image has no Entrypoint or Cmd; give a command after the image name"
    )]
    Missing,
}

/// `Config.Entrypoint` and `Config.Cmd` as Docker records them for a container, from the
/// image's and the caller's. `entrypoint`: what the caller sent (`None`: nothing; `[]`: none,
/// the image's command kept; `[""]`, the docker CLI's `--entrypoint ""`: none, and the image's
/// command dropped); `args`: the command after the image name. A new entrypoint drops the
/// image's command, as Docker.
pub fn config(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint: Option<&[String]>,
    args: &[String],
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let or_none = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    let (ep, default_cmd): (Option<Vec<String>>, &[String]) = match entrypoint {
        None => (or_none(image_entrypoint), image_cmd),
        Some([]) => (Some(Vec::new()), image_cmd),
        Some([e]) if e.is_empty() => (None, &[]),
        Some(e) => (Some(e.to_vec()), &[]),
    };
    let cmd = if args.is_empty() {
        or_none(default_cmd)
    } else {
        Some(args.to_vec())
    };
    (ep, cmd)
}

/// The process arguments: [`config`]'s entrypoint, then its command.
pub fn resolve(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint: Option<&[String]>,
    args: &[String],
) -> Result<Vec<String>, CommandError> {
    let (ep, cmd) = config(image_entrypoint, image_cmd, entrypoint, args);
    let out: Vec<String> = ep
        .into_iter()
        .flatten()
        .chain(cmd.into_iter().flatten())
        .collect();
    if out.is_empty() {
        return Err(CommandError::Missing);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn dockers_rules() {
        let (ep, cmd) = (s(&["/entry.sh"]), s(&["serve", "--port", "80"]));
        assert_eq!(
            resolve(&ep, &cmd, None, &[]).unwrap(),
            s(&["/entry.sh", "serve", "--port", "80"])
        );
        assert_eq!(
            resolve(&ep, &cmd, None, &s(&["sh"])).unwrap(),
            s(&["/entry.sh", "sh"])
        );
        assert_eq!(
            resolve(&ep, &cmd, Some(&s(&["/bin/sh"])), &[]).unwrap(),
            s(&["/bin/sh"])
        );
        assert_eq!(
            resolve(&ep, &cmd, Some(&s(&["/bin/sh"])), &s(&["-c", "id"])).unwrap(),
            s(&["/bin/sh", "-c", "id"])
        );
        assert_eq!(resolve(&[], &s(&["sh"]), None, &[]).unwrap(), s(&["sh"]));
        assert_eq!(
            resolve(&ep, &cmd, Some(&s(&[""])), &s(&["true"])).unwrap(),
            s(&["true"])
        );
        assert_eq!(
            resolve(&ep, &cmd, Some(&s(&[""])), &[]),
            Err(CommandError::Missing)
        );
        assert_eq!(resolve(&[], &[], None, &[]), Err(CommandError::Missing));
        // The API's empty entrypoint keeps the image's command; a list replaces it whole.
        assert_eq!(resolve(&ep, &cmd, Some(&[]), &[]).unwrap(), cmd);
        assert_eq!(
            resolve(&ep, &cmd, Some(&s(&["sh", "-c"])), &s(&["echo hi"])).unwrap(),
            s(&["sh", "-c", "echo hi"])
        );
    }

    #[test]
    fn config_as_docker_records_it() {
        let (ep, cmd) = (s(&["echo", "ep"]), s(&["c1"]));
        let c = |e: Option<&[String]>, a: &[&str]| config(&ep, &cmd, e, &s(a));
        assert_eq!(c(None, &[]), (Some(ep.clone()), Some(cmd.clone())));
        assert_eq!(c(None, &["x"]), (Some(ep.clone()), Some(s(&["x"]))));
        assert_eq!(c(Some(&s(&["sh"])), &[]), (Some(s(&["sh"])), None));
        assert_eq!(c(Some(&s(&[""])), &["ls"]), (None, Some(s(&["ls"]))));
        assert_eq!(c(Some(&[]), &[]), (Some(vec![]), Some(cmd.clone())));
        assert_eq!(
            config(&[], &[], None, &s(&["ls"])),
            (None, Some(s(&["ls"])))
        );
    }
}
