//! What clients send and read back, against a throwaway dockerd in the same test:
//! tests/fidelity/roundtrip.py creates a container with most HostConfig and Config fields set
//! and prints each as inspect returns it, the set of HostConfig keys, StopSignal at stop, log
//! drivers `none` and `local`, an unknown log driver, swarm endpoints, kill then rm, `docker
//! diff`, one image's save; the lines
//! must be the same on both daemons, and /info must carry every key dockerd's has.
//! tests/fidelity/commit.py does the same for `docker commit`, `docker export` and `docker
//! import --change`, through the docker CLI and docker-py; links.py for legacy links and
//! `docker rm --link`; endpoints.py for endpoint settings at run and at `network connect`.
//! Privileged: run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::{Berthd, Dockerd, IMAGE};

/// The lines tests/fidelity/SCRIPT prints against `host` (the script must succeed).
fn script_lines(script: &str, host: &str) -> Vec<String> {
    script_lines_with(script, host, &[])
}

/// [`script_lines`] with more environment.
fn script_lines_with(script: &str, host: &str, env: &[(&str, &str)]) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fidelity")
        .join(script);
    let out = Command::new("python3")
        .arg(path)
        .envs(env.iter().copied())
        .env("DOCKER_HOST", host)
        .env("IMAGE", IMAGE)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} against {host}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines().map(String::from).collect()
}

/// roundtrip.py's lines but the /info keys, and those keys.
fn facts(host: &str) -> (Vec<String>, BTreeSet<String>) {
    let text = script_lines("roundtrip.py", host);
    let mut keys = BTreeSet::new();
    let mut lines = Vec::new();
    for l in text {
        match l.strip_prefix("info-keys ") {
            Some(k) => keys = k.split_whitespace().map(String::from).collect(),
            None => lines.push(l),
        }
    }
    (lines, keys)
}

#[test]
fn netns_api_fidelity_as_dockerd() {
    if !netns_support::enabled("netns_api_fidelity_as_dockerd") {
        return;
    }
    let d = Berthd::start();
    let (ours, our_keys) = facts(&format!("unix://{}", d.sock.display()));
    drop(d);
    for fact in [
        "sent OomScoreAdj 100",
        "sent ConsoleSize [24, 80]",
        "sent NetworkMode \"bridge\"",
        "sent PortBindings {\"80/tcp\": [{\"HostIp\": \"127.0.0.1\", \"HostPort\": \"18099\"}]}",
        "sent Ulimits [{\"Hard\": 2048, \"Name\": \"nofile\", \"Soft\": 1024}]",
        "key MaskedPaths",
        "config StopSignal \"SIGINT\"",
        "config Env [\"A=1\", \"B=2\"]",
        "unsupported 400",
        "stop signal 42 SIGINT",
        "log driver none 501 'configured logging driver does not support reading' none",
        "log driver local 200 'hi\\n' local",
        "kill 204 exited 137 204",
        "diff 200 0/bin 2/bin/true 0/tmp 1/tmp/d 1/tmp/d/f",
        "save one 200 True",
        "command e1 201 [\"echo\", [\"ep\", \"c1\"], [\"echo\", \"ep\"], [\"c1\"], \"/srv\"]",
        "command e5 201 [\"ls\", [], null, [\"ls\"], \"/srv\"]",
        "command e7 201 [\"c1\", [], [], [\"c1\"], \"/srv\"]",
        "command e9 201 [\"ls\", [], null, [\"ls\"], \"\"]",
        "command e10 400",
        "attach stream=0&logs=1&stdout=1 200 b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x04one\\n'",
        "attach stream=0&logs=0&stdout=1&stderr=1 200 b''",
        "network name 'x/y' 0 0",
        "disconnect not connected True container ID is not connected to the network n1",
        "disconnect gone 404 endpoint nothere not found",
        "auto subnet auto1 False",
        "domainname example.org b'example.org\\n'",
        "auto subnet auto2 False",
        "auto subnet auto3 False",
    ] {
        assert!(
            ours.iter().any(|l| l == fact),
            "berthd: no {fact:?} in:\n{}",
            ours.join("\n")
        );
    }
    let Some(dockerd) = Dockerd::start() else {
        eprintln!("no dockerd here: compared with the facts above only");
        return;
    };
    let (theirs, their_keys) = facts(&dockerd.host);
    assert_eq!(ours, theirs, "berthd (left) and dockerd (right)");
    let missing: Vec<&String> = their_keys.difference(&our_keys).collect();
    assert!(missing.is_empty(), "/info lacks dockerd's {missing:?}");
}

#[test]
fn netns_commit_export_import_as_dockerd() {
    if !netns_support::enabled("netns_commit_export_import_as_dockerd") {
        return;
    }
    let d = Berthd::start();
    let ours = script_lines("commit.py", &format!("unix://{}", d.sock.display()));
    drop(d);
    for fact in [
        "config Env [\"X=1\", \"Y=1\"]",
        "config Cmd [\"cat\", \"/tmp/f\"]",
        "config ExposedPorts {\"53/udp\": {}, \"80/tcp\": {}}",
        "config Labels {\"a\": \"b\"}",
        "config WorkingDir \"/tmp/sub\"",
        "config User \"0\"",
        "author me comment a message",
        "parent is the image True container True",
        "layers 1",
        "run hi",
        "workdir /tmp/sub",
        "bad change RUN echo True True",
        "bad change FROM x True True",
        "bad change BOGUS x True True",
        "bad change ENV True False",
        "bad change EXPOSE 80/icmp True False",
        "nothing made True",
        "running after commit running",
        "run img3 a",
        "run img3b a",
        "untagged True []",
        "export ['bin/sh', 'data/only', 'tmp/f', 'tmp/link', 'var/x/y']",
        "export link /nowhere content b'hi\\n'",
        "export hard link True tmp/f",
        "import [\"A=1\"] [\"cat\", \"/data/only\"] imported",
        "run imp1 only",
        "import bad change True True",
        "docker-py ['pyimg:t'] py a [\"X=1\", \"P=1\"]",
    ] {
        assert!(
            ours.iter().any(|l| l == fact),
            "berthd: no {fact:?} in:\n{}",
            ours.join("\n")
        );
    }
    // History: the command and the message.
    assert!(
        ours.iter()
            .any(|l| l.starts_with("history 3 \"sh -c echo hi") && l.ends_with("\"a message\"")),
        "{}",
        ours.join("\n")
    );
    // /bin/true deleted, /data replaced whole (the base's file gone), the links kept.
    let files = ours
        .iter()
        .position(|l| l == "files only")
        .map(|i| &ours[i..i + 5]);
    assert_eq!(
        files.map(|f| f.join(" ")).as_deref(),
        Some("files only y link hi /"),
        "{}",
        ours.join("\n")
    );
    let Some(dockerd) = Dockerd::start() else {
        eprintln!("no dockerd here: compared with the facts above only");
        return;
    };
    let theirs = script_lines("commit.py", &dockerd.host);
    assert_eq!(ours, theirs, "berthd (left) and dockerd (right)");
}

#[test]
fn netns_links_as_dockerd() {
    if !netns_support::enabled("netns_links_as_dockerd") {
        return;
    }
    let d = Berthd::start();
    let ours = script_lines("links.py", &format!("unix://{}", d.sock.display()));
    drop(d);
    for fact in [
        "env MY_DB_PORT=tcp://IP:5432",
        "env MY_DB_PORT_8000_UDP_END=udp://IP:8002",
        "env MY_DB_PORT_9000_TCP_ADDR=IP",
        "env MY_DB_NAME=/web/my-db",
        "env MY_DB_ENV_SECRET=s",
        "env MY_DB_ENV_X=mine",
        "env DB_1_NAME=/web/db-1",
        "hosts IP\tdb ID db-1",
        "link to stopped 125 True",
        "links [\"/db-2:/web2/dbx\"]",
        "rm link 0 /web2/dbx",
        "links after null",
        "linked stays true",
        "rm own name 1 True",
        "rm unknown link 1 True",
        "rm by link name 0 web3/dby 1",
    ] {
        assert!(
            ours.iter().any(|l| l == fact),
            "berthd: no {fact:?} in:\n{}",
            ours.join("\n")
        );
    }
    assert!(
        !ours.iter().any(|l| l.starts_with("env MY_DB_ENV_PATH")),
        "{ours:?}"
    );
    // Legacy links live on the default bridge: this dockerd gets one (off berthd's subnets).
    let Some(dockerd) = Dockerd::start_with_bridge("10.199.0.1/24") else {
        eprintln!("no dockerd here: compared with the facts above only");
        return;
    };
    let theirs = script_lines("links.py", &dockerd.host);
    drop(dockerd);
    // dockerd leaves its bridge behind.
    let _ = Command::new("ip").args(["link", "del", "docker0"]).status();
    assert_eq!(ours, theirs, "berthd (left) and dockerd (right)");
}

#[test]
fn netns_endpoint_settings_as_dockerd() {
    if !netns_support::enabled("netns_endpoint_settings_as_dockerd") {
        return;
    }
    let d = Berthd::start();
    let mut ours = script_lines_with(
        "endpoints.py",
        &format!("unix://{}", d.sock.display()),
        &[("BERTH_ONLY", "1")],
    );
    drop(d);
    // dockerd's lines first, so a failing fact below shows them too.
    let theirs = Dockerd::start().map(|dockerd| script_lines("endpoints.py", &dockerd.host));
    if let Some(t) = &theirs {
        eprintln!("dockerd:\n{}", t.join("\n"));
    }
    for fact in [
        "run endpoint [{\"IPv4Address\": \"10.77.0.10\", \"IPv6Address\": \"fd77::10\", \"LinkLocalIPs\": [\"169.254.7.7\"]}, null, [\"ID\", \"one\"], null, \"10.77.0.10\", \"fd77::10\", \"02:42:0a:4d:00:0a\"]",
        "mac endpoint \"02:42:0a:4d:00:99\"",
        "mac config 02:42:0a:4d:00:99",
        "mac inside 02:42:0a:4d:00:99",
        "connect endpoint [{\"IPv4Address\": \"10.78.0.20\", \"IPv6Address\": \"fd78::20\", \"LinkLocalIPs\": [\"169.254.8.8\"]}, [\"peer:lk\"], [\"ID\", \"al\"], {\"k\": \"v\"}, \"10.78.0.20\", \"fd78::20\", \"02:42:0a:4e:00:14\"]",
        "link resolves True",
        "berth-only bridge link-local 0 True",
        "berth-only bridge alias 400 True",
        "bad ip6 True",
        "bad link-local True",
        "berth-only connect mac 02:42:00:00:00:77 02:42:00:00:00:77",
    ] {
        assert!(
            ours.iter().any(|l| l == fact),
            "berthd: no {fact:?} in:\n{}",
            ours.join("\n")
        );
    }
    assert!(
        ours.iter().any(|l| l.starts_with("addresses ")
            && [
                "10.77.0.10/24",
                "fd77::10/64",
                "169.254.7.7/16",
                "10.78.0.20/24",
                "169.254.8.8/16"
            ]
            .iter()
            .all(|a| l.contains(a))),
        "{ours:?}"
    );
    ours.retain(|l| !l.starts_with("berth-only "));
    let Some(theirs) = theirs else {
        eprintln!("no dockerd here: compared with the facts above only");
        return;
    };
    assert_eq!(ours, theirs, "berthd (left) and dockerd (right)");
}
