//! `berth cp` (and the docker CLI's `docker cp`) against berthd end to end: files and
//! directories in and out of a running container, out of and into a stopped one, into a volume
//! mount, a tar on stdout, a missing path, and symlinks in the container that point at the
//! host's files never reaching them. Privileged: run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

#[path = "../../berthd/tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use support::{Berthd, DOCKER, IMAGE};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn netns_berth_cp() {
    if !netns_support::enabled("netns_berth_cp") {
        return;
    }
    let d = Berthd::start().with_client(Path::new(BERTH));
    let scratch = d.dir.path().join("scratch");
    fs::create_dir_all(scratch.join("tree/sub")).unwrap();
    fs::write(scratch.join("hello.txt"), "hello cp\n").unwrap();
    fs::write(scratch.join("tree/top.txt"), "top\n").unwrap();
    fs::write(scratch.join("tree/sub/deep.txt"), "deep\n").unwrap();
    let s = |p: &str| scratch.join(p).display().to_string();

    d.ok(&["volume", "create", "cpvol"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-v",
        "cpvol:/data",
        IMAGE,
        "sleep",
        "3600",
    ]);
    let cat = |p: &str| d.ok(&["exec", "web", "cat", p]);

    // In: a file into a directory, a directory into a directory, a directory to a new name.
    let out = d.docker(&["cp", &s("hello.txt"), "web:/tmp/"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let msg = text(&out.stderr);
    assert!(
        msg.starts_with("Successfully copied ") && msg.trim_end().ends_with(" to web:/tmp/"),
        "{msg}"
    );
    assert_eq!(cat("/tmp/hello.txt"), "hello cp\n");
    d.ok(&["cp", &s("tree"), "web:/tmp/"]);
    assert_eq!(cat("/tmp/tree/sub/deep.txt"), "deep\n");
    d.ok(&["cp", &s("tree"), "web:/tmp/renamed"]);
    assert_eq!(cat("/tmp/renamed/top.txt"), "top\n");
    d.ok(&["cp", &s("hello.txt"), "web:/tmp/other.txt"]);
    assert_eq!(cat("/tmp/other.txt"), "hello cp\n");
    // Contents only (`DIR/.`).
    d.ok(&["exec", "web", "busybox", "mkdir", "-p", "/tmp/flat"]);
    d.ok(&["cp", &format!("{}/.", s("tree")), "web:/tmp/flat"]);
    assert_eq!(cat("/tmp/flat/top.txt"), "top\n");

    // Out: a file into a directory, a directory to a new name, contents only.
    fs::create_dir(scratch.join("out")).unwrap();
    let out = d.docker(&["cp", "web:/tmp/hello.txt", &s("out")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Successfully copied"));
    assert_eq!(
        fs::read_to_string(scratch.join("out/hello.txt")).unwrap(),
        "hello cp\n"
    );
    d.ok(&["cp", "web:/tmp/tree", &s("out/tree2")]);
    assert_eq!(
        fs::read_to_string(scratch.join("out/tree2/sub/deep.txt")).unwrap(),
        "deep\n"
    );
    d.ok(&["cp", "web:/tmp/tree/.", &s("out")]);
    assert_eq!(
        fs::read_to_string(scratch.join("out/top.txt")).unwrap(),
        "top\n"
    );

    // `-`: a tar on stdout.
    let out = d.docker(&["cp", "web:/tmp/hello.txt", "-"]);
    assert!(out.status.success());
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.path().unwrap().display().to_string(), "hello.txt");
    let mut body = String::new();
    e.read_to_string(&mut body).unwrap();
    assert_eq!(body, "hello cp\n");

    // A missing path: exit 1 with Docker's message.
    let out = d.docker(&["cp", "web:/nope", &s("out/nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("Error response from daemon: Could not find the file /nope in container web"),
        "{}",
        text(&out.stderr)
    );

    // A volume: what is copied under its mount point is in the volume.
    d.ok(&["cp", &s("hello.txt"), "web:/data/"]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "cpvol:/v",
            IMAGE,
            "cat",
            "/v/hello.txt"
        ]),
        "hello cp\n"
    );

    // Symlinks pointing at the host's files resolve inside the container.
    fs::write(scratch.join("secret.txt"), "host secret\n").unwrap();
    let escape = format!("/../../../../../..{}", scratch.display());
    d.ok(&["exec", "web", "busybox", "ln", "-s", &escape, "/tmp/esc"]);
    d.ok(&[
        "exec",
        "web",
        "busybox",
        "ln",
        "-s",
        "/../../../../../..",
        "/tmp/up",
    ]);
    let out = d.docker(&["cp", "web:/tmp/esc/secret.txt", &s("out/stolen")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!scratch.join("out/stolen").exists());
    let out = d.docker(&["cp", "-L", "web:/tmp/esc", &s("out/stolen")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!scratch.join("out/stolen").exists());
    fs::write(scratch.join("intruder.txt"), "intruder\n").unwrap();
    let out = d.docker(&["cp", &s("intruder.txt"), "web:/tmp/esc/"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Into `/tmp/up` (the container's own `/`): lands in the container, not the host's `/`.
    d.ok(&["cp", &s("intruder.txt"), "web:/tmp/up/"]);
    assert_eq!(cat("/intruder.txt"), "intruder\n");
    assert!(!Path::new("/intruder.txt").exists());
    let esc_dir = scratch.join("out/escdir");
    d.ok(&["cp", "web:/tmp/up/etc", &esc_dir.display().to_string()]);
    assert_eq!(
        fs::read_to_string(esc_dir.join("passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    assert_eq!(
        fs::read_to_string(scratch.join("secret.txt")).unwrap(),
        "host secret\n"
    );

    // The real docker CLI, both ways.
    let docker = |args: &[&str]| {
        Command::new(DOCKER)
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = docker(&["cp", &s("hello.txt"), "web:/tmp/from-docker.txt"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(cat("/tmp/from-docker.txt"), "hello cp\n");
    let out = docker(&["cp", "web:/tmp/tree", &s("out/docker-tree")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(scratch.join("out/docker-tree/sub/deep.txt")).unwrap(),
        "deep\n"
    );

    // A stopped container: out of it and into it; nothing stays mounted.
    d.ok(&["stop", "-t", "1", "web"]);
    d.ok(&["cp", "web:/tmp/hello.txt", &s("out/stopped.txt")]);
    assert_eq!(
        fs::read_to_string(scratch.join("out/stopped.txt")).unwrap(),
        "hello cp\n"
    );
    d.ok(&["cp", &s("tree"), "web:/tmp/while-stopped"]);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/archive/"), "{mounts}");
    d.ok(&["start", "web"]);
    assert_eq!(cat("/tmp/while-stopped/sub/deep.txt"), "deep\n");
    d.ok(&["rm", "-f", "web"]);
}
