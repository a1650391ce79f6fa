//! A container from the busybox test image run by the OCI runtime (runc or crun from Debian):
//! the image's snapshots stacked by overlayfs as the bundle's rootfs, the spec berth generates,
//! and the runtime's exit code and output. Privileged (mounts, namespaces, cgroups); run
//! through scripts/netns-test.sh.

#[path = "../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use engine::image::layer::fixtures::busybox_rootfs;
use engine::image::store::ImageStore;
use engine::runtime::logs::{Rotation, read_all};
use engine::runtime::oci::{OciRuntime, RuncLike};
use engine::runtime::shim::{self, ShimConfig, read_exit};
use engine::runtime::spec::{OciMount, SpecInput, spec};
use engine::runtime::{env, user};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

struct Mounted(PathBuf);

/// Force-deletes the test's containers, even when an assertion fails half-way.
struct Containers(RuncLike, Vec<&'static str>);

impl Drop for Containers {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = self.0.delete(id, true);
        }
    }
}

/// Removes the test's parent cgroup (`berth-test`, left empty by the runtime) in every
/// hierarchy, v1 and v2.
struct CgroupParent;

impl Drop for CgroupParent {
    fn drop(&mut self) {
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let _ = fs::remove_dir(e.path().join("berth-test"));
            }
        }
        let _ = fs::remove_dir("/sys/fs/cgroup/berth-test");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// A bundle on the busybox image: overlay rootfs, generated /etc files, config.json.
struct Bundle {
    dir: PathBuf,
    _rootfs: Mounted,
}

fn bundle(
    root: &Path,
    store: &ImageStore,
    id: &str,
    args: &[&str],
    extra: Vec<OciMount>,
) -> Bundle {
    let img = store.resolve("berth-test/busybox").unwrap();
    let chains: Vec<_> = img.layers.iter().map(|l| l.chain_id.clone()).collect();
    let dir = root.join("containers").join(id);
    let ov = store.snapshots().overlay(&chains, &dir).unwrap();
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(ov.options().as_str()),
    )
    .unwrap();
    let mounted = Mounted(rootfs.clone());
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).unwrap();
    let hostname = &id[..12];
    fs::write(etc.join("hostname"), format!("{hostname}\n")).unwrap();
    fs::write(
        etc.join("hosts"),
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost\n{hostname}\n"),
    )
    .unwrap();
    fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.11\n").unwrap();
    let ids = user::resolve(
        "",
        &fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default(),
        "",
    )
    .unwrap();
    let cfg = spec(&SpecInput {
        caps: engine::runtime::caps::DEFAULT.map(String::from).to_vec(),
        seccomp: None,
        no_new_privileges: false,
        apparmor: None,
        privileged: false,
        masked_paths: None,
        readonly_paths: None,
        oom_score_adj: 0,
        devices: vec![],
        device_rules: vec![],
        cgroupns: false,
        pid_ns: Default::default(),
        ipc_ns: Default::default(),
        uts_ns: Default::default(),
        shm: engine::runtime::spec::DevShm::Tmpfs(64 << 20),
        sysctls: Default::default(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env::merge(&[], &[("GREETING".into(), "hello".into())], hostname),
        cwd: "/".into(),
        user: ids,
        hostname: hostname.into(),
        domainname: None,
        terminal: false,
        read_only_root: false,
        netns: None,
        host_network: false,
        etc_dir: Some(etc.display().to_string()),
        mounts: extra,
        rlimits: vec![],
        host_nofile_hard: nix::sys::resource::getrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
        )
        .unwrap()
        .1,
        resources: serde_json::json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 64}}),
        cgroups_path: format!("/berth-test/{id}"),
    });
    fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    Bundle {
        dir,
        _rootfs: mounted,
    }
}

fn run(rt: &RuncLike, b: &Bundle, id: &str) -> (i32, String) {
    let out = b.dir.join("stdout");
    let f = fs::File::create(&out).unwrap();
    let code = rt
        .run(
            id,
            &b.dir,
            [
                Stdio::null(),
                Stdio::from(f.try_clone().unwrap()),
                Stdio::from(f),
            ],
        )
        .unwrap();
    (code, fs::read_to_string(out).unwrap())
}

#[test]
fn netns_runtime_runs_the_busybox_image_with_berths_spec() {
    if !netns_support::enabled("netns_runtime_runs_the_busybox_image_with_berths_spec") {
        return;
    }
    let _cgroups = CgroupParent;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("image")).unwrap();
    store
        .import(&busybox_rootfs().unwrap()[..], Some("berth-test/busybox"))
        .unwrap();
    let rt = RuncLike::find(None, &dir.path().join("runtime")).expect("crun or runc installed");

    // Output, PID 1, hostname and environment as the spec says.
    let id = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2";
    let b = bundle(
        dir.path(),
        &store,
        id,
        &[
            "sh",
            "-c",
            "echo $GREETING $$ $(cat /etc/hostname) $HOSTNAME; cat /etc/resolv.conf",
        ],
        vec![],
    );
    let (code, out) = run(&rt, &b, id);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "hello 1 a1b2c3d4e5f6 a1b2c3d4e5f6\nnameserver 127.0.0.11\n"
    );
    // The container's cgroup is gone with it.
    assert!(
        !Path::new("/sys/fs/cgroup/pids/berth-test")
            .join(id)
            .exists()
    );

    // The exit code comes through; a write lands in the upper layer, not the image's snapshot.
    let id2 = "b1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2";
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("in.txt"), "from the host\n").unwrap();
    let mounts = vec![OciMount::bind(
        host.path().to_str().unwrap(),
        "/data",
        false,
        "rprivate",
    )];
    let b2 = bundle(
        dir.path(),
        &store,
        id2,
        &[
            "sh",
            "-c",
            "cat /data/in.txt; echo made > /tmp/new; echo out > /data/out.txt; exit 3",
        ],
        mounts,
    );
    let (code, out) = run(&rt, &b2, id2);
    assert_eq!((code, out.as_str()), (3, "from the host\n"));
    assert_eq!(
        fs::read_to_string(b2.dir.join("upper/tmp/new")).unwrap(),
        "made\n"
    );
    assert_eq!(
        fs::read_to_string(host.path().join("out.txt")).unwrap(),
        "out\n"
    );
    let img = store.resolve("berth-test/busybox").unwrap();
    assert!(
        !store
            .snapshots()
            .path(&img.layers[0].chain_id)
            .join("tmp/new")
            .exists()
    );

    // Masked and read-only paths, and the capability set.
    let id3 = "c1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2";
    let b3 = bundle(
        dir.path(),
        &store,
        id3,
        &[
            "sh",
            "-c",
            "busybox wc -c < /proc/timer_list; echo x 2>/dev/null > /proc/sys/kernel/hostname || echo ro; busybox grep CapBnd /proc/self/status",
        ],
        vec![],
    );
    let (_, out) = run(&rt, &b3, id3);
    assert!(
        out.starts_with("0\n"),
        "/proc/timer_list is masked (the host's is not empty): {out}"
    );
    assert!(out.contains("ro\n"), "/proc/sys is read-only: {out}");
    assert!(
        out.contains("CapBnd:\t00000000a80425fb"),
        "Docker's default capabilities: {out}"
    );
    let prefix = dir.path().display().to_string();
    drop((b, b2, b3));
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&prefix), "no overlay left mounted");
}

fn wait_exit(state: &Path) -> shim::ExitRecord {
    for _ in 0..200 {
        if let Some(r) = read_exit(state) {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "no exit record in {}: {}",
        state.display(),
        fs::read_to_string(state.join("shim.log")).unwrap_or_default()
    );
}

fn shim_for(dir: &Path, rt: &RuncLike, b: &Bundle, id: &str) -> ShimConfig {
    let state = dir.join("run").join(id);
    ShimConfig {
        id: id.into(),
        bundle: b.dir.clone(),
        log_path: Some(state.join(format!("{id}-json.log"))),
        state_dir: state,
        runtime: rt.binary().to_path_buf(),
        runtime_root: dir.join("runtime"),
        runtime_args: rt.args().to_vec(),
        rotation: Rotation::default(),
        io: Default::default(),
        exec: None,
    }
}

#[test]
fn netns_runtime_shim_keeps_logs_exit_codes_and_docker_stop_semantics() {
    if !netns_support::enabled("netns_runtime_shim_keeps_logs_exit_codes_and_docker_stop_semantics")
    {
        return;
    }
    let _cgroups = CgroupParent;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("image")).unwrap();
    store
        .import(&busybox_rootfs().unwrap()[..], Some("berth-test/busybox"))
        .unwrap();
    let rt = RuncLike::find(None, &dir.path().join("runtime")).expect("crun or runc installed");
    let shim_bin = PathBuf::from(env!("CARGO_BIN_EXE_berth-shim"));
    let ids: [&'static str; 5] = [
        "d1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
        "e1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
        "f1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
        "a9b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
        "a8b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
    ];
    let _containers = Containers(rt.clone(), ids.to_vec());

    // Output into the json-file log, stdout and stderr apart; the exit code recorded.
    let id = ids[0];
    let b = bundle(
        dir.path(),
        &store,
        id,
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
        vec![],
    );
    let cfg = shim_for(dir.path(), &rt, &b, id);
    let pid = shim::spawn(&shim_bin, &cfg, None).unwrap().pid;
    assert!(pid > 1);
    let rec = wait_exit(&cfg.state_dir);
    assert_eq!((rec.exit_code, rec.oom_killed), (7, false));
    let mut lines: Vec<(String, String)> = read_all(cfg.log_path.as_ref().unwrap(), 1)
        .unwrap()
        .into_iter()
        .map(|l| (l.stream, l.log))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            ("stderr".to_string(), "err\n".to_string()),
            ("stdout".into(), "out\n".into())
        ]
    );
    assert!(rt.state(id).is_err(), "deleted from the runtime");

    // The shim is in its own session, not the caller's child: it outlives the daemon.
    let id2 = ids[1];
    let b2 = bundle(
        dir.path(),
        &store,
        id2,
        &[
            "sh",
            "-c",
            "trap 'exit 143' TERM; while true; do sleep 0.1; done",
        ],
        vec![],
    );
    let cfg2 = shim_for(dir.path(), &rt, &b2, id2);
    shim::spawn(&shim_bin, &cfg2, None).unwrap();
    let shim_pid: i32 = fs::read_to_string(cfg2.state_dir.join("shim.pid"))
        .unwrap()
        .parse()
        .unwrap();
    let stat = fs::read_to_string(format!("/proc/{shim_pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_ne!(
        fields[1].parse::<u32>().unwrap(),
        std::process::id(),
        "reparented away from the caller"
    );
    let my_session = nix::unistd::getsid(None).unwrap().as_raw();
    assert_ne!(
        fields[3].parse::<i32>().unwrap(),
        my_session,
        "its own session"
    );
    assert_eq!(rt.state(id2).unwrap().status, "running");
    // docker stop: SIGTERM; a process that handles it exits 143.
    rt.kill(id2, "TERM", false).unwrap();
    assert_eq!(wait_exit(&cfg2.state_dir).exit_code, 143);

    // PID 1 without a TERM handler ignores it; SIGKILL after the timeout gives 137.
    let id3 = ids[2];
    let b3 = bundle(dir.path(), &store, id3, &["sleep", "1000"], vec![]);
    let cfg3 = shim_for(dir.path(), &rt, &b3, id3);
    shim::spawn(&shim_bin, &cfg3, None).unwrap();
    rt.kill(id3, "TERM", false).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        rt.state(id3).unwrap().status,
        "running",
        "TERM ignored by PID 1"
    );
    rt.kill(id3, "KILL", false).unwrap();
    assert_eq!(wait_exit(&cfg3.state_dir).exit_code, 137);

    // Over the 64 MiB memory limit: killed by the OOM killer, and reported so.
    let id4 = ids[3];
    let b4 = bundle(
        dir.path(),
        &store,
        id4,
        &[
            "sh",
            "-c",
            "x=$(busybox head -c 200000000 /dev/zero | busybox tr '\\0' a); echo survived",
        ],
        vec![],
    );
    let cfg4 = shim_for(dir.path(), &rt, &b4, id4);
    shim::spawn(&shim_bin, &cfg4, None).unwrap();
    let rec = wait_exit(&cfg4.state_dir);
    assert!(rec.oom_killed, "{rec:?}");
    assert_eq!(rec.exit_code, 137, "{rec:?}");

    // A bundle the runtime refuses: an error naming it, nothing left running.
    let id5 = ids[4];
    let b5 = bundle(dir.path(), &store, id5, &["/no/such/program"], vec![]);
    let cfg5 = shim_for(dir.path(), &rt, &b5, id5);
    let e = shim::spawn(&shim_bin, &cfg5, None).unwrap_err();
    assert!(e.to_string().contains(id5), "{e}");
    assert!(rt.state(id5).is_err());
    drop((b, b2, b3, b4, b5));
}
