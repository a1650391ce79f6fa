//! `GET /containers/{id}/stats`: engine samples as Docker's stats JSON (API 1.43). Clients
//! compute rates themselves from `cpu_stats` and `precpu_stats` (the sample a second before),
//! so a response carries two samples. Pure.

use std::time::{SystemTime, UNIX_EPOCH};

use engine::runtime::stats::Sample;
use serde_json::{Map, Value, json};

/// Go's zero time, which Docker sends for a sample that was not taken.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A time as Docker writes it: RFC 3339 with nanoseconds, UTC.
pub fn rfc3339_nano(t: Option<SystemTime>) -> String {
    match t {
        Some(t) if t >= UNIX_EPOCH => {
            let (secs, nanos) = berth_common::time::unix(t);
            berth_common::time::rfc3339_nano_fixed(secs, nanos)
        }
        _ => ZERO_TIME.to_string(),
    }
}

fn cpu(s: &Sample) -> Value {
    let c = &s.cpu;
    let mut usage = json!({
        "total_usage": c.total_ns,
        "usage_in_kernelmode": c.system_ns,
        "usage_in_usermode": c.user_ns,
    });
    if !c.percpu_ns.is_empty() {
        usage["percpu_usage"] = json!(c.percpu_ns);
    }
    let mut v = json!({
        "cpu_usage": usage,
        "throttling_data": {
            "periods": c.throttling.periods,
            "throttled_periods": c.throttling.throttled_periods,
            "throttled_time": c.throttling.throttled_ns,
        },
    });
    // Docker leaves these out when zero (a sample not taken).
    if c.system_total_ns > 0 {
        v["system_cpu_usage"] = json!(c.system_total_ns);
    }
    if c.online_cpus > 0 {
        v["online_cpus"] = json!(c.online_cpus);
    }
    v
}

fn memory(s: &Sample) -> Value {
    if s.read.is_none() {
        return json!({});
    }
    let m = &s.memory;
    let mut v = json!({"usage": m.usage, "stats": m.stats, "limit": m.limit});
    if m.max_usage > 0 {
        v["max_usage"] = json!(m.max_usage);
        v["failcnt"] = json!(m.failcnt);
    }
    v
}

fn pids(s: &Sample) -> Value {
    if s.read.is_none() {
        return json!({});
    }
    let mut v = json!({"current": s.pids.current});
    if let Some(l) = s.pids.limit {
        v["limit"] = json!(l);
    }
    v
}

fn blkio(s: &Sample) -> Value {
    let bytes: Vec<Value> = s
        .blkio
        .iter()
        .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
        .collect();
    json!({
        "io_service_bytes_recursive": bytes,
        "io_serviced_recursive": [],
        "io_queue_recursive": [],
        "io_service_time_recursive": [],
        "io_wait_time_recursive": [],
        "io_merged_recursive": [],
        "io_time_recursive": [],
        "sectors_recursive": [],
    })
}

fn networks(s: &Sample) -> Value {
    let mut m = Map::new();
    for n in &s.networks {
        m.insert(
            n.name.clone(),
            json!({
                "rx_bytes": n.rx_bytes,
                "rx_packets": n.rx_packets,
                "rx_errors": n.rx_errors,
                "rx_dropped": n.rx_dropped,
                "tx_bytes": n.tx_bytes,
                "tx_packets": n.tx_packets,
                "tx_errors": n.tx_errors,
                "tx_dropped": n.tx_dropped,
            }),
        );
    }
    Value::Object(m)
}

/// Docker's stats object for container `id` named `name`: `current` (`None`: the container is
/// not running, and every number is zero, as Docker sends) and `previous`, the sample the
/// client takes CPU and system deltas against (`None`: zero, for a one-shot sample).
pub fn stats_json(
    id: &str,
    name: &str,
    current: Option<&Sample>,
    previous: Option<&Sample>,
) -> Value {
    let zero = Sample::default();
    let cur = current.unwrap_or(&zero);
    let pre = previous.unwrap_or(&zero);
    let mut v = json!({
        "name": format!("/{name}"),
        "id": id,
        "read": rfc3339_nano(cur.read),
        "preread": rfc3339_nano(pre.read),
        "pids_stats": pids(cur),
        "blkio_stats": blkio(cur),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(cur),
        "precpu_stats": cpu(pre),
        "memory_stats": memory(cur),
    });
    // Left out for a container without interfaces of its own (host, none), as Docker does.
    if !cur.networks.is_empty() {
        v["networks"] = networks(cur);
    }
    v
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use engine::runtime::stats::{Cpu, Memory, NetDev, Pids};

    use super::*;

    fn sample(at_s: u64, total_ns: u64, system_ns: u64) -> Sample {
        Sample {
            read: Some(UNIX_EPOCH + Duration::new(at_s, 5)),
            cpu: Cpu {
                total_ns,
                user_ns: total_ns / 2,
                system_ns: total_ns / 4,
                system_total_ns: system_ns,
                online_cpus: 2,
                ..Cpu::default()
            },
            memory: Memory {
                usage: 5 << 20,
                limit: 64 << 20,
                stats: [("total_inactive_file".to_string(), 1 << 20)].into(),
                ..Memory::default()
            },
            pids: Pids {
                current: 3,
                limit: None,
            },
            networks: vec![NetDev {
                name: "eth0".into(),
                rx_bytes: 1000,
                tx_bytes: 2000,
                ..NetDev::default()
            }],
            blkio: Vec::new(),
        }
    }

    /// The docker CLI's CPU % (calculateCPUPercentUnix) over the JSON.
    fn cli_cpu_percent(v: &Value) -> f64 {
        let cpu = |k: &str, f: &str| v[k][f].as_f64().unwrap_or(0.0);
        let total = |k: &str| v[k]["cpu_usage"]["total_usage"].as_f64().unwrap();
        let cpu_delta = total("cpu_stats") - total("precpu_stats");
        let system_delta =
            cpu("cpu_stats", "system_cpu_usage") - cpu("precpu_stats", "system_cpu_usage");
        let online = v["cpu_stats"]["online_cpus"].as_f64().unwrap();
        if system_delta > 0.0 && cpu_delta > 0.0 {
            cpu_delta / system_delta * online * 100.0
        } else {
            0.0
        }
    }

    #[test]
    fn two_samples_give_the_cpu_delta() {
        // 0.5 s of CPU while the host's two CPUs ran 2 s in all: a quarter of the host, half
        // a CPU, which the CLI shows as 50%.
        let pre = sample(100, 1_000_000_000, 10_000_000_000);
        let cur = sample(101, 1_500_000_000, 12_000_000_000);
        let v = stats_json("abc", "web", Some(&cur), Some(&pre));
        assert_eq!(v["name"], "/web");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["read"], "1970-01-01T00:01:41.000000005Z");
        assert_eq!(v["preread"], "1970-01-01T00:01:40.000000005Z");
        assert!((cli_cpu_percent(&v) - 50.0).abs() < 1e-9);
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["usage_in_usermode"],
            750_000_000
        );
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["usage_in_kernelmode"],
            375_000_000
        );
        assert!(v["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
        assert_eq!(v["cpu_stats"]["throttling_data"]["throttled_periods"], 0);
        assert_eq!(v["memory_stats"]["limit"], 64 << 20);
        assert_eq!(v["memory_stats"]["stats"]["total_inactive_file"], 1 << 20);
        assert!(
            v["memory_stats"].get("max_usage").is_none(),
            "v2 has no max"
        );
        assert_eq!(v["pids_stats"], json!({"current": 3}));
        assert_eq!(v["networks"]["eth0"]["rx_bytes"], 1000);
        assert_eq!(v["networks"]["eth0"]["tx_bytes"], 2000);
        assert_eq!(v["blkio_stats"]["io_service_bytes_recursive"], json!([]));
    }

    #[test]
    fn one_shot_and_stopped() {
        let cur = sample(100, 1, 2);
        let one = stats_json("abc", "web", Some(&cur), None);
        assert_eq!(one["preread"], ZERO_TIME);
        assert_eq!(one["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert!(one["precpu_stats"].get("system_cpu_usage").is_none());
        let zero = stats_json("abc", "web", None, None);
        assert_eq!(zero["read"], ZERO_TIME);
        assert_eq!(zero["memory_stats"], json!({}));
        assert_eq!(zero["pids_stats"], json!({}));
        assert!(zero.get("networks").is_none());
        assert_eq!(zero["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(zero["name"], "/web");
    }

    #[test]
    fn v1_memory_and_limits() {
        let mut cur = sample(100, 1, 2);
        cur.memory.max_usage = 9;
        cur.memory.failcnt = 1;
        cur.pids.limit = Some(100);
        let v = stats_json("abc", "web", Some(&cur), None);
        assert_eq!(v["memory_stats"]["max_usage"], 9);
        assert_eq!(v["memory_stats"]["failcnt"], 1);
        assert_eq!(v["pids_stats"]["limit"], 100);
    }
}
