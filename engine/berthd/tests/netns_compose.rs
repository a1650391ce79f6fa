//! Debian's docker-compose 1.29 (a docker-py client) drives berthd through the life of a
//! three-service project (two networks, an alias, a named volume, a published port, a health
//! condition): up, ps, exec, run --rm, logs, scale, restart, stop/start, a second up that
//! recreates nothing, down -v. The same script runs against a throwaway dockerd in the same
//! test, and the two must print the same facts. Privileged: run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;
mod support;

use std::path::Path;
use std::process::Command;

use support::{Berthd, Dockerd, IMAGE};

fn drive(host: &str, port: u16) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose/drive.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("DOCKER_HOST", host)
        .env("IMAGE", IMAGE)
        .env("PORT", port.to_string())
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "drive.sh against {host}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn netns_compose_project_lives_as_on_dockerd() {
    if !netns_support::enabled("netns_compose_project_lives_as_on_dockerd") {
        return;
    }
    assert!(
        Command::new("docker-compose")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "docker-compose (Debian package docker-compose) is installed by scripts/test.sh"
    );
    let d = Berthd::start();
    let ours = drive(&format!("unix://{}", d.sock.display()), 18094);
    drop(d);
    for fact in [
        "up: bcompose_client_1 bcompose_db_1 bcompose_web_1 \n",
        "db health: healthy\n",
        "web started after db was healthy\n",
        "web networks: bcompose_back bcompose_front \n",
        "db aliases on back: database db \n",
        "published: hello-compose\n",
        "client to web: hello-compose\n",
        "web to database: resolves\n",
        // client is not on `back`.
        "client to database: unresolved\n",
        "second up: bcompose_client_1 is up-to-date bcompose_db_1 is up-to-date bcompose_web_1 is up-to-date \n",
        "exec: db-data\n",
        "run: ran-ok\n",
        "logs: 1\n",
        "scaled: bcompose_client_1 bcompose_client_2 bcompose_db_1 bcompose_web_1 \n",
        "stopped: 0\n",
        "started: 4\n",
        "volume kept: db-data\n",
        "down: containers 0 volumes 0 networks 0\n",
    ] {
        assert!(ours.contains(fact), "berthd: no {fact:?} in:\n{ours}");
    }
    assert!(!ours.contains("FAILED"), "berthd:\n{ours}");
    let Some(dockerd) = Dockerd::start() else {
        eprintln!("no dockerd here: compared with the facts above only");
        return;
    };
    let theirs = drive(&dockerd.host, 18095);
    assert_eq!(ours, theirs, "berthd (left) and dockerd (right) differ");
}
