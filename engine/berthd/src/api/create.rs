//! `POST /containers/create`: Docker's JSON body (what the docker CLI and SDKs send) turned into
//! the engine's [`CreateOptions`], which take `docker run`'s flags by name. Pure. Settings that
//! would change behaviour and that berth cannot honour are refused by name rather than dropped
//! (here or by the engine's checks at create).

use berth_api::container_create::{self as create, ContainerCreate};
use berth_api::opts::mount;
use berth_api::opts::ulimit::UlimitSpec;
use engine::container::{Connection, CreateOptions, RestartPolicy};
use portproxy::PortSpec;

use super::error::ApiError;

/// Parses a body; the error names what is wrong in it.
pub fn parse(body: &[u8]) -> Result<ContainerCreate, ApiError> {
    create::parse(body).map_err(|e| ApiError::bad(format!("invalid container config: {e}")))
}

/// What an endpoint's settings ask for that berth does not apply, by name under `at`.
pub fn endpoint_refusals(at: &str, ep: &create::EndpointConfig) -> Vec<String> {
    let mut out: Vec<String> = create::unapplied(&ep.rest)
        .into_iter()
        .map(|f| format!("{at}.{f}"))
        .collect();
    if let Some(i) = &ep.ipam_config {
        out.extend(
            create::unapplied(&i.rest)
                .into_iter()
                .map(|f| format!("{at}.IPAMConfig.{f}")),
        );
    }
    out
}

/// The engine's settings of an endpoint as a client sent them.
pub fn connection(ep: &create::EndpointConfig) -> Connection {
    let nonempty = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let ipam = ep.ipam_config.clone().unwrap_or_default();
    Connection {
        aliases: ep.aliases.clone().unwrap_or_default(),
        ip: nonempty(&ipam.ipv4_address),
        ip6: nonempty(&ipam.ipv6_address),
        link_local_ips: ipam.link_local_ips.unwrap_or_default(),
        mac: nonempty(&ep.mac_address),
        driver_opts: ep.driver_opts.clone().unwrap_or_default(),
        links: ep.links.clone().unwrap_or_default(),
    }
}

/// The engine's options for `body`, named `name` (the `name` query parameter).
pub fn to_options(body: ContainerCreate, name: Option<String>) -> Result<CreateOptions, ApiError> {
    // What berth does not apply is refused by name, never dropped.
    let mut refused: Vec<String> = create::unapplied(&body.rest)
        .into_iter()
        .chain(
            create::unapplied(&body.host_config.rest)
                .into_iter()
                .map(|f| format!("HostConfig.{f}")),
        )
        .collect();
    for (net, ep) in body.networking_config.endpoints_config.iter().flatten() {
        refused.extend(endpoint_refusals(
            &format!("NetworkingConfig.EndpointsConfig.{net}"),
            ep,
        ));
    }
    if !refused.is_empty() {
        return Err(ApiError::bad(format!(
            "not supported by berth: {} (leave these unset)",
            refused.join(", ")
        )));
    }
    if !(-1000..=1000).contains(&body.host_config.oom_score_adj) {
        return Err(ApiError::bad(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            body.host_config.oom_score_adj
        )));
    }
    let h = body.host_config;
    if body.image.is_empty() {
        return Err(ApiError::bad("config has no Image: give the image to run"));
    }
    let entrypoint = body.entrypoint.into_vec();
    let cmd = body.cmd.into_vec().unwrap_or_default();
    let mut publish = Vec::new();
    for (port, bindings) in h.port_bindings.unwrap_or_default() {
        for b in bindings.unwrap_or_default() {
            publish.push(
                PortSpec::from_binding(&port, &b.host_ip, &b.host_port)
                    .map_err(|e| ApiError::bad(format!("HostConfig.PortBindings: {e}")))?,
            );
        }
    }
    let mut volumes: Vec<String> = h.binds.unwrap_or_default();
    let api_mounts = h.mounts.unwrap_or_default();
    // `Volumes` also lists the targets of binds and mounts (docker-py sends both): as Docker,
    // only the others are anonymous volumes.
    let taken: Vec<String> = volumes
        .iter()
        .filter_map(|v| berth_api::opts::mount::parse_volume(v).ok())
        .map(|m| m.target.trim_end_matches('/').to_string())
        .chain(
            api_mounts
                .iter()
                .map(|m| m.target.trim_end_matches('/').to_string()),
        )
        .collect();
    volumes.extend(
        body.volumes
            .unwrap_or_default()
            .into_keys()
            .filter(|t| !taken.contains(&t.trim_end_matches('/').to_string())),
    );
    let mut mounts = Vec::new();
    for m in &api_mounts {
        mounts.push(
            mount::from_api(m).map_err(|e| ApiError::bad(format!("HostConfig.Mounts: {e}")))?,
        );
    }
    let mut endpoint = {
        let eps = body.networking_config.endpoints_config.unwrap_or_default();
        // API 1.43 and older create on one network (the others are connected after).
        if eps.len() > 1 {
            return Err(ApiError::bad(format!(
                "Container cannot be connected to network endpoints: {}",
                eps.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let mode = h.network_mode.as_str();
        eps.get(mode)
            .or_else(|| (eps.len() == 1).then(|| eps.values().next()).flatten())
            .map(connection)
            .unwrap_or_default()
    };
    // Clients of API 1.43 and older send `--mac-address` here, for the first network.
    match &endpoint.mac {
        _ if body.mac_address.is_empty() => {}
        None => endpoint.mac = Some(body.mac_address.clone()),
        Some(m) if m.eq_ignore_ascii_case(&body.mac_address) => {}
        Some(m) => {
            return Err(ApiError::bad(format!(
                "the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty (MacAddress {:?}, endpoint {m:?})",
                body.mac_address
            )));
        }
    }
    let restart = match h.restart_policy {
        None => RestartPolicy::No,
        Some(r) => RestartPolicy::from_parts(&r.name, r.maximum_retry_count)
            .map_err(|e| ApiError::bad(format!("HostConfig.RestartPolicy: {e}")))?,
    };
    let mut ulimits = Vec::new();
    for u in h.ulimits.unwrap_or_default() {
        ulimits.push(
            UlimitSpec::from_api(&u)
                .map_err(|e| ApiError::bad(format!("HostConfig.Ulimits: {e}")))?,
        );
    }
    let memory = match h.memory {
        m if m < 0 => {
            return Err(ApiError::bad(format!(
                "invalid HostConfig.Memory {m}: give 0 (no limit) or a size in bytes"
            )));
        }
        0 => None,
        m => Some(m as u64),
    };
    let stop_timeout = match body.stop_timeout {
        None => None,
        Some(t) => Some(u32::try_from(t).map_err(|_| {
            ApiError::bad(format!("invalid StopTimeout {t}: give 0 or more seconds"))
        })?),
    };
    Ok(CreateOptions {
        name: name.filter(|n| !n.is_empty()),
        image: body.image,
        cmd,
        entrypoint,
        env: body.env.unwrap_or_default(),
        workdir: Some(body.working_dir).filter(|w| !w.is_empty()),
        user: Some(body.user).filter(|u| !u.is_empty()),
        hostname: Some(body.hostname).filter(|h| !h.is_empty()),
        domainname: Some(body.domainname).filter(|d| !d.is_empty()),
        labels: body.labels.unwrap_or_default(),
        tty: body.tty,
        open_stdin: body.open_stdin,
        stdin_once: body.stdin_once,
        volumes,
        mounts,
        volumes_from: h.volumes_from.unwrap_or_default(),
        network: Some(h.network_mode).filter(|n| !n.is_empty()),
        publish,
        publish_all: h.publish_all_ports,
        expose: body.exposed_ports.unwrap_or_default().into_keys().collect(),
        network_aliases: endpoint.aliases,
        links: h.links.unwrap_or_default(),
        ip: endpoint.ip,
        ip6: endpoint.ip6,
        link_local_ips: endpoint.link_local_ips,
        mac_address: endpoint.mac,
        endpoint_driver_opts: endpoint.driver_opts,
        endpoint_links: endpoint.links,
        dns: h.dns.unwrap_or_default(),
        dns_search: h.dns_search.unwrap_or_default(),
        dns_option: h.dns_options.unwrap_or_default(),
        add_hosts: h.extra_hosts.unwrap_or_default(),
        memory,
        cpus: (h.nano_cpus > 0).then(|| h.nano_cpus as f64 / 1e9),
        pids_limit: h.pids_limit.filter(|p| *p > 0),
        ulimits,
        restart,
        auto_remove: h.auto_remove,
        log_driver: h
            .log_config
            .as_ref()
            .map(|l| l.kind.clone())
            .unwrap_or_default(),
        log_opts: h.log_config.map(|l| l.config).unwrap_or_default(),
        runtime: h.runtime,
        read_only: h.readonly_rootfs,
        stop_timeout,
        privileged: h.privileged,
        cap_add: h.cap_add.unwrap_or_default(),
        cap_drop: h.cap_drop.unwrap_or_default(),
        security_opt: h.security_opt.unwrap_or_default(),
        cgroupns: h.cgroupns_mode,
        pid_mode: h.pid_mode,
        ipc_mode: h.ipc_mode,
        uts_mode: h.uts_mode,
        userns_mode: h.userns_mode,
        tmpfs: h.tmpfs.unwrap_or_default(),
        shm_size: match h.shm_size {
            0 => None,
            s if s < 0 => {
                return Err(ApiError::bad(format!(
                    "invalid HostConfig.ShmSize {s}: give 0 (Docker's 64 MiB) or a size in bytes"
                )));
            }
            s => Some(s as u64),
        },
        sysctls: h.sysctls.unwrap_or_default(),
        init: h.init,
        healthcheck: body.healthcheck,
        oom_score_adj: h.oom_score_adj,
        masked_paths: h.masked_paths,
        readonly_paths: h.readonly_paths,
        console_size: h.console_size,
        container_id_file: h.container_id_file,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        config_env: None,
        config_command: None,
        stop_signal: Some(body.stop_signal).filter(|s| !s.is_empty()),
        shell: body.shell.unwrap_or_default(),
        devices: h.devices.unwrap_or_default(),
        device_cgroup_rules: h.device_cgroup_rules.unwrap_or_default(),
        group_add: h.group_add.unwrap_or_default(),
        memory_swap: (h.memory_swap != 0).then_some(h.memory_swap),
        memory_reservation: match h.memory_reservation {
            0 => None,
            r if r < 0 => {
                return Err(ApiError::bad(format!(
                    "invalid HostConfig.MemoryReservation {r}: give 0 or a size in bytes"
                )));
            }
            r => Some(r as u64),
        },
        // -1 is Docker's "the host's default".
        memory_swappiness: h.memory_swappiness.filter(|s| *s != -1),
        oom_kill_disable: h.oom_kill_disable,
        cpu_shares: (h.cpu_shares != 0).then_some(h.cpu_shares),
        cpu_period: (h.cpu_period != 0).then_some(h.cpu_period),
        cpu_quota: (h.cpu_quota != 0).then_some(h.cpu_quota),
        cpuset_cpus: h.cpuset_cpus,
        cpuset_mems: h.cpuset_mems,
        blkio_weight: (h.blkio_weight != 0).then_some(h.blkio_weight),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_docker_run_sends_becomes_run_flags() {
        // Shaped as `docker run -d --name web -p 8080:80 -p 127.0.0.1::53/udp -v data:/data
        // -v /scratch --restart on-failure:3 -m 64m --cpus 0.5 --network appnet
        // --network-alias www --entrypoint sh bb -c 'httpd -f'` sends it.
        let body = br#"{
            "Hostname": "", "User": "", "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "Env": ["A=1"], "Cmd": ["-c", "httpd -f"], "Image": "bb", "Entrypoint": ["sh"],
            "Volumes": {"/scratch": {}}, "WorkingDir": "", "Labels": {"tier": "web"},
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "HostConfig": {
                "Binds": ["data:/data"], "NetworkMode": "appnet",
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                 "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "AutoRemove": false, "Memory": 67108864, "NanoCpus": 500000000,
                "Mounts": [{"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 1048576}}],
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}
            },
            "NetworkingConfig": {"EndpointsConfig": {"appnet": {"Aliases": ["www"]}}}
        }"#;
        let o = to_options(parse(body).unwrap(), Some("web".into())).unwrap();
        assert_eq!(o.name.as_deref(), Some("web"));
        assert_eq!(
            (o.entrypoint.as_deref(), &o.cmd[..]),
            (
                Some(&["sh".to_string()][..]),
                &["-c".to_string(), "httpd -f".to_string()][..]
            )
        );
        let publish: Vec<String> = o.publish.iter().map(|p| p.to_string()).collect();
        assert_eq!(publish, vec!["127.0.0.1::53/udp", "8080:80/tcp"]);
        assert_eq!(o.volumes, vec!["data:/data", "/scratch"]);
        assert_eq!(
            o.mounts,
            vec![mount::parse_mount("type=tmpfs,target=/run,tmpfs-size=1048576").unwrap()]
        );
        assert_eq!(o.restart, RestartPolicy::OnFailure { max: 3 });
        assert_eq!((o.memory, o.cpus), (Some(64 << 20), Some(0.5)));
        assert_eq!(o.network.as_deref(), Some("appnet"));
        assert_eq!(o.network_aliases, vec!["www"]);
        assert_eq!(o.expose, vec!["53/udp", "80/tcp"]);
        assert_eq!(o.log_opts["max-size"], "1m");
        assert_eq!(o.labels["tier"], "web");
    }

    #[test]
    fn docker_py_nulls_read_as_absent() {
        // docker-py's Mount(target, None, type="tmpfs") and Ulimit(name=..., soft=N).
        let o = to_options(
            parse(br#"{"Image":"bb","Hostname":null,"HostConfig":{"Mounts":[{"Type":"tmpfs","Source":null,"Target":"/t","ReadOnly":false}],"Ulimits":[{"Name":"nofile","Soft":10,"Hard":null}],"RestartPolicy":{"Name":"","MaximumRetryCount":3}}}"#)
                .unwrap(),
            None,
        );
        // Hard null is 0, below Soft: refused by name, as dockerd refuses it.
        let e = o.unwrap_err();
        assert!(e.message.contains("Ulimits"), "{e}");
        let o = to_options(
            parse(br#"{"Image":"bb","HostConfig":{"Mounts":[{"Type":"tmpfs","Source":null,"Target":"/t"}],"Tmpfs":null}}"#).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(o.mounts.len(), 1);
        let o = to_options(
            parse(br#"{"Image":"bb","HostConfig":{"Tmpfs":{"/run":"size=1m"},"ShmSize":1048576,"PidMode":"host","IpcMode":"shareable","UTSMode":"host","Init":true}}"#).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(o.tmpfs["/run"], "size=1m");
        assert_eq!((o.shm_size, o.init), (Some(1 << 20), Some(true)));
        assert_eq!(
            (
                o.pid_mode.as_str(),
                o.ipc_mode.as_str(),
                o.uts_mode.as_str()
            ),
            ("host", "shareable", "host")
        );
    }

    #[test]
    fn volumes_that_binds_already_mount_are_not_anonymous() {
        let o = to_options(
            parse(br#"{"Image":"bb","Volumes":{"/data":{},"/cache":{}},"HostConfig":{"Binds":["pyvol:/data:rw"]}}"#)
                .unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(o.volumes, vec!["pyvol:/data:rw", "/cache"]);
    }

    #[test]
    fn empty_entrypoint_clears_and_nulls_are_absent() {
        let o = to_options(
            parse(
                br#"{"Image":"bb","Entrypoint":[],"Cmd":null,"HostConfig":{"PortBindings":null}}"#,
            )
            .unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(o.entrypoint.as_deref(), Some(&[][..]));
        assert!(o.cmd.is_empty() && o.publish.is_empty() && o.name.is_none());
        let o = to_options(
            parse(br#"{"Image":"bb","Cmd":"true"}"#).unwrap(),
            Some(String::new()),
        )
        .unwrap();
        assert_eq!(
            (o.cmd, o.entrypoint, o.name),
            (vec!["true".to_string()], None, None)
        );
    }

    #[test]
    fn what_berth_cannot_honour_is_refused_by_name() {
        let e = parse(b"{\"Image\": 3}").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("invalid container config"), "{e}");
        let e = to_options(parse(br#"{"Cmd":["true"]}"#).unwrap(), None).unwrap_err();
        assert!(e.message.contains("no Image"), "{e}");
        let o = to_options(
            parse(br#"{"Image":"bb","HostConfig":{"Privileged":true,"CapAdd":["NET_ADMIN"],"CapDrop":["MKNOD"],"SecurityOpt":["no-new-privileges"],"CgroupnsMode":"private"}}"#).unwrap(),
            None,
        )
        .unwrap();
        assert!(o.privileged);
        assert_eq!(
            (o.cap_add, o.cap_drop),
            (vec!["NET_ADMIN".to_string()], vec!["MKNOD".to_string()])
        );
        assert_eq!(o.security_opt, ["no-new-privileges"]);
        assert_eq!(o.cgroupns, "private");
        // Fields berth does not read are refused when they ask for something, never dropped.
        let e = to_options(
            parse(br#"{"Image":"bb","NetworkDisabled":true,"HostConfig":{"KernelMemory":1000,"Isolation":"default","CpuCount":0,"DeviceRequests":null}}"#).unwrap(),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("NetworkDisabled=true"), "{e}");
        assert!(e.message.contains("HostConfig.KernelMemory=1000"), "{e}");
        assert!(!e.message.contains("Isolation"), "{e}");
        assert!(!e.message.contains("CpuCount"), "{e}");
        // Every endpoint setting reaches the engine; `Config.MacAddress` (API 1.43 and older)
        // is the first network's MAC.
        let o = to_options(
            parse(br#"{"Image":"bb","MacAddress":"02:42:ac:11:00:09","HostConfig":{"NetworkMode":"app"},
                "NetworkingConfig":{"EndpointsConfig":{"app":{"Aliases":["a"],"Links":["db:d"],
                "DriverOpts":{"k":"v"},"IPAMConfig":{"IPv4Address":"10.9.0.5","IPv6Address":"fd00::5",
                "LinkLocalIPs":["169.254.9.9"]}}}}}"#).unwrap(),
            None,
        )
        .unwrap();
        let ep = o.primary_endpoint();
        assert_eq!(
            (ep.ip.as_deref(), ep.ip6.as_deref(), ep.mac.as_deref()),
            (Some("10.9.0.5"), Some("fd00::5"), Some("02:42:ac:11:00:09"))
        );
        assert_eq!(
            (ep.aliases, ep.links, ep.link_local_ips),
            (
                vec!["a".to_string()],
                vec!["db:d".to_string()],
                vec!["169.254.9.9".to_string()]
            )
        );
        assert_eq!(ep.driver_opts["k"], "v");
        let e = to_options(
            parse(br#"{"Image":"bb","NetworkingConfig":{"EndpointsConfig":{"app":{"IPAMConfig":{"Other":1}}}}}"#).unwrap(),
            None,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("NetworkingConfig.EndpointsConfig.app.IPAMConfig.Other=1"),
            "{e}"
        );
        let e = to_options(
            parse(br#"{"Image":"bb","NetworkingConfig":{"EndpointsConfig":{"a":{},"b":{}}}}"#)
                .unwrap(),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("network endpoints: a, b"), "{e}");
        let e = to_options(
            parse(br#"{"Image":"bb","MacAddress":"02:42:00:00:00:01","HostConfig":{"NetworkMode":"a"},"NetworkingConfig":{"EndpointsConfig":{"a":{"MacAddress":"02:42:00:00:00:02"}}}}"#).unwrap(),
            None,
        )
        .unwrap_err();
        assert!(
            e.message.contains("must match the endpoint-specific MAC"),
            "{e}"
        );
        // The log driver goes to the engine, which knows the drivers.
        let o = to_options(
            parse(
                br#"{"Image":"bb","HostConfig":{"LogConfig":{"Type":"local"},"OomScoreAdj":-5}}"#,
            )
            .unwrap(),
            None,
        )
        .unwrap();
        assert_eq!((o.log_driver.as_str(), o.oom_score_adj), ("local", -5));
        let o = to_options(
            parse(br#"{"Image":"bb","HostConfig":{"Devices":[{"PathOnHost":"/dev/null","PathInContainer":"/dev/n","CgroupPermissions":"rw"}],"DeviceCgroupRules":["c 1:9 r"],"GroupAdd":["audio","1234"]}}"#)
                .unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(o.devices[0].path_in_container, "/dev/n");
        assert_eq!(o.device_cgroup_rules, ["c 1:9 r"]);
        assert_eq!(o.group_add, ["audio", "1234"]);
        let e =
            to_options(parse(br#"{"Image":"bb","StopTimeout":-3}"#).unwrap(), None).unwrap_err();
        assert!(e.message.contains("StopTimeout -3"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn any_json_never_panics(s in ".{0,200}") {
            if let Ok(b) = parse(s.as_bytes()) {
                let _ = to_options(b, None);
            }
        }
    }
}
