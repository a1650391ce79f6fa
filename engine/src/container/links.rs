//! Legacy links (`--link NAME[:ALIAS]` on the default bridge): the environment Docker gives
//! the linking container (`ALIAS_PORT_80_TCP_ADDR`, `ALIAS_NAME`, `ALIAS_ENV_X`, ...), from the
//! linked container's address, exposed ports and environment. Pure.

use std::net::IpAddr;

/// A port as `80/tcp`, split; `None` for anything else.
fn port(spec: &str) -> Option<(u16, String)> {
    let (p, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    Some((p.parse().ok()?, proto.to_ascii_lowercase()))
}

/// The variables one link gives, as moby's `Link.ToEnv`: the first port's `ALIAS_PORT`; for
/// each run of at least three consecutive port numbers (whatever their protocols) its
/// `_START`/`_END` set; for each exposed port (by number, TCP first) `ALIAS_PORT_N_PROTO` with
/// `_ADDR`, `_PORT` and `_PROTO`; `ALIAS_NAME` (`/linking/alias`); the linked container's
/// environment as `ALIAS_ENV_X` (but `HOME` and `PATH`). The alias is upper-cased with `-` as
/// `_`.
pub fn link_env(
    alias: &str,
    link_name: &str,
    ip: IpAddr,
    exposed: &[String],
    child_env: &[String],
) -> Vec<String> {
    let a = alias.to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed.iter().filter_map(|p| port(p)).collect();
    ports.sort_by(|x, y| {
        x.0.cmp(&y.0)
            .then_with(|| (y.1 == "tcp").cmp(&(x.1 == "tcp")))
    });
    ports.dedup();
    let mut env = Vec::new();
    let addr = |(n, proto): &(u16, String)| format!("{proto}://{ip}:{n}");
    if let Some(p) = ports.first() {
        env.push(format!("{a}_PORT={}", addr(p)));
    }
    // The last index of the run of consecutive numbers that starts at `i` (moby's
    // nextContiguous: numbers only).
    let run_end = |i: usize| {
        let first = u32::from(ports[i].0);
        for (value, (j, p)) in (first..).zip(ports.iter().enumerate().skip(i + 1)) {
            if u32::from(p.0) > value + 1 {
                return j - 1;
            }
        }
        ports.len() - 1
    };
    let mut i = 0;
    while i < ports.len() {
        let j = run_end(i);
        if j > i + 1 {
            let (p, q) = (&ports[i], &ports[j]);
            let prefix = format!("{a}_PORT_{}_{}", p.0, p.1.to_ascii_uppercase());
            env.push(format!("{prefix}_START={}", addr(p)));
            env.push(format!("{prefix}_ADDR={ip}"));
            env.push(format!("{prefix}_PROTO={}", p.1));
            env.push(format!("{prefix}_PORT_START={}", p.0));
            let end_prefix = format!("{a}_PORT_{}_{}", p.0, q.1.to_ascii_uppercase());
            env.push(format!("{end_prefix}_END={}", addr(q)));
            env.push(format!("{end_prefix}_PORT_END={}", q.0));
            i = j + 1;
            continue;
        }
        i += 1;
    }
    for p in &ports {
        let prefix = format!("{a}_PORT_{}_{}", p.0, p.1.to_ascii_uppercase());
        env.push(format!("{prefix}={}", addr(p)));
        env.push(format!("{prefix}_ADDR={ip}"));
        env.push(format!("{prefix}_PORT={}", p.0));
        env.push(format!("{prefix}_PROTO={}", p.1));
    }
    env.push(format!("{a}_NAME={link_name}"));
    for e in child_env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{a}_ENV_{k}={v}"));
    }
    env
}

/// `base` (the links' variables) with `over` (the container's own environment) set over it,
/// as Docker replaces or appends the container's variables to the links'.
pub fn with_env(base: Vec<String>, over: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out = base;
    let mut at: std::collections::HashMap<String, usize> =
        out.iter().enumerate().map(|(i, e)| (key(e), i)).collect();
    for e in over {
        match at.get(&key(e)) {
            Some(&i) => out[i] = e.clone(),
            None => {
                at.insert(key(e), out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_docker_names_them() {
        let ip: IpAddr = "10.199.0.2".parse().unwrap();
        let exposed: Vec<String> = ["9000/tcp", "8002/udp", "5432/tcp", "8000/udp", "8001/udp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = link_env(
            "my-db",
            "/web/my-db",
            ip,
            &exposed,
            &[
                "SECRET=s".into(),
                "PATH=/bin".into(),
                "X=1".into(),
                "odd".into(),
            ],
        );
        let mut sorted = env.clone();
        sorted.sort();
        sorted.dedup();
        // dockerd 20.10's variables for the same link (`env | sort`).
        let want = "MY_DB_ENV_SECRET=s MY_DB_ENV_X=1 MY_DB_NAME=/web/my-db MY_DB_PORT=tcp://10.199.0.2:5432 \
            MY_DB_PORT_5432_TCP=tcp://10.199.0.2:5432 MY_DB_PORT_5432_TCP_ADDR=10.199.0.2 MY_DB_PORT_5432_TCP_PORT=5432 \
            MY_DB_PORT_5432_TCP_PROTO=tcp MY_DB_PORT_8000_UDP=udp://10.199.0.2:8000 MY_DB_PORT_8000_UDP_ADDR=10.199.0.2 \
            MY_DB_PORT_8000_UDP_END=udp://10.199.0.2:8002 MY_DB_PORT_8000_UDP_PORT=8000 MY_DB_PORT_8000_UDP_PORT_END=8002 \
            MY_DB_PORT_8000_UDP_PORT_START=8000 MY_DB_PORT_8000_UDP_PROTO=udp MY_DB_PORT_8000_UDP_START=udp://10.199.0.2:8000 \
            MY_DB_PORT_8001_UDP=udp://10.199.0.2:8001 MY_DB_PORT_8001_UDP_ADDR=10.199.0.2 MY_DB_PORT_8001_UDP_PORT=8001 \
            MY_DB_PORT_8001_UDP_PROTO=udp MY_DB_PORT_8002_UDP=udp://10.199.0.2:8002 MY_DB_PORT_8002_UDP_ADDR=10.199.0.2 \
            MY_DB_PORT_8002_UDP_PORT=8002 MY_DB_PORT_8002_UDP_PROTO=udp MY_DB_PORT_9000_TCP=tcp://10.199.0.2:9000 \
            MY_DB_PORT_9000_TCP_ADDR=10.199.0.2 MY_DB_PORT_9000_TCP_PORT=9000 MY_DB_PORT_9000_TCP_PROTO=tcp";
        assert_eq!(
            sorted.join(" "),
            want.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert_eq!(env[0], "MY_DB_PORT=tcp://10.199.0.2:5432");
        assert_eq!(
            with_env(env, &["MY_DB_NAME=mine".into(), "Z=1".into()])
                .iter()
                .filter(|e| e.starts_with("MY_DB_NAME=") || e.starts_with("Z="))
                .collect::<Vec<_>>(),
            ["MY_DB_NAME=mine", "Z=1"]
        );
        assert_eq!(link_env("db", "/a/db", ip, &[], &[]), ["DB_NAME=/a/db"]);
        // Two consecutive ports are no run; a run may mix protocols.
        let two = link_env(
            "db",
            "/a/db",
            ip,
            &["8000/tcp".into(), "8001/tcp".into()],
            &[],
        );
        assert!(!two.iter().any(|e| e.contains("_START=")), "{two:?}");
        let mixed = link_env(
            "db",
            "/a/db",
            ip,
            &["80/tcp".into(), "81/udp".into(), "82/tcp".into()],
            &[],
        );
        assert!(
            mixed.contains(&"DB_PORT_80_TCP_END=tcp://10.199.0.2:82".to_string()),
            "{mixed:?}"
        );
    }
}

/// A link's name as Docker registers it (`/web/db`, or `web/db` as the docker CLI sends it):
/// the linking container and the alias; `None` for a container's own name (`db`, `/db`).
pub fn split_link_name(name: &str) -> Option<(&str, &str)> {
    let name = name.strip_prefix('/').unwrap_or(name);
    let (parent, alias) = name.rsplit_once('/')?;
    (!parent.is_empty() && !alias.is_empty()).then_some((parent, alias))
}

impl super::engine::Engine {
    /// The linking container and the index of its `--link` that `name` (`web/db`) names.
    fn find_link(&self, name: &str) -> Result<(String, usize), super::ContainerError> {
        let missing = || super::ContainerError::NotFound(name.to_string());
        let (parent, alias) = split_link_name(name).ok_or_else(missing)?;
        let pid = self.resolve(parent).map_err(|_| missing())?;
        let at = self.containers[&pid]
            .options
            .links
            .iter()
            .position(|l| {
                l.parse::<netcore::network::ContainerLink>()
                    .is_ok_and(|l| l.alias == alias)
            })
            .ok_or_else(missing)?;
        Ok((pid, at))
    }

    /// The container a link name (`web/db`) stands for, as Docker's name registry answers it.
    pub fn resolve_link(&self, name: &str) -> Result<String, super::ContainerError> {
        let (pid, at) = self.find_link(name)?;
        let link: netcore::network::ContainerLink = self.containers[&pid].options.links[at]
            .parse()
            .map_err(super::ContainerError::Invalid)?;
        self.resolve(&link.container)
            .map_err(|_| super::ContainerError::NotFound(name.to_string()))
    }

    /// `docker rm --link web/db`: `web` no longer links `db` (its environment and names
    /// change at its next start, as Docker's). A container's own name is refused in Docker's
    /// words.
    pub fn remove_link(&mut self, name: &str) -> Result<(), super::ContainerError> {
        if split_link_name(name).is_none() {
            self.resolve(name)?;
            return Err(super::ContainerError::Conflict(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        }
        let (pid, at) = self.find_link(name)?;
        if let Some(c) = self.containers.get_mut(&pid) {
            c.options.links.remove(at);
        }
        self.save(&pid)
    }
}

#[cfg(test)]
mod name_tests {
    use super::split_link_name;

    #[test]
    fn link_names_split_as_docker_registers_them() {
        assert_eq!(split_link_name("/web/db"), Some(("web", "db")));
        assert_eq!(split_link_name("web/db"), Some(("web", "db")));
        assert_eq!(split_link_name("db"), None);
        assert_eq!(split_link_name("/db"), None);
        assert_eq!(split_link_name("web/"), None);
        assert_eq!(split_link_name("//db"), None);
    }
}
