//! Docker's isolation, held under hostile containers and checked against dockerd in the same
//! test: a static probe bound into busybox containers asks the kernel for what the default
//! seccomp profile forbids (`unshare -U`, `keyctl`, `mount`, `swapon`, raw `bpf`, ...) under
//! the default profile, `--privileged`, `seccomp=unconfined` and a profile file; capability
//! sets of `--cap-add/--cap-drop` as `/proc/self/status` shows them; `no-new-privileges`,
//! the cgroup namespace, the masked paths and what inspect and `/info` echo. Privileged: run
//! through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use support::{Berthd, Dockerd, IMAGE};

type Docker<'a> = &'a dyn Fn(&[&str]) -> Output;

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    )
}

/// The probe, built static from `support/syscall_probe.c` into `dir`.
fn build_probe(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/syscall_probe.c");
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("probe"))
        .arg(&src)
        .output()
        .expect("gcc (the README's set-up installs it)");
    assert!(o.status.success(), "{:?}", text(&o));
}

/// Each probe's answer in a container run with `extra` options; `None` when the container
/// could not run (said on stderr).
fn try_probe(docker: Docker, dir: &Path, extra: &[&str]) -> Option<BTreeMap<String, String>> {
    let bind = format!("{}:/probe:ro", dir.display());
    let mut args = vec!["run", "--rm", "--network", "none", "-v", &bind];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "/probe/probe"]);
    let (code, out, err) = text(&docker(&args));
    if code != 0 {
        eprintln!("run {extra:?} failed: {err}");
        return None;
    }
    Some(
        out.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn probe(docker: Docker, dir: &Path, extra: &[&str]) -> BTreeMap<String, String> {
    try_probe(docker, dir, extra).unwrap_or_else(|| panic!("run {extra:?} failed"))
}

/// The first line of `cmd`'s output in a container run with `extra` options.
fn run_sh(docker: Docker, extra: &[&str], cmd: &str) -> (i32, String, String) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "sh", "-c", cmd]);
    text(&docker(&args))
}

/// What the seccomp runs answer, per configuration (`None`: the container did not run).
fn seccomp_runs(docker: Docker, dir: &Path) -> Vec<Option<BTreeMap<String, String>>> {
    let profile = dir.join("deny-chroot.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chroot"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let custom = format!("seccomp={}", profile.display());
    let mut runs = vec![
        try_probe(docker, dir, &[]),
        try_probe(docker, dir, &["--privileged"]),
        try_probe(docker, dir, &["--security-opt", "seccomp=unconfined"]),
        try_probe(docker, dir, &["--security-opt", &custom]),
        try_probe(docker, dir, &["--cap-add", "SYS_ADMIN"]),
    ];
    // Docker 25 and later refuse AF_VSOCK sockets by default; the dockerd of this machine
    // (20.10) does not: berth follows the newer profile, checked alone below.
    for r in runs.iter_mut().flatten() {
        r.remove("socket_vsock");
    }
    runs
}

#[test]
fn netns_isolation_seccomp_blocks_what_dockers_default_profile_blocks() {
    if !netns_support::enabled("netns_isolation_seccomp_blocks_what_dockers_default_profile_blocks")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    build_probe(dir.path());
    let d = Berthd::start();
    let berth = |args: &[&str]| d.docker(args);
    let dflt = probe(&berth, dir.path(), &[]);
    for blocked in [
        "unshare_user",
        "clone_newuser",
        "keyctl",
        "add_key",
        "mount",
        "swapon",
        "bpf",
        "kexec_load",
        "open_by_handle_at",
        "personality_bsd",
        "socket_vsock",
        "sethostname",
    ] {
        assert_eq!(
            dflt[blocked], "EPERM",
            "{blocked} under the default profile: {dflt:?}"
        );
    }
    for ok in ["getpid", "socket_inet", "personality_query", "chroot"] {
        assert_eq!(dflt[ok], "OK", "{ok} under the default profile: {dflt:?}");
    }
    let runs: Vec<_> = seccomp_runs(&berth, dir.path())
        .into_iter()
        .map(|r| r.expect("berthd runs every configuration"))
        .collect();
    let privileged = &runs[1];
    for works in [
        "unshare_user",
        "clone_newuser",
        "keyctl",
        "mount",
        "swapon",
        "bpf",
    ] {
        assert_ne!(
            privileged[works], "EPERM",
            "{works} under --privileged: {privileged:?}"
        );
    }
    assert_eq!(privileged["swapon"], "ENOENT", "{privileged:?}");
    assert_eq!(runs[2]["keyctl"], "OK", "unconfined: {:?}", runs[2]);
    assert_eq!(
        runs[2]["mount"], "EPERM",
        "unconfined, no CAP_SYS_ADMIN: {:?}",
        runs[2]
    );
    assert_eq!(
        runs[3]["chroot"], "EACCES",
        "the profile file: {:?}",
        runs[3]
    );
    assert_eq!(
        runs[4]["mount"], "OK",
        "CAP_SYS_ADMIN opens mount: {:?}",
        runs[4]
    );
    match Dockerd::start() {
        Some(docker) => {
            let want = seccomp_runs(&|args| docker.docker(args), dir.path());
            let names = [
                "default",
                "privileged",
                "unconfined",
                "profile file",
                "cap-add SYS_ADMIN",
            ];
            for (i, name) in names.iter().enumerate() {
                match &want[i] {
                    Some(w) => assert_eq!(&runs[i], w, "{name}: berthd (left) and dockerd (right)"),
                    // This machine's root lacks CAP_SYS_RESOURCE: dockerd asks runc for every
                    // capability and fails; berthd grants what it holds.
                    None => eprintln!("dockerd could not run {name}: berthd's checked alone"),
                }
            }
        }
        None => eprintln!("dockerd is not installed: berthd's seccomp checked alone"),
    }
}

/// Capability sets, no-new-privileges, the cgroup namespace and what inspect echoes.
fn privilege_steps(docker: Docker) -> Vec<(i32, String)> {
    let mut steps = Vec::new();
    let status = "busybox grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | busybox tr -s '\\t\\n' '  '";
    for extra in [
        &[][..],
        &["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"],
        &["--cap-add", "SYS_ADMIN", "--cap-drop", "CAP_CHOWN"],
        &["--cap-add", "net_admin", "--cap-drop", "mknod"],
        &["--security-opt", "no-new-privileges"],
    ] {
        let (code, out, _) = run_sh(docker, extra, status);
        steps.push((code, out));
    }
    // A cgroup namespace of its own shows the container's cgroup as the root.
    let (code, out, _) = run_sh(
        docker,
        &["--cgroupns", "private"],
        "busybox grep -c ':/$' /proc/self/cgroup",
    );
    steps.push((
        code,
        format!(
            "private cgroupns roots: {}",
            out.parse::<u32>().map_or(0, |n| n.min(1))
        ),
    ));
    let (code, out, _) = run_sh(docker, &[], "busybox grep -c ':/$' /proc/self/cgroup");
    steps.push((
        code,
        format!(
            "default cgroupns roots: {}",
            out.parse::<u32>().map_or(0, |n| n.min(1))
        ),
    ));
    let (code, _, err) = text(&docker(&[
        "create",
        "--name",
        "echoed",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        IMAGE,
        "true",
    ]));
    steps.push((code, err));
    let (code, out, _) = text(&docker(&[
        "inspect",
        "-f",
        "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} {{.HostConfig.Privileged}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.CgroupnsMode}}",
        "echoed",
    ]));
    steps.push((code, out));
    let (code, _, _) = text(&docker(&["rm", "echoed"]));
    steps.push((code, String::new()));
    steps
}

#[test]
fn netns_isolation_capabilities_and_privileges_as_docker() {
    if !netns_support::enabled("netns_isolation_capabilities_and_privileges_as_docker") {
        return;
    }
    let d = Berthd::start();
    let berth = privilege_steps(&|args| d.docker(args));
    assert_eq!(
        berth[1].1, "CapEff: 0000000000000400 CapBnd: 0000000000000400 NoNewPrivs: 0",
        "{berth:?}"
    );
    assert!(berth[4].1.ends_with("NoNewPrivs: 1"), "{berth:?}");
    // Privileged and `--cap-add ALL`: every capability berthd holds itself (this machine's
    // root lacks CAP_SYS_RESOURCE; dockerd asks for it anyway and cannot start the container).
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    let status = "busybox grep CapEff /proc/self/status | busybox tr -d '\\t'";
    for extra in [&["--privileged"][..], &["--cap-add", "ALL"]] {
        let (code, out, err) = run_sh(&|args| d.docker(args), extra, status);
        assert_eq!(
            (code, out),
            (0, format!("CapEff:{bnd}")),
            "{extra:?}: {err}"
        );
    }
    // Refused where the host cannot apply it, naming the option (dockerd ignores these).
    let (code, _, err) = text(&d.docker(&["create", "--security-opt", "apparmor=x", IMAGE]));
    assert_ne!(code, 0);
    assert!(
        err.contains("apparmor=x: AppArmor is not enabled on this host"),
        "{err}"
    );
    let (code, _, err) = text(&d.docker(&["create", "--cap-add", "BOGUS", IMAGE]));
    assert_ne!(code, 0);
    assert!(err.contains("unknown capability: \"CAP_BOGUS\""), "{err}");
    // Docker's masked paths read as empty.
    let (code, out, err) = run_sh(
        &|args| d.docker(args),
        &[],
        "for p in /proc/acpi /proc/asound /proc/interrupts /proc/kcore /proc/keys /proc/latency_stats /proc/sched_debug /proc/scsi /proc/timer_list /sys/firmware /sys/devices/virtual/powercap; do \
           if [ -d $p ]; then echo $p $(ls -A $p | busybox wc -l); elif [ -e $p ]; then echo $p $(busybox wc -c < $p); fi; done",
    );
    assert_eq!(code, 0, "{err}");
    for l in out.lines() {
        assert!(l.ends_with(" 0"), "not masked: {l}\n{out}");
    }
    assert!(out.contains("/proc/interrupts 0"), "{out}");
    let info = text(&d.docker(&["info", "-f", "{{json .SecurityOptions}}"])).1;
    match Dockerd::start() {
        Some(docker) => {
            let want = privilege_steps(&|args| docker.docker(args));
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
            // dockerd 20.10 calls the built-in profile "default"; Docker 23 and later "builtin".
            let theirs = text(&docker.docker(&["info", "-f", "{{json .SecurityOptions}}"])).1;
            assert_eq!(info, theirs.replace("profile=default", "profile=builtin"));
        }
        None => eprintln!("dockerd is not installed: berthd's privileges checked alone"),
    }
}

/// Runs `cmd` as user nobody (no groups): what any local user could do.
fn as_nobody(cmd: &[&str]) -> (i32, String, String) {
    text(
        &Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(cmd)
            .output()
            .unwrap(),
    )
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn netns_isolation_state_is_closed_to_other_users() {
    if !netns_support::enabled("netns_isolation_state_is_closed_to_other_users") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = Berthd::start();
    // Only berth's own modes protect its state here: the test's directory is open to all.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "-e",
            "SECRET=s3cret",
            IMAGE,
            "sh",
            "-c",
            "echo hello; sleep 1000",
        ])
        .trim()
        .to_string();
    let (data, run) = (d.dir.path().join("data"), d.dir.path().join("run"));
    let record = data.join("containers").join(&id).join("config.v2.json");
    let log = data
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    let spec = run.join("containers").join(&id).join("config.json");
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("hello")
    {
        assert!(t0.elapsed().as_secs() < 10, "no log at {}", log.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&record).unwrap().contains("s3cret"));
    for f in [&record, &log, &spec] {
        let (code, out, err) = as_nobody(&["cat", f.to_str().unwrap()]);
        assert!(
            code != 0 && !out.contains("s3cret") && err.contains("Permission denied"),
            "{}: {out} {err}",
            f.display()
        );
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    for dir in [
        data.join("image"),
        run.join("containers").join(&id).join("rootfs/bin"),
        data.join("volumes"),
    ] {
        let (code, _, err) = as_nobody(&["ls", dir.to_str().unwrap()]);
        assert!(
            code != 0 && err.contains("Permission denied"),
            "{}: {err}",
            dir.display()
        );
    }
    assert_eq!(mode(&d.sock), 0o660);
    let roots = (mode(&data), mode(&run));
    assert_eq!(roots, (0o710, 0o700));
    d.ok(&["rm", "-f", &id]);
    match Dockerd::start() {
        Some(docker) => {
            let dd = docker.dir.path();
            assert_eq!(
                roots,
                (mode(&dd.join("data")), mode(&dd.join("exec"))),
                "berthd (left) and dockerd (right)"
            );
        }
        None => eprintln!("dockerd is not installed: berthd's modes checked alone"),
    }
}

/// Namespaces, tmpfs, /dev/shm, sysctls and `--init`: what each step's container saw.
fn namespace_steps(docker: Docker) -> Vec<(i32, String)> {
    let mut steps = Vec::new();
    let sh = |extra: &[&str], cmd: &str| {
        let (code, out, err) = run_sh(docker, extra, cmd);
        (
            code,
            if code == 0 {
                out
            } else {
                err.lines().next().unwrap_or("").to_string()
            },
        )
    };
    steps.push(sh(
        &["--tmpfs", "/run:size=1m"],
        "busybox grep ' /run ' /proc/mounts",
    ));
    steps.push(sh(
        &["--tmpfs", "/scratch:exec,mode=700"],
        "busybox grep ' /scratch ' /proc/mounts",
    ));
    steps.push(sh(
        &["--shm-size", "2m"],
        "busybox grep ' /dev/shm ' /proc/mounts",
    ));
    steps.push(sh(&[], "busybox grep ' /dev/shm ' /proc/mounts"));
    steps.push(sh(
        &["--ipc", "none"],
        "[ -d /dev/shm ] && echo shm || echo no shm",
    ));
    steps.push(sh(
        &[
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "kernel.shmmax=1000",
        ],
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
    ));
    steps.push(sh(&["--uts", "host"], "busybox hostname"));
    steps.push(sh(
        &["--pid", "host"],
        "[ $(ls /proc | busybox grep -c '^[0-9]') -gt 3 ] && echo host pids",
    ));
    steps.push(sh(&[], "cat /proc/1/comm"));
    // PID 1 is the init with --init, and it reaps what is orphaned; without, nobody does.
    steps.push(sh(&["--init"], "cat /proc/1/comm"));
    for init in [false, true] {
        let mut args = vec!["run", "-d", "--network", "none"];
        if init {
            args.push("--init");
        }
        args.extend_from_slice(&[
            IMAGE,
            "sh",
            "-c",
            "(busybox sleep 0.1 &); exec busybox sleep 1000",
        ]);
        let (code, id, err) = text(&docker(&args));
        assert_eq!(code, 0, "{err}");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let (code, out, _) = text(&docker(&["exec", &id, "busybox", "ps", "-o", "stat"]));
        steps.push((
            code,
            format!(
                "init {init}: zombies {}",
                out.lines().filter(|l| l.starts_with('Z')).count()
            ),
        ));
        let _ = docker(&["rm", "-f", &id]);
    }
    let (code, _, err) = text(&docker(&[
        "run",
        "-d",
        "--name",
        "pidtarget",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "1000",
    ]));
    steps.push((code, err));
    steps.push(sh(
        &["--pid", "container:pidtarget"],
        "busybox tr '\\0' ' ' < /proc/1/cmdline",
    ));
    let _ = docker(&["rm", "-f", "pidtarget"]);
    let (code, _, err) = text(&docker(&[
        "create",
        "--name",
        "nsinspect",
        "--tmpfs",
        "/run:size=1m",
        "--shm-size",
        "2m",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--pid",
        "host",
        "--ipc",
        "shareable",
        "--uts",
        "host",
        "--init",
        IMAGE,
        "true",
    ]));
    steps.push((code, err));
    let (code, _, err) = text(&docker(&["create", "--name", "nsdefault", IMAGE, "true"]));
    steps.push((code, err));
    let f = "{{json .HostConfig.Tmpfs}} {{.HostConfig.ShmSize}} {{json .HostConfig.Sysctls}} {{.HostConfig.PidMode}} {{.HostConfig.IpcMode}} {{.HostConfig.UTSMode}} {{json .HostConfig.Init}}";
    for c in ["nsinspect", "nsdefault"] {
        let (code, out, _) = text(&docker(&["inspect", "-f", f, c]));
        steps.push((code, out));
        let _ = docker(&["rm", c]);
    }
    // --read-only: the root and the generated /etc files are read-only; /dev and /dev/shm stay
    // writable, as Docker keeps them.
    steps.push(sh(
        &["--read-only"],
        "for p in /x /tmp/x /run/x /dev/x /dev/shm/x /etc/hosts /etc/resolv.conf /etc/hostname; do if (echo >> $p) 2>/dev/null; then echo $p w; else echo $p ro; fi; done",
    ));
    // --ipc shareable and --ipc container:X: one IPC namespace (SysV segments, POSIX queues)
    // and one /dev/shm (POSIX shared memory).
    let run_d = |name: &str, ipc: &str, cmd: &str| {
        let (code, _, err) = text(&docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--ipc",
            ipc,
            IMAGE,
            "sh",
            "-c",
            cmd,
        ]));
        (code, err)
    };
    steps.push(run_d(
        "ipcdonor",
        "shareable",
        "echo shared > /dev/shm/x; exec sleep 1000",
    ));
    steps.push(run_d("ipcprivate", "private", "exec sleep 1000"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, donor_ns, _) = text(&docker(&[
        "exec",
        "ipcdonor",
        "busybox",
        "readlink",
        "/proc/self/ns/ipc",
    ]));
    let (code, out, err) = text(&docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ipc",
        "container:ipcdonor",
        IMAGE,
        "sh",
        "-c",
        "cat /dev/shm/x; echo joined > /dev/shm/y; busybox readlink /proc/self/ns/ipc",
    ]));
    let mut lines = out.lines();
    steps.push((
        code,
        format!(
            "{} same namespace: {} {err}",
            lines.next().unwrap_or(""),
            lines.next() == Some(donor_ns.trim()) && !donor_ns.trim().is_empty()
        ),
    ));
    steps.push(text_first(&docker(&[
        "exec",
        "ipcdonor",
        "cat",
        "/dev/shm/y",
    ])));
    // Only a shareable container's IPC can be joined, and only a running one's.
    let (code, _, err) = text(&docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ipc",
        "container:ipcprivate",
        IMAGE,
        "true",
    ]));
    steps.push((
        code,
        format!("non-shareable: {}", err.contains("non-shareable IPC")),
    ));
    let _ = docker(&["rm", "-f", "ipcdonor", "ipcprivate"]);
    steps
}

/// The exit code and stdout, or the first line of stderr on failure.
fn text_first(o: &Output) -> (i32, String) {
    let (code, out, err) = text(o);
    (
        code,
        if code == 0 {
            out
        } else {
            err.lines().next().unwrap_or("").to_string()
        },
    )
}

#[test]
fn netns_isolation_namespaces_tmpfs_sysctls_and_init_as_docker() {
    if !netns_support::enabled("netns_isolation_namespaces_tmpfs_sysctls_and_init_as_docker") {
        return;
    }
    let d = Berthd::start();
    let berth = namespace_steps(&|args| d.docker(args));
    assert!(berth[0].1.contains("size=1024k"), "{berth:?}");
    assert_eq!(berth[5].1, "1\n1000", "{berth:?}");
    assert_eq!(berth[9].1, "docker-init", "{berth:?}");
    assert_eq!(
        (berth[10].1.as_str(), berth[11].1.as_str()),
        ("init false: zombies 1", "init true: zombies 0"),
        "{berth:?}"
    );
    assert_eq!(berth[13].1, "sleep 1000", "{berth:?}");
    // The shareable container's host-side /dev/shm went with it.
    let root = d.dir.path().display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&root) && m.ends_with("/shm"))
        .collect();
    assert!(left.is_empty(), "left mounted: {left:?}");
    let n = berth.len();
    assert_eq!(berth[n - 3].1, "shared same namespace: true ", "{berth:?}");
    assert_eq!(berth[n - 2].1, "joined", "{berth:?}");
    assert_eq!(berth[n - 1].1, "non-shareable: true", "{berth:?}");
    // Refused by name.
    let (code, _, err) = text(&d.docker(&["create", "--tmpfs", "/t:bogus", IMAGE, "true"]));
    assert!(
        code != 0 && err.contains("unknown option \"bogus\""),
        "{err}"
    );
    match Dockerd::start() {
        Some(docker) => {
            let want = namespace_steps(&|args| docker.docker(args));
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
        }
        None => eprintln!("dockerd is not installed: berthd's namespaces checked alone"),
    }
}

/// `--device`, `--device-cgroup-rule` and `--group-add`: what each step's container saw.
fn device_steps(docker: Docker) -> Vec<(i32, String)> {
    let first_line = |(code, out, err): (i32, String, String)| {
        (
            code,
            if code == 0 {
                out
            } else {
                err.lines().next().unwrap_or("").to_string()
            },
        )
    };
    let mut steps = Vec::new();
    steps.push(first_line(run_sh(
        docker,
        &["--device", "/dev/null:/dev/mynull"],
        "echo hi > /dev/mynull && busybox stat -c '%F %t:%T %a' /dev/mynull",
    )));
    // loop-control (10:237) is in no runtime's default list: opened only when a rule allows it.
    let open_lc = "busybox mknod /tmp/lc c 10 237 && { (exec 3</tmp/lc) 2>/dev/null && echo opened || echo denied; }";
    steps.push(first_line(run_sh(docker, &[], open_lc)));
    steps.push(first_line(run_sh(
        docker,
        &["--device-cgroup-rule", "c 10:237 r"],
        open_lc,
    )));
    steps.push(first_line(run_sh(
        docker,
        &["--device", "/dev/loop-control:/dev/lc:r"],
        "(exec 3</dev/lc) && echo opened",
    )));
    steps.push(first_line(run_sh(
        docker,
        &["--group-add", "1234", "--group-add", "5678"],
        "busybox id -G",
    )));
    let (code, _, _) = run_sh(docker, &["--group-add", "nosuchgroup"], "true");
    steps.push((code, String::new()));
    let (code, _, _) = text(&docker(&[
        "create",
        "--device",
        "/etc/hostname",
        IMAGE,
        "true",
    ]));
    steps.push((code, String::new()));
    let (code, _, err) = text(&docker(&[
        "create",
        "--name",
        "devinspect",
        "--device",
        "/dev/null:/dev/mynull",
        "--device-cgroup-rule",
        "c 10:237 r",
        "--group-add",
        "1234",
        IMAGE,
        "true",
    ]));
    steps.push((code, err));
    let f = "{{json .HostConfig.Devices}} {{json .HostConfig.DeviceCgroupRules}} {{json .HostConfig.GroupAdd}}";
    steps.push(first_line(text(&docker(&[
        "inspect",
        "-f",
        f,
        "devinspect",
    ]))));
    let _ = docker(&["rm", "devinspect"]);
    steps
}

#[test]
fn netns_isolation_devices_and_groups_as_docker() {
    if !netns_support::enabled("netns_isolation_devices_and_groups_as_docker") {
        return;
    }
    let d = Berthd::start();
    let berth = device_steps(&|args| d.docker(args));
    assert_eq!(berth[0].1, "character special file 1:3 666", "{berth:?}");
    assert_eq!(
        (
            berth[1].1.as_str(),
            berth[2].1.as_str(),
            berth[3].1.as_str()
        ),
        ("denied", "opened", "opened"),
        "{berth:?}"
    );
    assert_eq!(berth[4].1, "0 1234 5678", "{berth:?}");
    assert_ne!(berth[5].0, 0, "an unknown group is refused: {berth:?}");
    assert_eq!(
        berth[6].0, 0,
        "a device is read from the host at start, as Docker: {berth:?}"
    );
    let (_, _, err) = text(&d.docker(&["run", "--device", "/etc/hostname", IMAGE, "true"]));
    assert!(
        err.contains("custom device \"/etc/hostname\": /etc/hostname is not a device node"),
        "{err}"
    );
    match Dockerd::start() {
        Some(docker) => {
            let want = device_steps(&|args| docker.docker(args));
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
        }
        None => eprintln!("dockerd is not installed: berthd's devices checked alone"),
    }
}

/// `docker cp` of a directory holding `.wh.` names into a container: what it holds after.
fn wh_steps(docker: Docker, src: &Path) -> Vec<(i32, String)> {
    let mut steps = Vec::new();
    let (code, id, err) = text(&docker(&[
        "run",
        "-d",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "busybox mkdir /data && echo kept > /data/keep && echo kept > /data/other && exec sleep 1000",
    ]));
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, _, err) = text(&docker(&[
        "cp",
        &format!("{}/.", src.display()),
        &format!("{id}:/data/"),
    ]));
    steps.push((code, err));
    let (code, out, err) = text(&docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cd /data && for f in .wh.keep .wh..wh..opq keep other; do echo $f $(cat $f); done",
    ]));
    steps.push((code, format!("{out}{err}")));
    let _ = docker(&["rm", "-f", &id]);
    steps
}

#[test]
fn netns_isolation_cp_holds_the_container_still_and_copies_wh_names_as_files() {
    if !netns_support::enabled(
        "netns_isolation_cp_holds_the_container_still_and_copies_wh_names_as_files",
    ) {
        return;
    }
    let d = Berthd::start();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join(".wh.keep"), "a file\n").unwrap();
    std::fs::write(src.path().join(".wh..wh..opq"), "another\n").unwrap();
    let berth = wh_steps(&|args| d.docker(args), src.path());
    assert_eq!(
        berth[1].1, ".wh.keep a file\n.wh..wh..opq another\nkeep kept\nother kept",
        "{berth:?}"
    );
    // A container swapping the target directory for a link out of its root, as fast as it
    // can, while files are copied in: nothing lands outside its root.
    let escape = format!("/tmp/berth-escape-{}", std::process::id());
    let racer = d.ok(&[
        "run", "-d", "--network", "none", IMAGE, "sh", "-c",
        &format!("busybox mkdir -p /w; while true; do busybox mv /w /w2; busybox ln -s /../../../../../../../..{escape} /w; busybox rm -f /w; busybox mv /w2 /w; done"),
    ]);
    let racer = racer.trim();
    let payload = src.path().join("payload");
    std::fs::write(&payload, "payload\n").unwrap();
    let mut copied = 0;
    for _ in 0..30 {
        if d.docker(&["cp", payload.to_str().unwrap(), &format!("{racer}:/w/")])
            .status
            .success()
        {
            copied += 1;
        }
    }
    assert!(
        !Path::new(&escape).exists(),
        "a copy landed outside the container at {escape}"
    );
    assert!(copied > 0, "no copy went through");
    let (code, out, _) = text(&d.docker(&["inspect", "-f", "{{.State.Status}}", racer]));
    assert_eq!(
        (code, out.as_str()),
        (0, "running"),
        "thawed after the copies"
    );
    // Not only recorded running: the kernel's freezer says thawed (v1 freezer.state, v2
    // cgroup.freeze).
    let v1 = format!(
        "/sys/fs/cgroup/freezer/{}/{racer}/freezer.state",
        d.cgroup_parent()
    );
    let v2 = format!("/sys/fs/cgroup/{}/{racer}/cgroup.freeze", d.cgroup_parent());
    let frozen = match (std::fs::read_to_string(&v1), std::fs::read_to_string(&v2)) {
        (Ok(s), _) => s.trim() != "THAWED",
        (_, Ok(s)) => s.trim() != "0",
        _ => panic!("no freezer state at {v1} or {v2}"),
    };
    assert!(!frozen, "the container is left frozen after the copies");
    let _ = d.docker(&["rm", "-f", racer]);
    match Dockerd::start() {
        Some(docker) => {
            let want = wh_steps(&|args| docker.docker(args), src.path());
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
        }
        None => eprintln!("dockerd is not installed: berthd's cp checked alone"),
    }
}

/// Limits at create and after `docker update`: what inspect echoes and what the container's
/// own cgroup files say.
fn resource_steps(docker: Docker) -> Vec<(i32, String)> {
    let mut steps = Vec::new();
    let (code, id, err) = text(&docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--cpu-shares",
        "512",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "50",
        IMAGE,
        "sleep",
        "1000",
    ]));
    assert_eq!(code, 0, "{err}");
    let f = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpuShares}} {{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpusetCpus}} {{.HostConfig.PidsLimit}} {{json .HostConfig.MemorySwappiness}} {{.HostConfig.RestartPolicy.Name}}";
    let files = "cd /sys/fs/cgroup && cat memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory/memory.soft_limit_in_bytes cpu/cpu.shares cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us cpuset/cpuset.cpus pids/pids.max | busybox tr '\\n' ' '";
    let look = |steps: &mut Vec<(i32, String)>| {
        let (code, out, _) = text(&docker(&["inspect", "-f", f, &id]));
        steps.push((code, out));
        let (code, out, err) = text(&docker(&["exec", &id, "sh", "-c", files]));
        steps.push((code, format!("{out}{err}")));
    };
    look(&mut steps);
    for args in [
        &[
            "--memory",
            "96m",
            "--cpu-shares",
            "256",
            "--pids-limit",
            "100",
            "--restart",
            "always",
        ][..],
        &["--memory", "256m"],
        &[
            "--memory",
            "256m",
            "--memory-swap",
            "512m",
            "--cpuset-cpus",
            "0-1",
        ],
    ] {
        let mut a = vec!["update"];
        a.extend_from_slice(args);
        a.push(&id);
        let (code, _, _) = text(&docker(&a));
        steps.push((code, String::new()));
        look(&mut steps);
    }
    let _ = docker(&["rm", "-f", &id]);
    steps
}

#[test]
fn netns_isolation_limits_and_docker_update_as_docker() {
    if !netns_support::enabled("netns_isolation_limits_and_docker_update_as_docker") {
        return;
    }
    let d = Berthd::start();
    let berth = resource_steps(&|args| d.docker(args));
    assert_eq!(
        berth[0].1, "67108864 134217728 33554432 512 50000 25000 0 50 null no",
        "{berth:?}"
    );
    assert_eq!(
        berth[1].1, "67108864 134217728 33554432 512 50000 25000 0 50",
        "{berth:?}"
    );
    assert_eq!(berth[2].0, 0, "{berth:?}");
    assert_eq!(
        berth[4].1, "100663296 134217728 33554432 256 50000 25000 0 100",
        "{berth:?}"
    );
    assert_ne!(
        berth[5].0, 0,
        "memory above the swap limit without it: {berth:?}"
    );
    // Refused by name where this host cannot apply it.
    let (code, _, err) = text(&d.docker(&["create", "--blkio-weight", "300", IMAGE, "true"]));
    assert!(code != 0 && err.contains("--blkio-weight"), "{err}");
    match Dockerd::start() {
        Some(docker) => {
            let want = resource_steps(&|args| docker.docker(args));
            assert_eq!(berth, want, "berthd (left) and dockerd (right)");
        }
        None => eprintln!("dockerd is not installed: berthd's limits checked alone"),
    }
}
