//! Docker's volume rules through the real docker CLI, the same steps against berthd and
//! dockerd in the same test: a volume a stopped container mounts is refused removal (naming
//! the container's ID), `rm -v` takes a container's anonymous volume with it, and a volume is
//! free again once its container is gone. Volume requests never take the engine's lock: many
//! `volume ls` and `volume create` go on while containers are created and removed. Privileged:
//! run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

mod support;

use std::process::Output;

use support::{Berthd, Dockerd, IMAGE};

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    )
}

/// The steps, with container IDs and anonymous volume names written as `ID` and `ANON`.
fn volume_steps(docker: &dyn Fn(&[&str]) -> Output) -> Vec<(i32, String)> {
    let mut steps = Vec::new();
    let (code, user, _) = text(&docker(&[
        "create",
        "--name",
        "user",
        "--network",
        "none",
        "-v",
        "shared:/data",
        IMAGE,
        "true",
    ]));
    steps.push((code, String::new()));
    let (code, anon, _) = text(&docker(&[
        "create",
        "--name",
        "anon",
        "--network",
        "none",
        "-v",
        "/anon",
        IMAGE,
        "true",
    ]));
    steps.push((code, String::new()));
    let (_, anon_vol, _) = text(&docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}}{{end}}",
        "anon",
    ]));
    let clean = |s: String| {
        let mut s = s.replace(&user, "ID").replace(&anon, "ID");
        if !anon_vol.is_empty() {
            s = s.replace(&anon_vol, "ANON");
        }
        s
    };
    let mut step = |args: &[&str]| {
        let (code, out, err) = text(&docker(args));
        steps.push((code, clean(format!("{out}{err}"))));
    };
    step(&["volume", "rm", "shared"]);
    step(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "shared"]);
    step(&["volume", "inspect", "-f", "{{.Name}}", &anon_vol]);
    step(&["rm", "-v", "anon"]);
    step(&["volume", "inspect", "-f", "{{.Name}}", &anon_vol]);
    step(&["rm", "user"]);
    step(&["volume", "rm", "shared"]);
    step(&["volume", "ls", "-q", "--filter", "name=shared"]);
    steps
}

#[test]
fn netns_volumes_follow_docker() {
    if !netns_support::enabled("netns_volumes_follow_docker") {
        return;
    }
    let d = Berthd::start();
    let berth = volume_steps(&|args| d.docker(args));
    // Spelled out, so a failure here says what berthd did without dockerd.
    assert_eq!(
        berth[2],
        (
            1,
            "Error response from daemon: remove shared: volume is in use - [ID]".to_string()
        ),
        "{berth:#?}"
    );
    assert_eq!(berth[3], (0, "shared local".to_string()), "{berth:#?}");
    assert_eq!(berth[6].0, 1, "rm -v took the anonymous volume: {berth:#?}");
    assert_eq!(berth[8], (0, "shared".to_string()), "{berth:#?}");
    assert_eq!(berth[9], (0, String::new()), "{berth:#?}");
    match Dockerd::start() {
        Some(docker) => {
            let want = volume_steps(&|args| docker.docker(args));
            for (i, (b, w)) in berth.iter().zip(&want).enumerate() {
                assert_eq!(b, w, "step {i}: berthd said {b:?}, dockerd {w:?}");
            }
            assert_eq!(berth.len(), want.len());
        }
        None => eprintln!("dockerd is not installed: berthd's volumes checked alone"),
    }
}

#[test]
fn netns_volumes_answer_while_containers_come_and_go() {
    if !netns_support::enabled("netns_volumes_answer_while_containers_come_and_go") {
        return;
    }
    let d = Berthd::start();
    std::thread::scope(|s| {
        let churn = s.spawn(|| {
            for i in 0..10 {
                let name = format!("c{i}");
                let (code, _, err) = text(&d.docker(&[
                    "create",
                    "--name",
                    &name,
                    "--network",
                    "none",
                    "-v",
                    "/scratch",
                    IMAGE,
                    "true",
                ]));
                assert_eq!(code, 0, "{err}");
                let (code, _, err) = text(&d.docker(&["rm", "-v", &name]));
                assert_eq!(code, 0, "{err}");
            }
        });
        for i in 0..10 {
            let name = format!("v{i}");
            let (code, _, err) = text(&d.docker(&["volume", "create", &name]));
            assert_eq!(code, 0, "{err}");
            let (code, out, err) = text(&d.docker(&["volume", "ls", "-q"]));
            assert_eq!(code, 0, "{err}");
            assert!(out.lines().any(|l| l == name), "{out}");
        }
        churn.join().unwrap();
    });
    // Every anonymous volume went with its container; the named ones stay.
    let (_, out, _) = text(&d.docker(&["volume", "ls", "-q"]));
    let mut left: Vec<&str> = out.lines().collect();
    left.sort();
    let want: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    assert_eq!(left, want);
}

/// Volume and network changes as `docker events` reports them, from both backends.
fn event_steps(docker: &dyn Fn(&[&str]) -> Output) -> Vec<String> {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let since = now().to_string();
    for args in [
        &["volume", "create", "ev1"][..],
        &["volume", "rm", "ev1"],
        &["network", "create", "evnet"],
        &["network", "rm", "evnet"],
        &["network", "create", "evidle"],
        &["network", "prune", "-f"],
        // An anonymous volume its container left (rm without -v), then pruned.
        &[
            "create",
            "--name",
            "leaver",
            "--network",
            "none",
            "-v",
            "/x",
            IMAGE,
            "true",
        ],
    ] {
        let (code, _, err) = text(&docker(args));
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (_, anon, _) = text(&docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}}{{end}}",
        "leaver",
    ]));
    let (_, leaver, _) = text(&docker(&["inspect", "-f", "{{.Id}}", "leaver"]));
    for args in [&["rm", "leaver"][..], &["volume", "prune", "-f"]] {
        let (code, _, err) = text(&docker(args));
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    // Containers and images pruned.
    let (_, pruned, err) = text(&docker(&["create", "--network", "none", IMAGE, "true"]));
    assert!(!pruned.is_empty(), "{err}");
    for args in [&["container", "prune", "-f"][..], &["image", "prune", "-f"]] {
        let (code, _, err) = text(&docker(args));
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let until = (now() + 1).to_string();
    let (code, out, err) = text(&docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=volume",
        "--filter",
        "type=network",
        "--filter",
        "type=container",
        "--filter",
        "type=image",
        "--format",
        "{{.Type}} {{.Action}} {{if eq .Type \"network\"}}{{.Actor.Attributes.name}}{{else}}{{.Actor.ID}}{{end}} {{.Actor.Attributes.reclaimed}}",
    ]));
    assert_eq!(code, 0, "{err}");
    let mut out = out;
    for (id, name) in [(&anon, "ANON"), (&leaver, "LEAVER"), (&pruned, "PRUNED")] {
        if !id.is_empty() {
            out = out.replace(id.as_str(), name);
        }
    }
    // From the test's first step on (a daemon's set-up, such as loading the test image in the
    // same second, is not the test's).
    out.lines()
        .map(String::from)
        .skip_while(|l| !l.starts_with("volume create ev1"))
        .collect()
}

#[test]
fn netns_volumes_and_networks_report_their_changes_as_docker_does() {
    if !netns_support::enabled("netns_volumes_and_networks_report_their_changes_as_docker_does") {
        return;
    }
    let d = Berthd::start();
    let berth = event_steps(&|args| d.docker(args));
    assert_eq!(
        berth,
        [
            "volume create ev1 <no value>",
            "volume destroy ev1 <no value>",
            "network create evnet <no value>",
            "network destroy evnet <no value>",
            "network create evidle <no value>",
            "network destroy evidle <no value>",
            "network prune <no value> 0",
            "volume create ANON <no value>",
            "container create LEAVER <no value>",
            "container destroy LEAVER <no value>",
            "volume prune  0",
            "container create PRUNED <no value>",
            "container destroy PRUNED <no value>",
            "container prune  0",
            "image prune  0",
        ],
        "berthd's events"
    );
    match Dockerd::start() {
        Some(docker) => assert_eq!(berth, event_steps(&|args| docker.docker(args))),
        None => eprintln!("dockerd is not installed: berthd's events checked alone"),
    }
}
