//! Process limits berth's daemons raise at start.

/// Raises this process's soft limit of open files to its hard limit: the daemons hold a
/// descriptor per relayed connection, per attached stream and per directory level of a
/// `docker cp` walk, and the usual soft limit (1024) is far below what they may need. Best
/// effort: the limit stays as it is when it cannot be read or set.
pub fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_becomes_the_hard_one() {
        use nix::sys::resource::{Resource, getrlimit};
        super::raise_nofile();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
    }
}
