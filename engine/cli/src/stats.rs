//! `stats` rows from berthd's stats JSON, with the docker CLI's figures: CPU % from the usage
//! delta over the system delta times the CPUs, memory without the inactive page cache, I/O in
//! Docker's units. Pure.

use berth_common::humanize::{bytes_size, human_size3};
use serde_json::{Value, json};

/// `stats`' default table.
pub const STATS_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
/// `stats`' headers.
pub const STATS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// One `stats` row from a stats object; `container` is what the user named it by.
pub fn stats_row(s: &Value, container: &str) -> Value {
    let cpu = &s["cpu_stats"];
    let pre = &s["precpu_stats"];
    let cpu_delta =
        u(&cpu["cpu_usage"]["total_usage"]) as f64 - u(&pre["cpu_usage"]["total_usage"]) as f64;
    let sys_delta = u(&cpu["system_cpu_usage"]) as f64 - u(&pre["system_cpu_usage"]) as f64;
    let cpus = match u(&cpu["online_cpus"]) {
        0 => cpu["cpu_usage"]["percpu_usage"]
            .as_array()
            .map_or(1, |a| a.len().max(1)) as f64,
        n => n as f64,
    };
    let cpu_pct = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let usage = u(&mem["usage"]);
    // cgroup v1 counts the page cache in; the CLI takes the inactive files out (v2 names it
    // without the total_ prefix).
    let cache = [
        &mem["stats"]["total_inactive_file"],
        &mem["stats"]["inactive_file"],
    ]
    .into_iter()
    .find_map(Value::as_u64)
    .filter(|c| *c < usage)
    .unwrap_or(0);
    let used = usage - cache;
    let limit = u(&mem["limit"]);
    let mem_pct = if limit > 0 {
        used as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0, 0);
    if let Some(nets) = s["networks"].as_object() {
        for n in nets.values() {
            rx += u(&n["rx_bytes"]);
            tx += u(&n["tx_bytes"]);
        }
    }
    let (mut read, mut write) = (0, 0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += u(&e["value"]),
            Some("write") => write += u(&e["value"]),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or("");
    json!({
        "ID": id.chars().take(12).collect::<String>(),
        "Container": container,
        "Name": s["name"].as_str().unwrap_or("").trim_start_matches('/'),
        "CPUPerc": format!("{cpu_pct:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(used), bytes_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_size3(rx), human_size3(tx)),
        "BlockIO": format!("{} / {}", human_size3(read), human_size3(write)),
        "PIDs": u(&s["pids_stats"]["current"]).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_as_the_docker_cli_computes_them() {
        let s = json!({
            "id": "29d8ff7024090000", "name": "/capped",
            "cpu_stats": {"cpu_usage": {"total_usage": 300_000_000u64}, "system_cpu_usage": 4_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100_000_000u64}, "system_cpu_usage": 2_000_000_000u64},
            "memory_stats": {"usage": 1_000_000, "limit": 64u64 << 20, "stats": {"total_inactive_file": 438_848}},
            "networks": {"eth0": {"rx_bytes": 890, "tx_bytes": 382}, "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}, {"op": "Write", "value": 1_500_000}]},
            "pids_stats": {"current": 3},
        });
        let r = stats_row(&s, "capped");
        assert_eq!(r["ID"], "29d8ff702409");
        assert_eq!(r["Name"], "capped");
        // (200 ms / 2 s) × 2 CPUs.
        assert_eq!(r["CPUPerc"], "20.00%");
        assert_eq!(r["MemUsage"], "548KiB / 64MiB");
        assert_eq!(r["MemPerc"], "0.84%");
        assert_eq!(r["NetIO"], "1.39kB / 382B");
        assert_eq!(r["BlockIO"], "4.1kB / 1.5MB");
        assert_eq!(r["PIDs"], "3");
        // A stopped container's zeroed object.
        let z = stats_row(&json!({}), "x");
        assert_eq!(
            (z["CPUPerc"].as_str(), z["MemUsage"].as_str()),
            (Some("0.00%"), Some("0B / 0B"))
        );
    }
}
