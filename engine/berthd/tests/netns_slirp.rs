//! `--network slirp`: containers on netcore's userspace network stack, through the docker CLI.
//! Host services live in the test's own namespace (made by scripts/netns-test.sh): an HTTP
//! server on loopback, dnsmasq as the upstream resolver on 127.0.0.1:53, and a dummy interface
//! whose address plays an outside client. A static helper bound into busybox containers reports
//! the peer each connection and datagram comes from, and floods the TAP device with garbage.
//! dockerd has no userspace network mode; Podman's slirp4netns is the behaviour copied
//! (addresses, option names, host loopback closed unless asked) and is benchmarked against in
//! benches/usernet-compare.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use support::{Berthd, IMAGE};

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    )
}

fn sh(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd}: {:?}", text(&o));
}

/// Kills a child of the test by PID on drop.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn build_helper(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/slirp_helper.c");
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("helper"))
        .arg(&src)
        .output()
        .expect("gcc (the README's set-up installs it)");
    assert!(o.status.success(), "{:?}", text(&o));
    dir.to_path_buf()
}

/// An HTTP server on the host's loopback answering every request with `body`.
fn host_http(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// The answer of the helper's TCP server at `to`, connecting from `from`.
fn tcp_peer(from: Option<&str>, to: SocketAddr) -> String {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(f) = from {
        s.bind(&format!("{f}:0").parse::<SocketAddr>().unwrap().into())
            .unwrap();
    }
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    let mut c: TcpStream = s.into();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.trim().to_string()
}

/// The answer of the helper's UDP server at `to`, sending from `from`.
fn udp_peer(from: &str, to: SocketAddr) -> String {
    let u = UdpSocket::bind(format!("{from}:0")).unwrap();
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 256];
    for _ in 0..10 {
        u.send_to(b"ping", to).unwrap();
        if let Ok((n, _)) = u.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).trim().to_string();
        }
    }
    panic!("no UDP answer from {to}");
}

/// The stack's counters for container `id`: SIGUSR1 to its berth-slirp, then its status file.
fn counters(b: &Berthd, id: &str) -> serde_json::Value {
    let pid = slirp_pid(b, id);
    let status = b.dir.path().join("run/slirp").join(format!("{id}.status"));
    let _ = std::fs::remove_file(&status);
    sh(&format!("kill -USR1 {pid}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(bytes) = std::fs::read(&status) {
            if let Ok(v) = serde_json::from_slice(&bytes) {
                return v;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("berth-slirp {pid} wrote no counters");
}

fn slirp_pid(b: &Berthd, id: &str) -> i64 {
    let file = b.dir.path().join("run/slirp").join(format!("{id}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v["pid"].as_i64().unwrap()
}

#[test]
fn netns_slirp_networks_containers_without_bridges() {
    if !netns_support::enabled("netns_slirp_networks_containers_without_bridges") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let helper = build_helper(tmp.path());
    let probe = format!("{}:/probe:ro", helper.display());
    // The outside world of this namespace: an address that is not loopback, a resolver, a web
    // server on loopback.
    sh(
        "ip link add slirptest0 type veth peer name slirptest1 && ip addr add 192.0.2.1/24 dev slirptest0 && ip link set slirptest0 up && ip link set slirptest1 up && ip link set lo up",
    );
    let _dns = Guard(
        Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--port=53",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
            ])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--address=/slirp.test/192.0.2.7",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq (dnsmasq-base; the README's set-up installs it)"),
    );
    let web = host_http("hello-from-host");
    let b = Berthd::start();

    // Host loopback through the gateway only when asked; names; the gateway answers pings.
    let url = format!("http://10.0.2.2:{web}/");
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "name=slirp,driver-opt=allow_host_loopback=true",
        IMAGE,
        "wget",
        "-qO-",
        &url,
    ]);
    assert_eq!(out.trim(), "hello-from-host");
    let script = format!(
        "cat /etc/resolv.conf; nslookup slirp.test; ping -c1 -W3 10.0.2.2 >/dev/null && echo pinged; \
         ip -o -4 addr show tap0; ip route; wget -T 3 -qO- {url} && echo reached || echo refused"
    );
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "slirp",
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.contains("nameserver 10.0.2.3"), "{out}");
    assert!(
        out.contains("192.0.2.7"),
        "the name resolves through the stack: {out}"
    );
    assert!(out.contains("pinged"), "{out}");
    assert!(out.contains("10.0.2.100/24"), "{out}");
    assert!(out.contains("default via 10.0.2.2"), "{out}");
    assert!(
        out.trim_end().ends_with("refused"),
        "host loopback is closed by default: {out}"
    );
    let o = b.docker(&[
        "run",
        "--rm",
        "--network",
        "name=slirp,driver-opt=mtu=70000",
        IMAGE,
        "true",
    ]);
    let (code, _, err) = text(&o);
    assert_ne!(code, 0);
    assert!(
        err.contains("mtu=70000") && err.contains("1280 to 65520"),
        "{err}"
    );

    // Published TCP and UDP ports, with the client's address kept on request.
    let keep = b.ok(&[
        "run",
        "-d",
        "--network",
        "name=slirp,driver-opt=port_handler=slirp4netns",
        "-p",
        "18080:8080",
        "-p",
        "18081:8081/udp",
        "-v",
        &probe,
        IMAGE,
        "/probe/helper",
        "serve",
        "8080",
        "8081",
    ]);
    let keep = keep.trim().to_string();
    let plain = b.ok(&[
        "run",
        "-d",
        "--network",
        "slirp",
        "-p",
        "127.0.0.1::8080",
        "-p",
        "18083:8081/udp",
        "-v",
        &probe,
        IMAGE,
        "/probe/helper",
        "serve",
        "8080",
        "8081",
    ]);
    let plain = plain.trim().to_string();
    let ports = b.ok(&["port", &keep]);
    assert!(ports.contains("8080/tcp -> 0.0.0.0:18080"), "{ports}");
    assert!(ports.contains("8081/udp -> 0.0.0.0:18081"), "{ports}");
    let plain_port: u16 = b
        .ok(&["port", &plain, "8080/tcp"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let inspect = b.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}} {{.NetworkSettings.Networks.slirp.IPAddress}} {{.NetworkSettings.Networks.slirp.Gateway}}", &keep]);
    assert_eq!(
        inspect.trim(),
        "slirp:port_handler=slirp4netns 10.0.2.100 10.0.2.2"
    );
    let to = |p: u16| -> SocketAddr { format!("192.0.2.1:{p}").parse().unwrap() };
    let lo = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
    // The helper may need a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(lo(18080))
        .map(|mut s| {
            let mut v = String::new();
            let _ = s.read_to_string(&mut v);
            v.is_empty()
        })
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the published port never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kept = tcp_peer(Some("192.0.2.1"), to(18080));
    assert!(kept.starts_with("from 192.0.2.1:"), "{kept}");
    assert!(
        tcp_peer(None, lo(18080)).starts_with("from 10.0.2.2:"),
        "loopback clients come from the gateway"
    );
    assert!(tcp_peer(Some("192.0.2.1"), lo(plain_port)).starts_with("from 10.0.2.2:"));
    let kept = udp_peer("192.0.2.1", to(18081));
    assert!(kept.starts_with("from 192.0.2.1:"), "{kept}");
    assert!(udp_peer("192.0.2.1", to(18083)).starts_with("from 10.0.2.2:"));
    assert!(udp_peer("127.0.0.1", lo(18081)).starts_with("from 10.0.2.2:"));

    // 10,000 short connections leave no flow behind.
    for i in 0..10_000 {
        let mut c =
            TcpStream::connect(lo(plain_port)).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let mut v = Vec::new();
        c.read_to_end(&mut v).unwrap();
        assert!(!v.is_empty(), "connection {i} got no answer");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = counters(&b, &plain);
        if c["tcp_flows"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flows left after 10,000 connections: {c}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A flood of malformed frames from the container: counted and dropped, the stack serves on.
    let pid = slirp_pid(&b, &plain);
    let before = counters(&b, &plain);
    let out = b.ok(&["exec", &plain, "/probe/helper", "flood", "tap0", "100000"]);
    assert!(out.contains("sent 100000"), "{out}");
    assert!(tcp_peer(None, lo(plain_port)).starts_with("from "));
    let c = counters(&b, &plain);
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    // The TAP device's queue (500 frames) drops what the stack has not read yet.
    assert!(
        n(&c, "frames_in") - n(&before, "frames_in") > 2_000,
        "{before} -> {c}"
    );
    assert!(
        n(&c, "malformed") - n(&before, "malformed") > 1_000,
        "{before} -> {c}"
    );
    assert_eq!(slirp_pid(&b, &plain), pid, "the same stack serves on");

    // The stack outlives berthd as the shim does: the published port answers while berthd is
    // down and after it is back.
    let mut b = b;
    b.kill();
    assert!(tcp_peer(None, lo(plain_port)).starts_with("from "));
    b.start_again();
    assert!(tcp_peer(None, lo(plain_port)).starts_with("from "));

    // Stopping the container ends its stack and frees its ports.
    let keep_pid = slirp_pid(&b, &keep);
    b.ok(&["rm", "-f", &keep, &plain]);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Gone, or a zombie of whatever adopted it when berthd was killed.
    let alive = |pid: i64| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
    };
    while alive(pid) || alive(keep_pid) {
        assert!(
            Instant::now() < deadline,
            "berth-slirp {pid} or {keep_pid} outlived its container"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    TcpListener::bind("0.0.0.0:18080").expect("the published port is free again");
    UdpSocket::bind("0.0.0.0:18081").expect("the published UDP port is free again");
    for d in ["run/netns", "run/slirp"] {
        let left: Vec<_> = std::fs::read_dir(b.dir.path().join(d))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {d}: {left:?}");
    }
    sh("ip link del slirptest0");
}
