//! How containers look to Docker clients: `GET /containers/json` rows and
//! `GET /containers/{id}/json`, built from the engine's record and netcore's endpoints. Pure.

use std::collections::BTreeMap;

use berth_common::humanize::human_duration;
use engine::container::health::HealthStatus;
use engine::container::{Connection, Container, EndpointView, NetworkMode, Status};
use serde_json::{Value, json};

fn secs_of(rfc3339: &str) -> Option<u64> {
    berth_common::time::parse(rfc3339).and_then(|(s, _)| u64::try_from(s).ok())
}

/// The `STATUS` column: `Up 5 seconds`, `Up 2 minutes (Paused)`, `Exited (0) 3 seconds ago`,
/// `Created`, `Restarting (1) 1 second ago`, `Removal In Progress`, `Dead`.
pub fn status_text(c: &Container, now: u64) -> String {
    let since = |t: &str| human_duration(now.saturating_sub(secs_of(t).unwrap_or(now)));
    let s = &c.state;
    let health = match &s.health {
        Some(h) if s.status == Status::Running && c.health_probe().is_some() => match h.status {
            HealthStatus::Starting => " (health: starting)",
            HealthStatus::Healthy => " (healthy)",
            HealthStatus::Unhealthy => " (unhealthy)",
        },
        _ => "",
    };
    match s.status {
        Status::Running => format!("Up {}{health}", since(&s.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(&s.started_at)),
        Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, since(&s.finished_at)),
        Status::Exited if s.finished_at.is_empty() => "Created".into(),
        Status::Exited => format!("Exited ({}) {} ago", s.exit_code, since(&s.finished_at)),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

fn port_proto(p: &str) -> (u16, String) {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    (port.parse().unwrap_or(0), proto.to_string())
}

/// The `Ports` list of a `ps` row: published mappings, then exposed ports that are not.
pub fn ports(c: &Container, nets: &[EndpointView]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut published = Vec::new();
    for n in nets.iter().filter_map(|n| n.ep.as_ref()) {
        for m in &n.published {
            published.push((m.container.port(), m.proto.to_string()));
            out.push(json!({
                "IP": m.host.ip().to_string(),
                "PrivatePort": m.container.port(),
                "PublicPort": m.host.port(),
                "Type": m.proto.to_string(),
            }));
        }
    }
    for e in &c.exposed_ports {
        let (port, proto) = port_proto(e);
        if !published.contains(&(port, proto.clone())) {
            out.push(json!({"PrivatePort": port, "Type": proto}));
        }
    }
    out
}

fn networks_json(c: &Container, nets: &[EndpointView]) -> Value {
    let short_id = c.id.get(..12).unwrap_or(&c.id);
    let mut m = serde_json::Map::new();
    for n in nets {
        let ep = n.ep.as_ref();
        let (ip, prefix) = ep
            .and_then(|e| e.ipv4)
            .map(|a| (a.addr().to_string(), a.prefix_len()))
            .unwrap_or_default();
        let (ip6, prefix6) = ep
            .and_then(|e| e.ipv6)
            .map(|a| (a.addr().to_string(), a.prefix_len()))
            .unwrap_or_default();
        // A running container's endpoint on a user-defined network answers to its short ID
        // too, and Docker lists it among the aliases (compose looks for it there).
        let set = &n.settings;
        let mut aliases = set.aliases.clone();
        if ep.is_some_and(|e| e.aliases.iter().any(|a| a == short_id))
            && !aliases.iter().any(|a| a == short_id)
        {
            aliases.push(short_id.to_string());
        }
        let live = ep.is_some();
        m.insert(
            n.network.clone(),
            json!({
                "IPAMConfig": ipam_config_json(set),
                "Links": (!set.links.is_empty()).then_some(&set.links),
                "Aliases": (!aliases.is_empty()).then_some(aliases),
                "NetworkID": n.network_id,
                "EndpointID": ep.map(|e| e.id.clone()).unwrap_or_default(),
                "Gateway": n.gateway.filter(|g| live && g.is_ipv4()).map(|g| g.to_string()).unwrap_or_default(),
                "IPAddress": ip,
                "IPPrefixLen": prefix,
                "IPv6Gateway": "",
                "GlobalIPv6Address": ip6,
                "GlobalIPv6PrefixLen": prefix6,
                "MacAddress": ep.and_then(|e| e.mac).map(|m| m.to_string()).unwrap_or_default(),
                "DriverOpts": (!set.driver_opts.is_empty()).then_some(&set.driver_opts),
            }),
        );
    }
    Value::Object(m)
}

/// `IPAMConfig` of an endpoint: what was asked for, as Docker shows it (null when nothing).
fn ipam_config_json(set: &Connection) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(ip) = &set.ip {
        m.insert("IPv4Address".into(), json!(ip));
    }
    if let Some(ip) = &set.ip6 {
        m.insert("IPv6Address".into(), json!(ip));
    }
    if !set.link_local_ips.is_empty() {
        m.insert("LinkLocalIPs".into(), json!(set.link_local_ips));
    }
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

fn mounts_json(c: &Container) -> Vec<Value> {
    c.mounts
        .iter()
        .map(|m| {
            json!({
                "Type": m.kind,
                "Name": m.name,
                "Source": m.source,
                "Destination": m.destination,
                "Driver": if m.kind == "volume" { "local" } else { "" },
                "Mode": if m.rw { "" } else { "ro" },
                "RW": m.rw,
                "Propagation": m.propagation,
            })
        })
        .collect()
}

/// `HostConfig.NetworkMode` as sent (`default` when not given: `bridge` stays `bridge`).
fn network_mode(c: &Container) -> String {
    match &c.network_mode {
        NetworkMode::Network(_) => c
            .options
            .network
            .clone()
            .unwrap_or_else(|| "default".into()),
        other => other.text(),
    }
}

/// An empty list as Docker shows an absent one: `null`.
fn or_null(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// `HostConfig.PortBindings` from the `-p` specs: per `80/tcp`, `{HostIp, HostPort}` as given
/// (empty: any).
fn port_bindings(c: &Container) -> Value {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for spec in &c.options.publish {
        for (i, port) in spec.container_ports.iter().enumerate() {
            let host_port = spec
                .host_ports
                .map(|h| {
                    if spec.container_ports.len() == 1 && h.len() > 1 {
                        h.to_string()
                    } else {
                        (u32::from(h.start) + i as u32).to_string()
                    }
                })
                .unwrap_or_default();
            out.entry(format!("{port}/{}", spec.proto))
                .or_default()
                .push(json!({
                    "HostIp": spec.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    "HostPort": host_port,
                }));
        }
    }
    json!(out)
}

/// `Config.Volumes`: the anonymous volumes' targets (`null` when none).
fn anonymous_volumes(c: &Container) -> Value {
    let targets: BTreeMap<&str, Value> = c
        .mounts
        .iter()
        .filter(|m| m.anonymous)
        .map(|m| (m.destination.as_str(), json!({})))
        .collect();
    if targets.is_empty() {
        Value::Null
    } else {
        json!(targets)
    }
}

/// A `GET /containers/json` row.
pub fn summary(c: &Container, nets: &[EndpointView], now: u64) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.options.image,
        "ImageID": c.image_id,
        "Command": c.args.join(" "),
        "Created": secs_of(&c.created).unwrap_or(0),
        "Ports": ports(c, nets),
        "Labels": c.options.labels,
        "State": c.state.status.as_str(),
        "Status": status_text(c, now),
        "HostConfig": {"NetworkMode": network_mode(c)},
        "NetworkSettings": {"Networks": networks_json(c, nets)},
        "Mounts": mounts_json(c),
    })
}

/// `GET /containers/{id}/json`.
pub fn inspect(c: &Container, nets: &[EndpointView], links: &[String], log_path: &str) -> Value {
    let s = &c.state;
    let mut port_map: BTreeMap<String, Value> = BTreeMap::new();
    for e in &c.exposed_ports {
        port_map.insert(e.clone(), Value::Null);
    }
    for n in nets.iter().filter_map(|n| n.ep.as_ref()) {
        for m in &n.published {
            let key = format!("{}/{}", m.container.port(), m.proto);
            let entry = port_map.entry(key).or_insert(Value::Null);
            if entry.is_null() {
                *entry = json!([]);
            }
            if let Some(a) = entry.as_array_mut() {
                a.push(json!({"HostIp": m.host.ip().to_string(), "HostPort": m.host.port().to_string()}));
            }
        }
    }
    let live: Vec<&netcore::network::Endpoint> =
        nets.iter().filter_map(|n| n.ep.as_ref()).collect();
    let primary = live.iter().find(|e| e.gateway).or(live.first()).copied();
    // The top-level address fields are the default bridge's (empty on user networks), as
    // Docker fills them.
    let legacy = live.iter().find(|e| e.network == "bridge").copied();
    let gateway_of = |e: &netcore::network::Endpoint| {
        nets.iter()
            .find(|n| n.network == e.network)
            .and_then(|n| n.gateway)
    };
    let (entrypoint, cmd, working_dir) = match &c.options.config_command {
        Some(cc) => (json!(cc.entrypoint), json!(cc.cmd), cc.working_dir.as_str()),
        // Records from before berth kept them: the process's arguments and directory.
        None => (Value::Null, json!(c.args), c.workdir.as_str()),
    };
    let exposed: BTreeMap<&String, Value> =
        c.exposed_ports.iter().map(|p| (p, json!({}))).collect();
    let mut v = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.args.first().cloned().unwrap_or_default(),
        "Args": c.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": s.status.as_str(),
            "Running": s.status.is_live(),
            "Paused": s.status == Status::Paused,
            "Restarting": s.status == Status::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": if s.started_at.is_empty() { "0001-01-01T00:00:00Z" } else { &s.started_at },
            "FinishedAt": if s.finished_at.is_empty() { "0001-01-01T00:00:00Z" } else { &s.finished_at },
        },
        "Image": c.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": if c.options.keeps_log() { log_path } else { "" },
        "Name": format!("/{}", c.name),
        "RestartCount": s.restart_count,
        "Driver": "overlay2",
        "GraphDriver": {"Name": "overlay2", "Data": null},
        "ExecIDs": null,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": {
            "Binds": or_null(&c.options.volumes),
            "NetworkMode": network_mode(c),
            "PortBindings": port_bindings(c),
            "RestartPolicy": {"Name": c.restart_policy.name(), "MaximumRetryCount": match c.restart_policy {
                engine::container::RestartPolicy::OnFailure { max } => max,
                _ => 0,
            }},
            "AutoRemove": c.options.auto_remove,
            "VolumesFrom": or_null(&c.options.volumes_from),
            "Dns": c.options.dns,
            "DnsOptions": c.options.dns_option,
            "DnsSearch": c.options.dns_search,
            "ExtraHosts": or_null(&c.options.add_hosts),
            "Links": or_null(links),
            "PublishAllPorts": c.options.publish_all,
            "ReadonlyRootfs": c.options.read_only,
            "Memory": c.options.memory.unwrap_or(0),
            "NanoCpus": c.options.cpus.map_or(0, |x| (x * 1e9) as i64),
            "PidsLimit": c.options.pids_limit,
            "LogConfig": {"Type": if c.options.log_driver.is_empty() { "json-file" } else { &c.options.log_driver }, "Config": c.options.log_opts},
            "Ulimits": c.options.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>(),
            "OomScoreAdj": c.options.oom_score_adj,
            "ConsoleSize": c.options.console_size.unwrap_or([0, 0]),
            "ContainerIDFile": c.options.container_id_file,
            "MaskedPaths": c.options.masked_paths.clone().unwrap_or_else(|| if c.options.privileged { Vec::new() } else { engine::runtime::spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect() }),
            "ReadonlyPaths": c.options.readonly_paths.clone().unwrap_or_else(|| if c.options.privileged { Vec::new() } else { engine::runtime::spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect() }),
        },
        "Mounts": mounts_json(c),
        "Config": {
            "Hostname": c.hostname,
            "User": c.user,
            "Tty": c.options.tty,
            "OpenStdin": c.options.open_stdin,
            "StdinOnce": c.options.stdin_once,
            "Domainname": c.options.domainname.clone().unwrap_or_default(),
            "AttachStdin": false,
            "AttachStdout": c.options.attach_stdout,
            "AttachStderr": c.options.attach_stderr,
            "Env": c.options.config_env.as_ref().unwrap_or(&c.env),
            "Cmd": cmd,
            "Entrypoint": entrypoint,
            "Image": c.options.image,
            "WorkingDir": working_dir,
            "Labels": c.options.labels,
            "ExposedPorts": exposed,
            "OnBuild": null,
            "Volumes": anonymous_volumes(c),
        },
        "NetworkSettings": {
            "Ports": port_map,
            "IPAddress": legacy.and_then(|e| e.ipv4).map(|a| a.addr().to_string()).unwrap_or_default(),
            "Gateway": legacy.and_then(gateway_of).map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": legacy.and_then(|e| e.mac).map(|m| m.to_string()).unwrap_or_default(),
            "Networks": networks_json(c, nets),
            "Bridge": "",
            "SandboxID": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": legacy.map(|e| e.id.clone()).unwrap_or_default(),
            "IPPrefixLen": legacy.and_then(|e| e.ipv4).map_or(0, |a| a.prefix_len()),
            "IPv6Gateway": "",
            "GlobalIPv6Address": legacy.and_then(|e| e.ipv6).map(|a| a.addr().to_string()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": legacy.and_then(|e| e.ipv6).map_or(0, |a| a.prefix_len()),
            "SandboxKey": primary.and_then(|e| e.ns.as_ref()).map(|p| p.display().to_string()).unwrap_or_default(),
        },
    });
    let isolation = [
        ("Privileged", json!(c.options.privileged)),
        (
            "CapAdd",
            json!((!c.options.cap_add.is_empty()).then_some(&c.options.cap_add)),
        ),
        (
            "CapDrop",
            json!((!c.options.cap_drop.is_empty()).then_some(&c.options.cap_drop)),
        ),
        (
            "SecurityOpt",
            json!((!c.options.security_opt.is_empty()).then_some(&c.options.security_opt)),
        ),
        ("CgroupnsMode", json!(c.options.cgroupns)),
        ("PidMode", json!(c.options.pid_mode)),
        ("IpcMode", json!(c.options.ipc_mode)),
        ("UTSMode", json!(c.options.uts_mode)),
        ("UsernsMode", json!(c.options.userns_mode)),
        ("ShmSize", json!(c.options.shm_size.unwrap_or(0))),
        ("Devices", json!(c.options.devices)),
        ("MemorySwap", json!(c.options.memory_swap.unwrap_or(0))),
        (
            "MemoryReservation",
            json!(c.options.memory_reservation.unwrap_or(0)),
        ),
        ("MemorySwappiness", json!(c.options.memory_swappiness)),
        ("OomKillDisable", json!(c.options.oom_kill_disable)),
        ("CpuShares", json!(c.options.cpu_shares.unwrap_or(0))),
        ("CpuPeriod", json!(c.options.cpu_period.unwrap_or(0))),
        ("CpuQuota", json!(c.options.cpu_quota.unwrap_or(0))),
        ("CpusetCpus", json!(c.options.cpuset_cpus)),
        ("CpusetMems", json!(c.options.cpuset_mems)),
        ("BlkioWeight", json!(c.options.blkio_weight.unwrap_or(0))),
        (
            "DeviceCgroupRules",
            json!(
                (!c.options.device_cgroup_rules.is_empty())
                    .then_some(&c.options.device_cgroup_rules)
            ),
        ),
        (
            "GroupAdd",
            json!((!c.options.group_add.is_empty()).then_some(&c.options.group_add)),
        ),
    ];
    for (k, x) in isolation {
        v["HostConfig"][k] = x;
    }
    // What berth refuses when set (so it is always its zero value here), in Docker's shape.
    for (k, x) in [
        ("BlkioWeightDevice", json!([])),
        ("BlkioDeviceReadBps", json!([])),
        ("BlkioDeviceWriteBps", json!([])),
        ("BlkioDeviceReadIOps", json!([])),
        ("BlkioDeviceWriteIOps", json!([])),
        ("Cgroup", json!("")),
        ("CgroupParent", json!("")),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("DeviceRequests", Value::Null),
        ("IOMaximumBandwidth", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("Isolation", json!("")),
        ("KernelMemory", json!(0)),
        ("KernelMemoryTCP", json!(0)),
        ("Runtime", json!(c.options.runtime)),
        ("VolumeDriver", json!("")),
    ] {
        v["HostConfig"][k] = x;
    }
    if let Some(h) = &s.health {
        v["State"]["Health"] = json!({
            "Status": h.status.as_str(),
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|r| json!({
                "Start": r.start,
                "End": r.end,
                "ExitCode": r.exit_code,
                "Output": r.output,
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(s) = &c.options.stop_signal {
        v["Config"]["StopSignal"] = json!(s);
    }
    if !c.options.shell.is_empty() {
        v["Config"]["Shell"] = json!(c.options.shell);
    }
    if let Some(hc) = &c.options.healthcheck {
        v["Config"]["Healthcheck"] = json!(hc);
    }
    // Docker leaves these out when unset.
    if let Some(m) = &c.options.mac_address {
        v["Config"]["MacAddress"] = json!(m);
    }
    if let Some(t) = c.options.stop_timeout {
        v["Config"]["StopTimeout"] = json!(t);
    }
    if !exposed.is_empty() {
        v["Config"]["ExposedPorts"] = json!(exposed);
    }
    if !c.options.tmpfs.is_empty() {
        v["HostConfig"]["Tmpfs"] = json!(c.options.tmpfs);
    }
    if !c.options.sysctls.is_empty() {
        v["HostConfig"]["Sysctls"] = json!(c.options.sysctls);
    }
    if let Some(i) = c.options.init {
        v["HostConfig"]["Init"] = json!(i);
    }
    v
}

/// The networks a container's record names (for `ps --filter network=`).
pub fn network_names(c: &Container) -> Vec<String> {
    c.configured_networks()
        .into_iter()
        .map(|(n, ..)| n)
        .collect()
}
