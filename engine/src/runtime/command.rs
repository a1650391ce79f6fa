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

/// The process arguments. `entrypoint`: `--entrypoint` (`Some("")` clears the image's);
/// `args`: what follows the image name. A new entrypoint drops the image's `Cmd`, as Docker.
pub fn resolve(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint: Option<&str>,
    args: &[String],
) -> Result<Vec<String>, CommandError> {
    let (ep, default_cmd): (Vec<String>, &[String]) = match entrypoint {
        None => (image_entrypoint.to_vec(), image_cmd),
        Some("") => (Vec::new(), &[]),
        Some(e) => (vec![e.to_string()], &[]),
    };
    let cmd: &[String] = if args.is_empty() { default_cmd } else { args };
    let out: Vec<String> = ep.into_iter().chain(cmd.iter().cloned()).collect();
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
            resolve(&ep, &cmd, Some("/bin/sh"), &[]).unwrap(),
            s(&["/bin/sh"])
        );
        assert_eq!(
            resolve(&ep, &cmd, Some("/bin/sh"), &s(&["-c", "id"])).unwrap(),
            s(&["/bin/sh", "-c", "id"])
        );
        assert_eq!(resolve(&[], &s(&["sh"]), None, &[]).unwrap(), s(&["sh"]));
        assert_eq!(
            resolve(&ep, &cmd, Some(""), &s(&["true"])).unwrap(),
            s(&["true"])
        );
        assert_eq!(
            resolve(&ep, &cmd, Some(""), &[]),
            Err(CommandError::Missing)
        );
        assert_eq!(resolve(&[], &[], None, &[]), Err(CommandError::Missing));
    }
}
