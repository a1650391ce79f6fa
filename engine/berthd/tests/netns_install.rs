//! scripts/install.sh and berthd as a systemd service: the script installs the binaries, the
//! units and /etc/berth/daemon.json under a destination directory (this machine runs no
//! systemd, and a test never writes the host's /etc); the units pass `systemd-analyze verify`;
//! the installed daemon.json passes `berthd --validate`; the installed berthd serves the docker
//! CLI on a socket handed over as systemd hands it (`LISTEN_PID`, `LISTEN_FDS`, fd 3), queued
//! clients included, and leaves that socket in place when it stops; `--uninstall` removes what
//! the script put there. Privileged (berthd starts its networking): run through
//! scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;
mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{DOCKER, berthd_bin};

/// Binds a Unix socket at `sock`, then runs `argv` as systemd runs a socket-activated service:
/// the socket on fd 3, `LISTEN_FDS=1`, `LISTEN_PID` its own PID. Prints the service's PID,
/// waits for it and exits with its status.
/// The programs install.sh puts in `usr/local/bin` (and `--uninstall` removes).
const BINARIES: [&str; 5] = [
    "berthd",
    "berth",
    "berth-shim",
    "berth-proxy",
    "berth-slirp",
];

const ACTIVATE: &str = r#"
import os, socket, sys
path, argv = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o660)
s.listen(64)
pid = os.fork()
if pid == 0:
    if s.fileno() != 3:
        os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.execv(argv[0], argv)
s.close()
print(pid, flush=True)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn install(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install.sh {args:?}: {text}");
    text
}

/// `berthd --validate --config-file CONF` of the installed tree.
fn validate(bin: &Path, conf: &Path) -> std::process::Output {
    Command::new(bin.join("berthd"))
        .args(["--validate", "--config-file"])
        .arg(conf)
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn netns_install_as_a_service() {
    if !netns_support::enabled("netns_install_as_a_service") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("root");
    let built = berthd_bin().parent().unwrap().to_path_buf();
    let said = install(&[
        "--destdir",
        dest.to_str().unwrap(),
        "--from",
        built.to_str().unwrap(),
    ]);
    assert!(
        said.contains("start it with: /usr/local/bin/berthd"),
        "{said}"
    );
    let bin = dest.join("usr/local/bin");
    for b in BINARIES {
        assert_eq!(mode(&bin.join(b)), 0o755, "{b}");
    }
    let units = dest.join("etc/systemd/system");
    let service = std::fs::read_to_string(units.join("berthd.service")).unwrap();
    assert!(
        service.contains("\nExecStart=/usr/local/bin/berthd -H fd://\n")
            && service.contains("\nKillMode=process\n")
            && service.contains("\nRequires=berthd.socket\n"),
        "{service}"
    );
    let socket = std::fs::read_to_string(units.join("berthd.socket")).unwrap();
    assert!(
        socket.contains("\nListenStream=/run/berth.sock\n")
            && socket.contains("\nSocketMode=0660\n")
            && socket.contains("\nSocketGroup=berth\n"),
        "{socket}"
    );
    assert_eq!(mode(&units.join("berthd.service")), 0o644);
    // systemd's own check of the units against the installed tree (the binary ExecStart names
    // must be there), with this machine's system units beside them for the targets they use.
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze (Debian's systemd) is installed here"
    );
    std::fs::create_dir_all(dest.join("lib/systemd")).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg("/lib/systemd/system")
        .arg(dest.join("lib/systemd"))
        .status()
        .unwrap();
    assert!(copied.success());
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", dest.display()))
        .args(["berthd.socket", "berthd.service"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
    // The daemon.json written is one berthd takes, and a second install keeps an edited one.
    let conf = dest.join("etc/berth/daemon.json");
    let out = validate(&bin, &conf);
    assert_eq!(
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (true, "configuration OK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&conf, "{\"log-level\": \"debug\"}\n").unwrap();
    install(&[
        "--destdir",
        dest.to_str().unwrap(),
        "--from",
        built.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "{\"log-level\": \"debug\"}\n"
    );
    let bad = tmp.path().join("bad.json");
    // A bad key or log level is refused by --validate, naming it.
    for (text, named) in [
        ("{\"data-rooot\": \"/x\"}", "data-rooot"),
        ("{\"log-level\": \"loud\"}", "loud"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = validate(&bin, &bad);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(named),
            "{out:?}"
        );
    }
    // A prefix that would not be one ExecStart path is refused.
    let out = Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .args(["--prefix", "/opt/a b", "--destdir"])
        .arg(&dest)
        .args(["--from", built.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("/opt/a b"),
        "{out:?}"
    );

    // -H fd:// without systemd's socket: refused, saying why.
    let cfg = tmp.path().join("daemon.json");
    std::fs::write(
        &cfg,
        format!(
            "{{\"data-root\": \"{0}/data\", \"exec-root\": \"{0}/run\", \"resolv-conf\": \"{0}/resolv.conf\", \"cgroup-parent\": \"berth-install-test\"}}",
            tmp.path().display()
        ),
    )
    .unwrap();
    std::fs::write(tmp.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let out = Command::new(bin.join("berthd"))
        .args(["-H", "fd://", "--config-file"])
        .arg(&cfg)
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("LISTEN_PID"),
        "{out:?}"
    );

    // Socket activation: the socket exists before berthd; a client that connects at once is
    // served once berthd runs.
    let sock = tmp.path().join("berth.sock");
    let mut launcher = Command::new("python3")
        .arg("-c")
        .arg(ACTIVATE)
        .arg(&sock)
        .arg(bin.join("berthd"))
        .args(["-H", "fd://", "--config-file"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(launcher.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line
        .trim()
        .parse()
        .expect("the launcher prints berthd's PID");
    let host = format!("unix://{}", sock.display());
    let out = Command::new(DOCKER)
        .args(["-H", &host, "version", "--format", "{{.Server.Version}}"])
        .output()
        .unwrap();
    let served = out.status.success() && !out.stdout.is_empty();
    let out2 = Command::new(DOCKER)
        .args(["-H", &host, "info", "--format", "{{.DockerRootDir}}"])
        .output()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let done = launcher.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(served, "docker version on systemd's socket: {out:?}\n{log}");
    assert_eq!(
        String::from_utf8_lossy(&out2.stdout).trim(),
        tmp.path().join("data").display().to_string(),
        "{log}"
    );
    assert!(done.status.success(), "berthd on SIGTERM: {log}");
    assert!(
        log.contains("on the socket systemd passed"),
        "berthd's log: {log}"
    );
    // The socket is systemd's: still there for the next start.
    assert!(sock.exists(), "berthd removed systemd's socket");

    let said = install(&["--uninstall", "--destdir", dest.to_str().unwrap()]);
    assert!(said.contains("removed"), "{said}");
    for b in BINARIES {
        assert!(!bin.join(b).exists(), "{b} left behind");
    }
    assert!(!units.join("berthd.service").exists() && conf.exists());
    // berthd's cgroup parent of this test, if it made one.
    for root in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
    ] {
        let _ = std::fs::remove_dir(Path::new(root).join("berth-install-test"));
    }
}
