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
use engine::runtime::oci::{OciRuntime, RuncLike};
use engine::runtime::spec::{OciMount, SpecInput, spec};
use engine::runtime::{env, user};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

struct Mounted(PathBuf);

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
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env::merge(&[], &[("GREETING".into(), "hello".into())], hostname),
        cwd: "/".into(),
        user: ids,
        hostname: hostname.into(),
        terminal: false,
        read_only_root: false,
        netns: None,
        etc_dir: Some(etc.display().to_string()),
        mounts: extra,
        rlimits: vec![],
        host_nofile_hard: nix::sys::resource::getrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
        )
        .unwrap()
        .1,
        memory: Some(64 << 20),
        cpus: None,
        pids: Some(64),
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
    let mut store = ImageStore::open(&dir.path().join("image")).unwrap();
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
