//! `docker build` (the real CLI, legacy builder) against berthd and against dockerd in the
//! same test: a multi-stage build in the seeds' shape, the built images' configurations
//! compared field by field, the images run, the cache (a second build all hits, one changed
//! file rebuilding from its step on), `.dockerignore`, ONBUILD, `--target`, build arguments and
//! errors. Privileged: run through scripts/netns-test.sh.

#[path = "../../../portproxy/tests/netns_support/mod.rs"]
#[allow(dead_code)]
mod netns_support;

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{Berthd, DOCKER, Dockerd, IMAGE};

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=berth-test/busybox
FROM ${BASE} AS builder
ARG GREETING=hello
ENV OUT=/out
WORKDIR /src
COPY app/ ./
RUN mkdir -p $OUT && cat *.txt > $OUT/all.txt && echo "$GREETING from $(pwd)" > $OUT/greeting
FROM ${BASE}
LABEL org.example.role=web \
      org.example.tier="front end"
COPY --from=builder /out /usr/share/site/
COPY --chown=1000:1000 extra.txt /data/
ADD pkg.tar.gz /opt/
ENV PATH=/usr/share/site/bin:$PATH GREETING=${GREETING:-unset}
USER 1000
WORKDIR /usr/share/site
EXPOSE 8080/tcp 53/udp
VOLUME ["/cache"]
HEALTHCHECK --interval=5s --retries=2 CMD cat /usr/share/site/all.txt
STOPSIGNAL SIGTERM
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["cat"]
CMD ["all.txt", "greeting"]
"#;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn context() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "Dockerfile", DOCKERFILE);
    write(d.path(), "app/a.txt", "alpha\n");
    write(d.path(), "app/b.txt", "beta\n");
    write(d.path(), "app/secret.txt", "do not ship\n");
    write(d.path(), "extra.txt", "extra\n");
    write(
        d.path(),
        ".dockerignore",
        "# not sent\napp/secret.txt\n*.log\n",
    );
    write(d.path(), "build.log", "noise\n");
    // ADD unpacks a local archive.
    write(d.path(), "pkgsrc/pkg/hello.txt", "unpacked\n");
    let st = Command::new("tar")
        .args(["czf", "../pkg.tar.gz", "pkg"])
        .current_dir(d.path().join("pkgsrc"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(d.path().join("pkgsrc")).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The docker CLI with the legacy builder against `host`.
fn docker(host: &str, config: &Path, args: &[&str]) -> Output {
    Command::new(DOCKER)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_BUILDKIT", "0")
        .args(args)
        .output()
        .unwrap()
}

fn ok(host: &str, config: &Path, args: &[&str]) -> String {
    let o = docker(host, config, args);
    assert!(
        o.status.success(),
        "docker {args:?} against {host}: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The fields of an image's config a build decides.
fn config_of(host: &str, config: &Path, image: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(host, config, &["image", "inspect", image])).unwrap();
    let c = &v[0]["Config"];
    let mut out = serde_json::Map::new();
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ] {
        // Docker leaves empty fields out or null; both are "not set".
        let v = match &c[k] {
            Value::Null => Value::Null,
            Value::Array(a) if a.is_empty() => Value::Null,
            Value::Object(o) if o.is_empty() => Value::Null,
            Value::String(s) if s.is_empty() => Value::Null,
            v => v.clone(),
        };
        out.insert(k.to_string(), v);
    }
    Value::Object(out)
}

struct Peer {
    name: &'static str,
    host: String,
    config: std::path::PathBuf,
}

/// berthd first, then dockerd: every check runs against both.
fn peers(b: &Berthd, d: &Dockerd) -> Vec<Peer> {
    vec![
        Peer {
            name: "berthd",
            host: format!("unix://{}", b.sock.display()),
            config: b.dir.path().join("docker-config"),
        },
        Peer {
            name: "dockerd",
            host: d.host.clone(),
            config: d.dir.path().join("docker-config"),
        },
    ]
}

#[test]
fn netns_build_as_dockerd() {
    if !netns_support::enabled("netns_build_as_dockerd") {
        return;
    }
    let mut b = Berthd::start();
    let dockerd =
        Dockerd::start().expect("dockerd (Debian's docker.io) is installed by scripts/test.sh");
    let peers = peers(&b, &dockerd);
    let ctx = context();
    let ctx_path = ctx.path().to_str().unwrap();
    let mut configs = Vec::new();
    let mut outputs = Vec::new();
    for p in &peers {
        let out = ok(
            &p.host,
            &p.config,
            &[
                "build",
                "-t",
                "site:1",
                "-t",
                "site:latest",
                "--build-arg",
                "GREETING=hi",
                ctx_path,
            ],
        );
        assert!(out.contains("Successfully built "), "{}: {out}", p.name);
        assert!(
            out.contains("Successfully tagged site:1"),
            "{}: {out}",
            p.name
        );
        assert!(
            out.contains("Successfully tagged site:latest"),
            "{}: {out}",
            p.name
        );
        configs.push(config_of(&p.host, &p.config, "site:1"));
        // The built image runs: the builder stage's files, .dockerignore'd ones left out,
        // the build argument used in RUN.
        let run = ok(&p.host, &p.config, &["run", "--rm", "site:1"]);
        outputs.push(run.clone());
        assert_eq!(run, "alpha\nbeta\nhi from /src\n", "{}", p.name);
        // --chown and the user.
        let ls = ok(
            &p.host,
            &p.config,
            &[
                "run",
                "--rm",
                "--entrypoint",
                "sh",
                "site:1",
                "-c",
                "id -u; stat -c '%u:%g %a' /data/extra.txt /data; cat /data/extra.txt /opt/pkg/hello.txt",
            ],
        );
        assert_eq!(
            ls, "1000\n1000:1000 644\n1000:1000 755\nextra\nunpacked\n",
            "{}",
            p.name
        );
    }
    assert_eq!(
        configs[0], configs[1],
        "berthd's image config differs from dockerd's"
    );
    assert_eq!(outputs[0], outputs[1]);
    let berth = &peers[0];
    let c = &configs[0];
    assert_eq!(c["Cmd"], serde_json::json!(["all.txt", "greeting"]));
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo triggered > /tmp/onbuild"])
    );

    // No change: every step from the cache, the same image.
    let id1 = ok(
        &berth.host,
        &berth.config,
        &["image", "inspect", "-f", "{{.Id}}", "site:1"],
    );
    let again = ok(
        &berth.host,
        &berth.config,
        &[
            "build",
            "-t",
            "site:1",
            "--build-arg",
            "GREETING=hi",
            ctx_path,
        ],
    );
    let hits = again.matches("Using cache").count();
    assert!(!again.contains("Running in"), "{again}");
    assert_eq!(hits, 19, "{again}");
    let id2 = ok(
        &berth.host,
        &berth.config,
        &["image", "inspect", "-f", "{{.Id}}", "site:1"],
    );
    assert_eq!(id1, id2);
    // The cache outlives berthd.
    b.restart();
    let after = ok(
        &berth.host,
        &berth.config,
        &[
            "build",
            "-t",
            "site:1",
            "--build-arg",
            "GREETING=hi",
            ctx_path,
        ],
    );
    assert_eq!(
        after.matches("Using cache").count(),
        19,
        "after a restart: {after}"
    );
    // One copied file changed: the steps before its COPY come from the cache, the rest run.
    write(ctx.path(), "app/b.txt", "BETA\n");
    let changed = ok(
        &berth.host,
        &berth.config,
        &[
            "build",
            "-t",
            "site:1",
            "--build-arg",
            "GREETING=hi",
            ctx_path,
        ],
    );
    let before_copy = changed.split("COPY app/ ./").next().unwrap();
    assert_eq!(before_copy.matches("Using cache").count(), 3, "{changed}");
    assert!(changed.contains("Running in"), "{changed}");
    assert_eq!(
        ok(&berth.host, &berth.config, &["run", "--rm", "site:1"]),
        "alpha\nBETA\nhi from /src\n"
    );
    // The change to a file .dockerignore leaves out changes nothing.
    write(ctx.path(), "app/secret.txt", "still not shipped\n");
    let ignored = ok(
        &berth.host,
        &berth.config,
        &["build", "-q", "--build-arg", "GREETING=hi", ctx_path],
    );
    let id3 = ok(
        &berth.host,
        &berth.config,
        &["image", "inspect", "-f", "{{.Id}}", "site:1"],
    );
    assert_eq!(ignored.trim(), id3.trim(), "-q prints the image's ID");

    // --target, ONBUILD, -f outside the context, --label, --no-cache.
    let child = tempfile::tempdir().unwrap();
    write(
        child.path(),
        "Dockerfile.child",
        "FROM site:1\nRUN cat /tmp/onbuild\n",
    );
    for p in &peers {
        let out = ok(
            &p.host,
            &p.config,
            &[
                "build",
                "--no-cache",
                "--label",
                "built.by=test",
                "-f",
                child.path().join("Dockerfile.child").to_str().unwrap(),
                "-t",
                "child",
                ctx_path,
            ],
        );
        assert!(out.contains("triggered"), "{}: ONBUILD ran: {out}", p.name);
        let labels = ok(
            &p.host,
            &p.config,
            &["image", "inspect", "-f", "{{json .Config.Labels}}", "child"],
        );
        let labels: Value = serde_json::from_str(&labels).unwrap();
        assert_eq!(labels["built.by"], "test", "{}", p.name);
        assert_eq!(labels["org.example.role"], "web", "{}", p.name);
        let ob = ok(
            &p.host,
            &p.config,
            &[
                "image",
                "inspect",
                "-f",
                "{{json .Config.OnBuild}}",
                "child",
            ],
        );
        assert!(
            matches!(ob.trim(), "null" | "[]"),
            "{}: triggers are not inherited: {ob}",
            p.name
        );
        let t = ok(
            &p.host,
            &p.config,
            &["build", "-q", "--target", "builder", ctx_path],
        );
        let img = t.trim();
        let out = ok(
            &p.host,
            &p.config,
            &["run", "--rm", img, "cat", "/out/all.txt"],
        );
        assert_eq!(out, "alpha\nBETA\n", "{}", p.name);
    }

    // Errors: a failing RUN names its command and code, in both.
    let bad = tempfile::tempdir().unwrap();
    write(
        bad.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN echo out; exit 3\n"),
    );
    for p in &peers {
        let o = docker(&p.host, &p.config, &["build", bad.path().to_str().unwrap()]);
        assert!(!o.status.success());
        let t = text(&o);
        assert!(
            t.contains("The command '/bin/sh -c echo out; exit 3' returned a non-zero code: 3"),
            "{}: {t}",
            p.name
        );
        assert!(
            t.contains("out\n"),
            "{}: the step's output is streamed: {t}",
            p.name
        );
    }
    write(
        bad.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nCOPY missing /x\n"),
    );
    let o = docker(
        &berth.host,
        &berth.config,
        &["build", bad.path().to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("missing"), "{}", text(&o));
    write(
        bad.path(),
        "Dockerfile",
        &format!("FROM {IMAGE}\nBOGUS x\n"),
    );
    let o = docker(
        &berth.host,
        &berth.config,
        &["build", bad.path().to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("BOGUS"), "{}", text(&o));

    // Intermediate images are hidden from `docker images` and listed with -a.
    let plain = ok(&berth.host, &berth.config, &["images", "-q"])
        .lines()
        .count();
    let all = ok(&berth.host, &berth.config, &["images", "-aq"])
        .lines()
        .count();
    assert!(all > plain, "{plain} {all}");
    // No build container is left behind (failed steps' are, as Docker's without --force-rm).
    let left = ok(&berth.host, &berth.config, &["ps", "-aq"]);
    assert_eq!(left.lines().count(), 1, "{left}");
}

/// docker-py's `images.build`, with its build arguments and labels.
const DOCKER_PY_BUILD: &str = r#"
import docker, os, sys
c = docker.from_env()
img, logs = c.images.build(path=sys.argv[1], tag="py:1", buildargs={"GREETING": "py"}, labels={"via": "docker-py"}, rm=True)
text = "".join(l.get("stream", "") for l in logs)
assert "Successfully built" in text, text
print(img.id)
"#;

#[test]
fn netns_build_clients_as_dockerd() {
    if !netns_support::enabled("netns_build_clients_as_dockerd") {
        return;
    }
    let b = Berthd::start();
    let dockerd =
        Dockerd::start().expect("dockerd (Debian's docker.io) is installed by scripts/test.sh");
    let peers = peers(&b, &dockerd);
    let ctx = context();
    write(
        ctx.path(),
        "docker-compose.yml",
        "version: \"3.7\"\nservices:\n  site:\n    build:\n      context: .\n      args:\n        GREETING: compose\n      labels:\n        via: compose\n    image: composed:1\n",
    );
    let ctx_path = ctx.path().to_str().unwrap();
    let mut py = Vec::new();
    let mut composed = Vec::new();
    for p in &peers {
        let o = Command::new("python3")
            .args(["-c", DOCKER_PY_BUILD, ctx_path])
            .env("DOCKER_HOST", &p.host)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: docker-py: {}", p.name, text(&o));
        py.push(config_of(&p.host, &p.config, "py:1"));
        assert_eq!(
            ok(&p.host, &p.config, &["run", "--rm", "py:1"]),
            "alpha\nbeta\npy from /src\n",
            "{}",
            p.name
        );
        let o = Command::new("docker-compose")
            .args(["-p", "bbuild", "build"])
            .current_dir(ctx.path())
            .env("DOCKER_HOST", &p.host)
            .env("DOCKER_BUILDKIT", "0")
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: compose build: {}",
            p.name,
            text(&o)
        );
        composed.push(config_of(&p.host, &p.config, "composed:1"));
        assert_eq!(
            ok(&p.host, &p.config, &["run", "--rm", "composed:1"]),
            "alpha\nbeta\ncompose from /src\n",
            "{}",
            p.name
        );
    }
    // COPY to `/`, a glob with one match to a file, a link followed: as dockerd.
    write(
        ctx.path(),
        "Dockerfile.root",
        &format!(
            "FROM {IMAGE}\nCOPY app/ /\nCOPY ext*.txt /single.txt\nCOPY link.txt /linked/\nRUN ls -ld / | cut -c1-10\n"
        ),
    );
    std::os::unix::fs::symlink("extra.txt", ctx.path().join("link.txt")).unwrap();
    let mut roots = Vec::new();
    for p in &peers {
        ok(
            &p.host,
            &p.config,
            &[
                "build",
                "-t",
                "rootcopy",
                "-f",
                ctx.path().join("Dockerfile.root").to_str().unwrap(),
                ctx_path,
            ],
        );
        let out = ok(
            &p.host,
            &p.config,
            &[
                "run",
                "--rm",
                "rootcopy",
                "sh",
                "-c",
                "cat /a.txt /single.txt /linked/link.txt; stat -c '%a %F' / /linked/link.txt",
            ],
        );
        roots.push(out);
    }
    assert_eq!(
        roots[0], "alpha\nextra\nextra\n755 directory\n644 regular file\n",
        "berthd"
    );
    assert_eq!(roots[0], roots[1]);
    std::fs::remove_file(ctx.path().join("link.txt")).unwrap();
    assert_eq!(py[0]["Labels"]["via"], "docker-py");
    assert_eq!(composed[0]["Labels"]["via"], "compose");
    assert_eq!(
        py[0], py[1],
        "docker-py's build: berthd's config differs from dockerd's"
    );
    assert_eq!(
        composed[0], composed[1],
        "compose build: berthd's config differs from dockerd's"
    );

    // berth's own CLI: -q prints the ID, --iidfile keeps it, the image runs.
    let berth = support::berthd_bin().parent().unwrap().join("berth");
    let iid = ctx.path().join("iid");
    let o = Command::new(&berth)
        .env("BERTH_HOST", format!("unix://{}", b.sock.display()))
        .args([
            "build",
            "-q",
            "-t",
            "cli:1",
            "--build-arg",
            "GREETING=cli",
            "--iidfile",
        ])
        .arg(&iid)
        .arg(ctx_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "berth build: {}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let berth_host = &peers[0];
    assert_eq!(
        ok(
            &berth_host.host,
            &berth_host.config,
            &["run", "--rm", "cli:1"]
        ),
        "alpha\nbeta\ncli from /src\n"
    );
    // Its steps stream as they run, and a failing build fails the command with the reason.
    write(
        ctx.path(),
        "Dockerfile.bad",
        &format!("FROM {IMAGE}\nRUN echo step-output && false\n"),
    );
    let o = Command::new(&berth)
        .env("BERTH_HOST", format!("unix://{}", b.sock.display()))
        .args(["build", "-f"])
        .arg(ctx.path().join("Dockerfile.bad"))
        .arg(ctx_path)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("Step 2/2 : RUN echo step-output && false") && t.contains("step-output\n"),
        "{t}"
    );
    assert!(t.contains("returned a non-zero code: 1"), "{t}");
    // A base only a registry has is pulled; --add-host reaches RUN; an unreachable ADD URL
    // fails naming it.
    let registry = support::Registry::start();
    let remote = format!("127.0.0.1:{}/bb:1", registry.port);
    // py:1 to the registry, for --cache-from below.
    let cached_remote = format!("127.0.0.1:{}/py:1", registry.port);
    ok(
        &berth_host.host,
        &berth_host.config,
        &["tag", "py:1", &cached_remote],
    );
    ok(
        &berth_host.host,
        &berth_host.config,
        &["push", &cached_remote],
    );
    ok(
        &berth_host.host,
        &berth_host.config,
        &["rmi", &cached_remote],
    );
    ok(
        &berth_host.host,
        &berth_host.config,
        &["tag", IMAGE, &remote],
    );
    ok(&berth_host.host, &berth_host.config, &["push", &remote]);
    ok(&berth_host.host, &berth_host.config, &["rmi", &remote]);
    write(
        ctx.path(),
        "Dockerfile.remote",
        &format!("FROM {remote}\nRUN grep myhost /etc/hosts\n"),
    );
    let out = ok(
        &berth_host.host,
        &berth_host.config,
        &[
            "build",
            "--add-host",
            "myhost:10.9.8.7",
            "-t",
            "fromreg",
            "-f",
            ctx.path().join("Dockerfile.remote").to_str().unwrap(),
            ctx_path,
        ],
    );
    assert!(
        out.contains("Downloaded newer image for") && out.contains("10.9.8.7"),
        "{out}"
    );
    write(
        ctx.path(),
        "Dockerfile.url",
        &format!("FROM {IMAGE}\nADD http://127.0.0.1:9/nothing.txt /x\n"),
    );
    let o = docker(
        &berth_host.host,
        &berth_host.config,
        &[
            "build",
            "-f",
            ctx.path().join("Dockerfile.url").to_str().unwrap(),
            ctx_path,
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("http://127.0.0.1:9/nothing.txt"),
        "{}",
        text(&o)
    );
    ok(
        &berth_host.host,
        &berth_host.config,
        &["rmi", "fromreg", &remote],
    );
    // builder prune: the cached steps no image keeps go.
    ok(
        &berth_host.host,
        &berth_host.config,
        &["rmi", "cli:1", "py:1", "composed:1", "rootcopy"],
    );
    let pruned = Command::new(&berth)
        .env("BERTH_HOST", format!("unix://{}", b.sock.display()))
        .args(["builder", "prune", "-f"])
        .output()
        .unwrap();
    let t = text(&pruned);
    assert!(
        pruned.status.success() && t.contains("Deleted build cache objects:"),
        "{t}"
    );
    let all = ok(&berth_host.host, &berth_host.config, &["images", "-aq"]);
    let ids: std::collections::BTreeSet<&str> = all.lines().collect();
    assert_eq!(ids.len(), 1, "only the base is left: {all}");

    // --cache-from: a pulled image's steps stand for the build's (no local cache left).
    ok(
        &berth_host.host,
        &berth_host.config,
        &["pull", &cached_remote],
    );
    let out = ok(
        &berth_host.host,
        &berth_host.config,
        &[
            "build",
            "--cache-from",
            &cached_remote,
            "--build-arg",
            "GREETING=py",
            "-t",
            "fromcache",
            ctx_path,
        ],
    );
    // The final stage's steps all come from it; the builder stage's are not in the final
    // image's history (as with Docker's legacy builder), but its files are the same, so the
    // COPY --from and all after it hit.
    let final_stage = out.split("Step 7/21").nth(1).unwrap_or_default();
    assert!(!final_stage.contains("Running in"), "{out}");
    assert_eq!(final_stage.matches("Using cache").count(), 14, "{out}");
    assert_eq!(
        ok(
            &berth_host.host,
            &berth_host.config,
            &["run", "--rm", "fromcache"]
        ),
        "alpha\nbeta\npy from /src\n"
    );
}
