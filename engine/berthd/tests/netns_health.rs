//! Health checks through the docker CLI, the same steps on berthd and on a throwaway dockerd:
//! `--health-*` flags, `State.Health` (status, failing streak, the last five results with
//! their output), a probe that outlives its timeout, `(healthy)` in `ps`, `--filter health=`,
//! `health_status` events, the CLI's and the daemon's refusals. Privileged: run through
//! scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;
mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::{Berthd, Dockerd, IMAGE};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits (at most 20 s) until `what` prints `want`; what it printed last.
fn wait_for(docker: &dyn Fn(&[&str]) -> Output, what: &[&str], want: &str) -> String {
    let t0 = Instant::now();
    loop {
        let got = text(&docker(what)).trim().to_string();
        if got == want || t0.elapsed() > Duration::from_secs(20) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The facts one daemon shows, one per line.
fn facts(docker: &dyn Fn(&[&str]) -> Output) -> Vec<String> {
    let run = |args: &[&str]| {
        let o = docker(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    };
    let mut out = Vec::new();
    run(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        IMAGE,
        "sleep",
        "100",
    ]);
    out.push(text(&docker(&[
        "inspect",
        "hc",
        "--format",
        "{{.State.Health.Status}} {{json .Config.Healthcheck}}",
    ])));
    run(&[
        "run",
        "-d",
        "--name",
        "hc-out",
        "--health-cmd",
        "echo hi; echo err >&2",
        "--health-interval",
        "200ms",
        IMAGE,
        "sleep",
        "100",
    ]);
    run(&[
        "run",
        "-d",
        "--name",
        "hc-slow",
        "--health-cmd",
        "sleep 5",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        IMAGE,
        "sleep",
        "100",
    ]);
    run(&[
        "run",
        "-d",
        "--name",
        "hc-none",
        "--no-healthcheck",
        IMAGE,
        "sleep",
        "100",
    ]);

    out.push(wait_for(
        docker,
        &[
            "inspect",
            "hc",
            "--format",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
        ],
        "unhealthy 2",
    ));
    run(&["exec", "hc", "touch", "/tmp/ok"]);
    out.push(wait_for(
        docker,
        &[
            "inspect",
            "hc",
            "--format",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
        ],
        "healthy 0",
    ));
    // Five results at most, however many ran.
    std::thread::sleep(Duration::from_millis(1500));
    out.push(text(&docker(&[
        "inspect",
        "hc",
        "--format",
        "{{len .State.Health.Log}} {{(index .State.Health.Log 4).ExitCode}}",
    ])));
    out.push(wait_for(
        docker,
        &["inspect", "hc-out", "--format", "{{.State.Health.Status}} {{(index .State.Health.Log 0).ExitCode}} {{json (index .State.Health.Log 0).Output}}"],
        "healthy 0 \"hi\\nerr\\n\"",
    ));
    out.push(wait_for(
        docker,
        &["inspect", "hc-slow", "--format", "{{.State.Health.Status}} {{(index .State.Health.Log 0).ExitCode}} {{json (index .State.Health.Log 0).Output}}"],
        "unhealthy -1 \"Health check exceeded timeout (300ms)\"",
    ));
    out.push(text(&docker(&[
        "inspect",
        "hc-none",
        "--format",
        "{{json .State.Health}} {{json .Config.Healthcheck}}",
    ])));
    let status = |filter: &str| {
        let o = docker(&[
            "ps",
            "--filter",
            filter,
            "--format",
            "{{.Names}} {{.Status}}",
        ]);
        let mut rows: Vec<String> = text(&o)
            .lines()
            // "Up 2 seconds (healthy)": the words after the time.
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w.last() {
                    Some(last) if last.ends_with(')') => format!("{} {last}", w[0]),
                    _ => w[0].to_string(),
                }
            })
            .collect();
        rows.sort();
        rows.join(",")
    };
    out.push(status("health=healthy"));
    out.push(status("health=unhealthy"));
    out.push(status("health=none"));
    out.push(text(&docker(&["ps", "--filter", "health=bogus"])));
    let mut events: Vec<String> = text(&docker(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]))
    .lines()
    .map(String::from)
    .collect();
    events.sort();
    events.dedup();
    out.push(events.join(","));
    for bad in [
        &["--health-interval=-1s"][..],
        &["--no-healthcheck", "--health-retries", "2"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(bad);
        args.extend_from_slice(&[IMAGE, "true"]);
        let o = docker(&args);
        assert!(!o.status.success());
        out.push(text(&o).lines().next().unwrap_or_default().to_string());
    }
    out
}

#[test]
fn netns_health_checks_as_dockerd() {
    if !netns_support::enabled("netns_health_checks_as_dockerd") {
        return;
    }
    let d = Berthd::start();
    let ours = facts(&|a: &[&str]| d.docker(a));
    let expect_prefix = [
        r#"starting {"Test":["CMD-SHELL","test -e /tmp/ok"],"Interval":300000000,"Retries":2}"#,
        "unhealthy 2",
        "healthy 0",
        "5 0",
        "healthy 0 \"hi\\nerr\\n\"",
        "unhealthy -1 \"Health check exceeded timeout (300ms)\"",
        r#"null {"Test":["NONE"]}"#,
        "hc (healthy),hc-out (healthy)",
        "hc-slow (unhealthy)",
        "hc-none",
        "Error response from daemon: Unrecognised filter value for health: bogus",
        "health_status: healthy hc,health_status: healthy hc-out,health_status: unhealthy hc,health_status: unhealthy hc-slow",
    ];
    for (i, want) in expect_prefix.iter().enumerate() {
        assert_eq!(ours[i].trim(), *want, "fact {i}; all: {ours:#?}");
    }
    drop(d);
    let Some(dockerd) = Dockerd::start() else {
        eprintln!("no dockerd here: compared with the facts above only");
        return;
    };
    let theirs = facts(&|a: &[&str]| dockerd.docker(a));
    assert_eq!(ours, theirs, "berthd (left) and dockerd (right)");
}
