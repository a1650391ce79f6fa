//! `network` and `volume` subcommands.

use berth_cli::client::{Client, enc, query};
use berth_cli::output::{self, Format};
use berth_cli::rows;
use clap::Subcommand;
use hyper::Method;
use serde_json::{Map, Value, json};

use super::{filters, for_each};
use crate::Exit;

/// `network ...`.
#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network
    Create {
        /// Driver to manage the Network
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Vec<String>,
        /// IPv4 or IPv6 Gateway for the master subnet
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container ip from a sub-range
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Enable or disable IPv6 networking
        #[arg(long)]
        ipv6: bool,
        /// Enable manual container attachment
        #[arg(long)]
        attachable: bool,
        /// Set driver specific options
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// Set metadata on a network
        #[arg(long)]
        label: Vec<String>,
        /// The network's name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. "driver=bridge")
        #[arg(short, long = "filter")]
        filter: Vec<String>,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
        /// Do not truncate the output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
        /// Networks
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// Do not error if the network does not exist
        #[arg(short, long)]
        force: bool,
        /// Networks
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        /// Add network-scoped alias for the container
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address (e.g., "172.30.100.104")
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address (e.g., "2001:db8::33")
        #[arg(long)]
        ip6: Option<String>,
        /// Add link to another container
        #[arg(long)]
        link: Vec<String>,
        /// Add a link-local address for the container
        #[arg(long = "link-local-ip")]
        link_local_ip: Vec<String>,
        /// driver options for the network
        #[arg(long = "driver-opt")]
        driver_opt: Vec<String>,
        /// The network
        network: String,
        /// The container
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short, long)]
        force: bool,
        /// The network
        network: String,
        /// The container
        container: String,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// `volume ...`.
#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create {
        /// Specify volume driver name
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Set driver specific options
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// Set metadata for a volume
        #[arg(long)]
        label: Vec<String>,
        /// The volume's name (generated when absent)
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. "dangling=true")
        #[arg(short, long = "filter")]
        filter: Vec<String>,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
        /// Volumes
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
        /// Volumes
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused local volumes
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short, long)]
        all: bool,
    },
}

/// `KEY=VALUE` flags as a JSON object; the error names the bad one.
fn pairs(flag: &str, list: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for p in list {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.is_empty() {
            return Err(Exit {
                code: 125,
                message: format!("invalid argument {p:?} for \"{flag}\" flag: valid: KEY=VALUE"),
            }
            .into());
        }
        m.insert(k.into(), v.into());
    }
    Ok(m)
}

/// Asks for confirmation on a terminal (prune without `-f`).
pub fn confirm(what: &str) -> bool {
    use std::io::BufRead;
    eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

/// Prints a prune answer's deleted items and reclaimed space.
pub fn print_pruned(v: &Value, key: &str, title: &str) {
    let list = v[key].as_array().map(|a| a.as_slice()).unwrap_or_default();
    if !list.is_empty() {
        println!("{title}:");
        for i in list {
            match i {
                Value::String(s) => println!("{s}"),
                o => {
                    for (k, v) in [("untagged", &o["Untagged"]), ("deleted", &o["Deleted"])] {
                        if let Some(s) = v.as_str() {
                            println!("{k}: {s}");
                        }
                    }
                }
            }
        }
        println!();
    }
}

/// `inspect` of networks or volumes (`base`: `/networks`, `/volumes`): the ones found are
/// printed, the others named on stderr, and the command fails if any was missing.
async fn inspect_each(
    c: &Client,
    base: &str,
    names: &[String],
    format: Option<&str>,
) -> anyhow::Result<i32> {
    let mut items = Vec::new();
    let mut failed = false;
    for n in names {
        match c.get::<Value>(&format!("{base}/{}", enc(n))).await {
            Ok(v) => items.push(v),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    output::inspect(&mut std::io::stdout().lock(), &items, format)?;
    Ok(i32::from(failed))
}

/// `network ...`.
pub async fn network(c: &Client, cmd: NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            ipv6,
            attachable,
            opt,
            label,
            name,
        } => {
            let config: Vec<Value> = subnet
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut c = json!({"Subnet": s});
                    if let Some(g) = gateway.get(i) {
                        c["Gateway"] = g.clone().into();
                    }
                    if let Some(r) = ip_range.get(i) {
                        c["IPRange"] = r.clone().into();
                    }
                    c
                })
                .collect();
            if subnet.is_empty() && !(gateway.is_empty() && ip_range.is_empty()) {
                return Err(Exit {
                    code: 125,
                    message: "Error: every ip-range or gateway must have a corresponding subnet"
                        .into(),
                }
                .into());
            }
            let body = json!({
                "Name": name,
                "Driver": driver,
                "Internal": internal,
                "EnableIPv6": ipv6,
                "Attachable": attachable,
                "IPAM": {"Driver": "default", "Config": config},
                "Options": pairs("--opt", &opt)?,
                "Labels": pairs("--label", &label)?,
            });
            let v: Value = c
                .json(Method::POST, "/networks/create", Some(&body))
                .await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        NetworkCmd::Ls {
            quiet,
            filter,
            format,
            no_trunc,
        } => {
            let q = query(filters(&filter)?.map(|f| ("filters", f)));
            let list: Vec<Value> = c.get(&format!("/networks{q}")).await?;
            let mut rows: Vec<Value> = list
                .iter()
                .map(|n| rows::network_row(n, no_trunc))
                .collect();
            rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            super::print_rows(
                &rows,
                quiet,
                format.as_deref(),
                rows::NETWORKS_TABLE,
                rows::NETWORKS_HEADERS,
            )
        }
        NetworkCmd::Inspect { format, networks } => {
            inspect_each(c, "/networks", &networks, format.as_deref()).await
        }
        NetworkCmd::Rm { force, networks } => {
            for_each(&networks, |n| async move {
                match c
                    .call(Method::DELETE, &format!("/networks/{}", enc(&n)), None)
                    .await
                {
                    Err(e) if force && e.status() == 404 => Ok(None),
                    Err(e) => Err(e),
                    Ok(_) => Ok(Some(n)),
                }
            })
            .await
        }
        NetworkCmd::Connect {
            alias,
            ip,
            ip6,
            link,
            link_local_ip,
            driver_opt,
            network,
            container,
        } => {
            let mut driver_opts = serde_json::Map::new();
            for o in &driver_opt {
                // The docker CLI's rule: KEY=VALUE, or a bare KEY for an empty value.
                let (k, v) = o.split_once('=').unwrap_or((o, ""));
                driver_opts.insert(k.to_string(), json!(v));
            }
            let ep = json!({
                "Aliases": alias,
                "Links": link,
                "DriverOpts": driver_opts,
                "IPAMConfig": {
                    "IPv4Address": ip.unwrap_or_default(),
                    "IPv6Address": ip6.unwrap_or_default(),
                    "LinkLocalIPs": link_local_ip,
                },
            });
            let body = json!({"Container": container, "EndpointConfig": ep});
            c.call(
                Method::POST,
                &format!("/networks/{}/connect", enc(&network)),
                Some(&body),
            )
            .await?;
            Ok(0)
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            let body = json!({"Container": container, "Force": force});
            c.call(
                Method::POST,
                &format!("/networks/{}/disconnect", enc(&network)),
                Some(&body),
            )
            .await?;
            Ok(0)
        }
        NetworkCmd::Prune { force } => {
            if !force && !confirm("all custom networks not used by at least one container") {
                return Ok(0);
            }
            let v: Value = c.json(Method::POST, "/networks/prune", None).await?;
            print_pruned(&v, "NetworksDeleted", "Deleted Networks");
            Ok(0)
        }
    }
}

/// `volume ...`.
pub async fn volume(c: &Client, cmd: VolumeCmd) -> anyhow::Result<i32> {
    match cmd {
        VolumeCmd::Create {
            driver,
            opt,
            label,
            name,
        } => {
            let body = json!({
                "Name": name.unwrap_or_default(),
                "Driver": driver,
                "DriverOpts": pairs("--opt", &opt)?,
                "Labels": pairs("--label", &label)?,
            });
            let v: Value = c.json(Method::POST, "/volumes/create", Some(&body)).await?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(0)
        }
        VolumeCmd::Ls {
            quiet,
            filter,
            format,
        } => {
            let q = query(filters(&filter)?.map(|f| ("filters", f)));
            let v: Value = c.get(&format!("/volumes{q}")).await?;
            let mut rows: Vec<Value> = v["Volumes"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(rows::volume_row)
                .collect();
            rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            let f = if quiet {
                Format::parse(Some("{{.Name}}"), "")?
            } else {
                Format::parse(format.as_deref(), rows::VOLUMES_TABLE)?
            };
            f.write(&mut std::io::stdout().lock(), &rows, rows::VOLUMES_HEADERS)?;
            Ok(0)
        }
        VolumeCmd::Inspect { format, volumes } => {
            inspect_each(c, "/volumes", &volumes, format.as_deref()).await
        }
        VolumeCmd::Rm { force, volumes } => {
            for_each(&volumes, |n| async move {
                c.call(
                    Method::DELETE,
                    &format!("/volumes/{}?force={force}", enc(&n)),
                    None,
                )
                .await?;
                Ok(Some(n))
            })
            .await
        }
        VolumeCmd::Prune { force, all } => {
            if !force && !confirm("all local volumes not used by at least one container") {
                return Ok(0);
            }
            let q = if all {
                query([("filters", r#"{"all":{"true":true}}"#.to_string())])
            } else {
                String::new()
            };
            let v: Value = c
                .json(Method::POST, &format!("/volumes/prune{q}"), None)
                .await?;
            print_pruned(&v, "VolumesDeleted", "Deleted Volumes");
            println!(
                "Total reclaimed space: {}",
                berth_common::humanize::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
            );
            Ok(0)
        }
    }
}
