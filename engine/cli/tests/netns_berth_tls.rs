//! berthd on TCP with mutual TLS, end to end: certificates made by the openssl CLI (a CA, a
//! server certificate for IP 127.0.0.1, a client certificate, and a rogue CA with its own client
//! certificate); berth's CLI runs containers over TLS (the attach upgrade included) and the docker
//! CLI lists them; clients without a certificate, or with the rogue one, are refused in the
//! handshake; berth refuses a server its CA did not sign; berthd refuses to listen on TCP
//! without the TLS flags, one client address cannot hold every connection with handshakes it never
//! finishes, and SIGTERM stops its TCP listener too. Privileged: run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

#[path = "../../berthd/tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{Berthd, DOCKER, IMAGE, berthd_bin};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

/// A CA in `dir` (`<name>.pem`, `<name>-key.pem`).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A certificate `<name>-cert.pem` with its key `<name>-key.pem`, signed by CA `ca`, with the
/// extensions `ext` (one per line).
fn leaf(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}-cert.pem"),
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// berth over TCP with TLS: `ca` to verify berthd, `client` (`<client>-cert.pem`, `-key.pem`)
/// to present.
fn berth_tls(certs: &Path, port: u16, ca: &str, client: &str, args: &[&str]) -> Output {
    let p = |f: String| certs.join(f).display().to_string();
    Command::new(BERTH)
        .env_remove("BERTH_HOST")
        .env_remove("BERTH_CERT_PATH")
        .env_remove("BERTH_TLS_VERIFY")
        .args(["-H", &format!("tcp://127.0.0.1:{port}"), "--tlsverify"])
        .args(["--tlscacert", &p(format!("{ca}.pem"))])
        .args(["--tlscert", &p(format!("{client}-cert.pem"))])
        .args(["--tlskey", &p(format!("{client}-key.pem"))])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn netns_berth_tls() {
    if !netns_support::enabled("netns_berth_tls") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path();
    ca(certs, "ca");
    leaf(
        certs,
        "ca",
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    leaf(certs, "ca", "client", "extendedKeyUsage=clientAuth\n");
    ca(certs, "rogue");
    leaf(certs, "rogue", "intruder", "extendedKeyUsage=clientAuth\n");
    let f = |name: &str| certs.join(name).display().to_string();

    // Without the TLS flags berthd refuses TCP, naming them; with a bad PEM, naming the file.
    let port = free_port();
    let scratch = tmp.path().join("scratch");
    let refused = |extra: &[&str]| {
        Command::new(berthd_bin())
            .arg("--data-root")
            .arg(scratch.join("data"))
            .arg("--exec-root")
            .arg(scratch.join("run"))
            .args(["-H", &format!("tcp://127.0.0.1:{port}")])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = refused(&[]);
    assert!(!out.status.success());
    let msg = format!(
        "refusing to listen on tcp://127.0.0.1:{port} without --tlsverify, --tlscacert, --tlscert and --tlskey: the API is root on this host"
    );
    assert!(text(&out.stderr).contains(&msg), "{}", text(&out.stderr));
    let out = refused(&["--tlsverify", "--tlscacert", &f("ca.pem")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("without --tlscert and --tlskey:"),
        "{}",
        text(&out.stderr)
    );
    let out = refused(&[
        "--tlsverify",
        "--tlscacert",
        &f("ca.pem"),
        "--tlscert",
        &f("server.ext"),
        "--tlskey",
        &f("server-key.pem"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&f("server.ext")),
        "{}",
        text(&out.stderr)
    );
    assert!(!scratch.join("run").join("berth.sock").exists());

    // The Unix socket and TCP with mutual TLS.
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Berthd::start_with_args(&[
        "-H",
        &tcp,
        "--tlsverify",
        "--tlscacert",
        &f("ca.pem"),
        "--tlscert",
        &f("server-cert.pem"),
        "--tlskey",
        &f("server-key.pem"),
    ])
    .with_client(Path::new(BERTH));
    assert!(d.ok(&["version"]).contains("API version:      1.43"));

    let out = berth_tls(certs, port, "ca", "client", &["version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("API version:      1.43"));
    // Attach's upgrade over TLS, and the container's exit code.
    let out = berth_tls(
        certs,
        port,
        "ca",
        "client",
        &["run", "--rm", IMAGE, "echo", "over-tls"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "over-tls\n");
    let out = berth_tls(
        certs,
        port,
        "ca",
        "client",
        &["run", "--rm", IMAGE, "sh", "-c", "exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = berth_tls(
        certs,
        port,
        "ca",
        "client",
        &["run", "-d", "--name", "tls-box", IMAGE, "sleep", "60"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // BERTH_CERT_PATH and BERTH_TLS_VERIFY, as DOCKER_CERT_PATH and DOCKER_TLS_VERIFY.
    let docker_certs = tmp.path().join("docker-certs");
    std::fs::create_dir(&docker_certs).unwrap();
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("client-cert.pem", "cert.pem"),
        ("client-key.pem", "key.pem"),
    ] {
        std::fs::copy(certs.join(from), docker_certs.join(to)).unwrap();
    }
    let out = Command::new(BERTH)
        .env("BERTH_HOST", &tcp)
        .env("BERTH_TLS_VERIFY", "1")
        .env("BERTH_CERT_PATH", &docker_certs)
        .args(["ps", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "tls-box\n");

    // The docker CLI, with its own TLS settings.
    let out = Command::new(DOCKER)
        .env("DOCKER_HOST", &tcp)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &docker_certs)
        .env("DOCKER_CONFIG", tmp.path().join("docker-config"))
        .args(["ps", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker ps: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "tls-box\n");

    // curl with the client certificate gets the ping; without one, the handshake fails.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert", &f("ca.pem")])
        .args([
            "--cert",
            &f("client-cert.pem"),
            "--key",
            &f("client-key.pem"),
        ])
        .arg(format!("https://127.0.0.1:{port}/_ping"))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "OK");
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{port}/_ping"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));
    // Plain HTTP is no way in either.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}/_ping"))
        .output()
        .unwrap();
    assert_ne!(text(&out.stdout), "OK");

    // A certificate of the rogue CA is refused by berthd.
    let out = berth_tls(certs, port, "ca", "intruder", &["ps"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // berth refuses a berthd its CA did not sign.
    let out = berth_tls(certs, port, "rogue", "client", &["ps"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("TLS handshake"),
        "{}",
        text(&out.stderr)
    );
    // A TCP host without TLS material: 125, with the reason.
    let out = Command::new(BERTH)
        .env_remove("BERTH_CERT_PATH")
        .env_remove("BERTH_TLS_VERIFY")
        .args(["-H", &tcp, "ps"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("refusing to connect"),
        "{}",
        text(&out.stderr)
    );

    // One address cannot hold every connection with handshakes it never finishes: past its
    // share (berthd::tls::HANDSHAKES_PER_ADDRESS, 32) a connection from it is closed at once,
    // and another address is still served.
    let idle: Vec<TcpStream> = (0..32)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t0 = Instant::now();
    let r = extra.read(&mut [0u8; 1]);
    assert!(
        matches!(r, Ok(0))
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the 33rd half-open connection from one address was kept: {r:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let ping = |from: &str| {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "--interface", from])
            .args(["--cacert", &f("ca.pem"), "--cert", &f("client-cert.pem")])
            .args(["--key", &f("client-key.pem")])
            .arg(format!("https://127.0.0.1:{port}/_ping"))
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert_eq!(ping("127.0.0.2"), "OK");
    drop(idle);
    // Their handshakes ended with them: the address is served again.
    let t0 = Instant::now();
    while ping("127.0.0.1") != "OK" {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "127.0.0.1 still refused"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Still serving after the refusals.
    let out = berth_tls(certs, port, "ca", "client", &["rm", "-f", "tls-box"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(d);

    // SIGTERM stops the TCP listener too, promptly, even with a client mid-handshake.
    let port = free_port();
    let root = tmp.path().join("second");
    let sock = root.join("berth.sock");
    let cgroup_parent = format!("berthd-tls-test-{}", std::process::id());
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let mut child = Command::new(berthd_bin())
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--exec-root")
        .arg(root.join("run"))
        .arg("--shim")
        .arg(berthd_bin().parent().unwrap().join("berth-shim"))
        .arg("--resolv-conf")
        .arg(root.join("resolv.conf"))
        .args(["--cgroup-parent", &cgroup_parent])
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(["-H", &format!("tcp://127.0.0.1:{port}"), "--tlsverify"])
        .args([
            "--tlscacert",
            &f("ca.pem"),
            "--tlscert",
            &f("server-cert.pem"),
        ])
        .args(["--tlskey", &f("server-key.pem")])
        .spawn()
        .unwrap();
    support::wait_for_socket(&sock);
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let out = berth_tls(certs, port, "ca", "client", &["version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(4) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berthd did not stop within 4 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    drop(idle);
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in rd.flatten() {
            let _ = std::fs::remove_dir(h.path().join(&cgroup_parent));
        }
    }
}
