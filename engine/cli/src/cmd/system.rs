//! `system df|info|prune`, `info`, `version`.

use berth_cli::client::{API_VERSION, Client};
use berth_cli::output::Format;
use berth_common::humanize::human_size;
use clap::Subcommand;
use hyper::Method;
use serde_json::{Value, json};

use super::network::{confirm, print_pruned};

/// The architecture as Go (and so Docker) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// System commands.
#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Manage berth
    #[command(subcommand)]
    System(System),
    /// Display system-wide information
    Info {
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Get real time events from the server
    Events {
        /// Show all events created since timestamp
        #[arg(long)]
        since: Option<String>,
        /// Stream events until this timestamp
        #[arg(long)]
        until: Option<String>,
        /// Filter output based on conditions provided
        #[arg(short, long = "filter")]
        filter: Vec<String>,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
    },
    /// Show the berth version information
    Version {
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
    },
}

/// `system ...`.
#[derive(Subcommand, Debug)]
pub enum System {
    /// Show berth disk usage
    Df {
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display system-wide information
    Info {
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove unused data
    Prune {
        /// Remove all unused images not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Prune anonymous volumes
        #[arg(long)]
        volumes: bool,
    },
}

/// `system df`'s rows from `/system/df`.
fn df_rows(v: &Value) -> Vec<Value> {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let images = list("Images");
    let containers = list("Containers");
    let volumes = list("Volumes");
    let cache = list("BuildCache");
    let size = |i: &Value, k: &str| i[k].as_u64().unwrap_or(0);
    let img_total: u64 = v["LayersSize"]
        .as_u64()
        .unwrap_or_else(|| images.iter().map(|i| size(i, "Size")).sum());
    let img_active: Vec<&Value> = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .collect();
    let img_active_size: u64 = img_active.iter().map(|i| size(i, "Size")).sum();
    let ctr_active = containers
        .iter()
        .filter(|c| c["State"] == "running")
        .count();
    let ctr_size: u64 = containers.iter().map(|c| size(c, "SizeRw")).sum();
    let vol_size = |x: &Value| x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as u64;
    let vol_active = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let vol_total: u64 = volumes.iter().map(vol_size).sum();
    let vol_reclaim: u64 = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .map(vol_size)
        .sum();
    let pct = |part: u64, total: u64| match (part * 100).checked_div(total) {
        None => human_size(part),
        Some(p) => format!("{} ({p}%)", human_size(part)),
    };
    vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": img_active.len().to_string(),
               "Size": human_size(img_total), "Reclaimable": pct(img_total.saturating_sub(img_active_size), img_total)}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": ctr_active.to_string(),
               "Size": human_size(ctr_size), "Reclaimable": pct(0, ctr_size)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": vol_active.to_string(),
               "Size": human_size(vol_total), "Reclaimable": pct(vol_reclaim, vol_total)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(), "Active": "0",
               "Size": "0B", "Reclaimable": "0B"}),
    ]
}

async fn info(c: &Client, format: Option<String>) -> anyhow::Result<i32> {
    let i: Value = c.get("/info").await?;
    if let Some(f) = format {
        berth_cli::output::inspect(&mut std::io::stdout().lock(), &[i], Some(&f))?;
        return Ok(0);
    }
    let s = |k: &str| match &i[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    println!(
        "Client:\n Version:    {}\n Context:    default\n",
        env!("CARGO_PKG_VERSION")
    );
    println!("Server:");
    for (label, key) in [
        ("Containers", "Containers"),
        (" Running", "ContainersRunning"),
        (" Paused", "ContainersPaused"),
        (" Stopped", "ContainersStopped"),
        ("Images", "Images"),
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
        ("Default Runtime", "DefaultRuntime"),
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
        ("Total Memory", "MemTotal"),
        ("Name", "Name"),
        ("ID", "ID"),
        ("Docker Root Dir", "DockerRootDir"),
    ] {
        if i.get(key).is_some() {
            let v = if key == "MemTotal" {
                human_size(i[key].as_u64().unwrap_or(0))
            } else {
                s(key)
            };
            println!(" {label}: {v}");
        }
    }
    Ok(0)
}

/// The system commands.
pub async fn system(c: &Client, cmd: SystemCmd) -> anyhow::Result<i32> {
    match cmd {
        SystemCmd::Info { format } | SystemCmd::System(System::Info { format }) => {
            info(c, format).await
        }
        SystemCmd::Events {
            since,
            until,
            filter,
            format,
        } => {
            let mut q = Vec::new();
            for (k, v) in [("since", since), ("until", until)] {
                if let Some(v) = v {
                    let t = berth_common::time::docker_timestamp_from_now(&v).map_err(|e| {
                        crate::Exit {
                            code: 125,
                            message: format!("berth: {e}"),
                        }
                    })?;
                    q.push((k, t));
                }
            }
            q.extend(super::filters(&filter)?.map(|f| ("filters", f)));
            let template = match format.as_deref() {
                None | Some("") => None,
                Some(f) => Some(Format::parse(Some(f), "")?),
            };
            let mut s = c
                .stream(
                    Method::GET,
                    &format!("/events{}", berth_cli::client::query(q)),
                    berth_cli::client::empty(),
                    &[],
                )
                .await?;
            let mut failed = None;
            let r = s
                .lines(|l| {
                    let Ok(v) = serde_json::from_slice::<Value>(l) else {
                        return Ok(());
                    };
                    let mut out = Vec::new();
                    match &template {
                        None => {
                            out = format!("{}\n", berth_cli::events::event_line(&v)).into_bytes()
                        }
                        Some(t) => {
                            if let Err(e) = t.write(&mut out, std::slice::from_ref(&v), &[]) {
                                // Stop at the first: without --until the stream never ends.
                                let message = e.to_string();
                                failed = Some(e);
                                return Err(berth_cli::client::ClientError::Decode {
                                    path: "/events".into(),
                                    message,
                                });
                            }
                        }
                    }
                    let mut so = std::io::stdout().lock();
                    let _ = std::io::Write::write_all(&mut so, &out);
                    let _ = std::io::Write::flush(&mut so);
                    Ok(())
                })
                .await;
            if let Some(e) = failed {
                return Err(e);
            }
            r?;
            Ok(0)
        }
        SystemCmd::Version { format } => {
            let mut server: Value = c.get("/version").await?;
            // Templates name the Go fields (`{{.Server.APIVersion}}`), as with the docker CLI.
            server["APIVersion"] = server["ApiVersion"].clone();
            let v = json!({
                "Client": {"Version": env!("CARGO_PKG_VERSION"), "APIVersion": API_VERSION,
                           "Os": std::env::consts::OS, "Arch": go_arch()},
                "Server": server,
            });
            if let Some(f) = format {
                berth_cli::output::inspect(&mut std::io::stdout().lock(), &[v], Some(&f))?;
                return Ok(0);
            }
            let sv = &v["Server"];
            println!(
                "Client:\n Version:           {}\n API version:       {API_VERSION}\n OS/Arch:           {}/{}\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                go_arch()
            );
            println!(
                "Server: berthd\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}",
                sv["Version"].as_str().unwrap_or(""),
                sv["ApiVersion"].as_str().unwrap_or(""),
                sv["MinAPIVersion"].as_str().unwrap_or(""),
                sv["Os"].as_str().unwrap_or(""),
                sv["Arch"].as_str().unwrap_or("")
            );
            Ok(0)
        }
        SystemCmd::System(System::Df { format }) => {
            let v: Value = c.get("/system/df").await?;
            let f = Format::parse(
                format.as_deref(),
                "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            )?;
            f.write(
                &mut std::io::stdout().lock(),
                &df_rows(&v),
                &[
                    ("Type", "TYPE"),
                    ("TotalCount", "TOTAL"),
                    ("Active", "ACTIVE"),
                    ("Size", "SIZE"),
                    ("Reclaimable", "RECLAIMABLE"),
                ],
            )?;
            Ok(0)
        }
        SystemCmd::System(System::Prune {
            all,
            force,
            volumes,
        }) => {
            let mut what = vec![
                "all stopped containers",
                "all networks not used by at least one container",
            ];
            if volumes {
                what.push("all anonymous volumes not used by at least one container");
            }
            what.push(if all {
                "all images without at least one container associated to them"
            } else {
                "all dangling images"
            });
            if !force && !confirm(&what.join(",\n  - ")) {
                return Ok(0);
            }
            let ct: Value = c.json(Method::POST, "/containers/prune", None).await?;
            print_pruned(&ct, "ContainersDeleted", "Deleted Containers");
            let nt: Value = c.json(Method::POST, "/networks/prune", None).await?;
            print_pruned(&nt, "NetworksDeleted", "Deleted Networks");
            let mut reclaimed = ct["SpaceReclaimed"].as_u64().unwrap_or(0);
            if volumes {
                let vt: Value = c.json(Method::POST, "/volumes/prune", None).await?;
                print_pruned(&vt, "VolumesDeleted", "Deleted Volumes");
                reclaimed += vt["SpaceReclaimed"].as_u64().unwrap_or(0);
            }
            let q = if all {
                r#"?filters=%7B%22dangling%22%3A%7B%22false%22%3Atrue%7D%7D"#
            } else {
                ""
            };
            let it: Value = c
                .json(Method::POST, &format!("/images/prune{q}"), None)
                .await?;
            print_pruned(&it, "ImagesDeleted", "Deleted Images");
            reclaimed += it["SpaceReclaimed"].as_u64().unwrap_or(0);
            println!("Total reclaimed space: {}", human_size(reclaimed));
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_counts_and_reclaimable() {
        let v = json!({
            "LayersSize": 2000,
            "Images": [{"Size": 1500, "Containers": 1}, {"Size": 500, "Containers": 0}],
            "Containers": [{"State": "running", "SizeRw": 0}, {"State": "exited"}],
            "Volumes": [{"UsageData": {"Size": 100, "RefCount": 1}}, {"UsageData": {"Size": 300, "RefCount": 0}}],
        });
        let r = df_rows(&v);
        assert_eq!(r[0]["TotalCount"], "2");
        assert_eq!(r[0]["Active"], "1");
        assert_eq!(r[0]["Reclaimable"], "500B (25%)");
        assert_eq!(r[1]["Active"], "1");
        assert_eq!(r[2]["Reclaimable"], "300B (75%)");
    }
}
