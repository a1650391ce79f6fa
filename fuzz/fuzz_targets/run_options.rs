//! Any text as the small `docker run` parsers: `-v`, `--mount`, `-e`, `--env-file`,
//! `--add-host`, `--restart`, `--volumes-from`, `--name`, `--hostname`, `logs --since`,
//! `--device`, `--device-cgroup-rule`, `--ulimit`, `--tmpfs`, `--cpuset-cpus`, `--cap-add`,
//! and a container's `/etc/passwd` and `/etc/group` against `--user` and `--group-add` (as the
//! CLI reads them and as berthd does). They
//! never panic, and what they accept is well formed (absolute targets other than `/`, env names
//! without whitespace, names Docker would take).
#![no_main]

use engine::container::RestartPolicy;
use engine::container::etc::{hostname, parse_add_host};
use engine::container::mounts::parse_volumes_from;
use engine::container::names::validate_name;
use berth_api::opts::device::{CgroupRule, DeviceMapping, valid_permissions};
use berth_api::opts::env::{parse_env_arg, parse_env_file};
use berth_api::opts::ulimit::UlimitSpec;
use berth_api::opts::mount::{parse_mount, parse_volume};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for m in [parse_volume(s), parse_mount(s)].into_iter().flatten() {
        assert!(m.target.starts_with('/') && m.target.trim_end_matches('/') != "");
    }
    let lookup = |n: &str| (n == "HOME").then(|| "/root".to_string());
    if let Ok(Some((k, _))) = parse_env_arg(s, lookup) {
        assert!(!k.is_empty() && !k.chars().any(char::is_whitespace));
    }
    if let Ok(entries) = parse_env_file("f", s, lookup) {
        assert!(entries.iter().all(|(k, _)| !k.is_empty() && !k.contains('=')));
    }
    let gateway = Some(std::net::Ipv4Addr::new(172, 17, 0, 1).into());
    let _ = parse_add_host(s, gateway);
    if let Ok(p) = RestartPolicy::parse(s) {
        // What parses names itself again.
        let _ = p.name();
    }
    if let Ok((container, _)) = parse_volumes_from(s) {
        assert!(!container.is_empty());
    }
    if let Ok(name) = validate_name(s) {
        assert!(name.len() >= 2 && !name.contains('/'));
    }
    let _ = hostname(Some(s), "0123456789abcdef0123456789abcdef");
    if let Some((_, nanos)) = berth_common::time::parse(s) {
        assert!(nanos < 1_000_000_000);
    }
    if let Ok(t) = berth_common::time::docker_timestamp_from_now(s) {
        assert!(berth_common::time::parse_unix(&t).is_some(), "{t}");
    }
    if let Ok(d) = DeviceMapping::parse(s) {
        assert!(d.path_on_host.starts_with('/') && d.path_in_container.starts_with('/'));
        assert!(valid_permissions(&d.cgroup_permissions));
    }
    if let Ok(r) = CgroupRule::parse(s) {
        assert!(matches!(r.kind, 'a' | 'b' | 'c') && valid_permissions(&r.access));
    }
    if let Ok(u) = s.parse::<UlimitSpec>() {
        assert!(u.soft <= u.hard);
    }
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    if let Ok(m) = engine::container::namespaces::tmpfs_mount(path, opts) {
        assert!(m.options.iter().all(|o| !o.contains(',') && !o.contains('\0')));
    }
    if let Some(cpus) = engine::container::resources::parse_cpuset(s) {
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
    }
    if let Ok(c) = engine::runtime::caps::normalize(s) {
        assert!(c == "ALL" || engine::runtime::caps::ALL.contains(&c.as_str()));
    }
    // `--user` and `--group-add` against a passwd and a group file: the text before the
    // first NUL is the user spec, then passwd, then group.
    let mut parts = s.splitn(3, '\0');
    if let (Some(user), Some(passwd), Some(group)) = (parts.next(), parts.next(), parts.next()) {
        if let Ok(mut ids) = engine::runtime::user::resolve(user, passwd, group) {
            let adds: Vec<String> = user.split(',').map(str::to_string).collect();
            let _ = engine::runtime::user::add_groups(&mut ids, &adds, group);
        }
    }
});
