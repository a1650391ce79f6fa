//! `berth build` (Docker's legacy builder's flags and output: the steps as the daemon streams
//! them, `-q` for the ID alone, `--iidfile`) and `berth builder prune`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_cli::client::{Client, ClientError, query, reader_body};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::Value;

use crate::Exit;

/// `berth build`'s flags.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    label: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    force_rm: bool,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    network: String,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Ulimit options
    #[arg(long)]
    ulimit: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    memory: Option<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// PATH
    path: String,
}

/// `berth builder ...`.
#[derive(Subcommand, Debug)]
pub enum BuilderCmd {
    /// Remove build cache
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

fn usage(m: String) -> Exit {
    Exit {
        code: 1,
        message: m,
    }
}

/// The build's query from its flags.
fn build_query(a: &BuildArgs, dockerfile: &str) -> anyhow::Result<String> {
    let mut q: Vec<(&str, String)> = vec![("dockerfile", dockerfile.to_string())];
    q.extend(a.tag.iter().map(|t| ("t", t.clone())));
    let mut args = BTreeMap::new();
    for b in &a.build_arg {
        match b.split_once('=') {
            Some((k, v)) => {
                args.insert(k.to_string(), Value::String(v.to_string()));
            }
            // `--build-arg NAME`: the value from this environment, if it has one.
            None => {
                args.insert(
                    b.clone(),
                    std::env::var(b).map(Value::String).unwrap_or(Value::Null),
                );
            }
        }
    }
    if !args.is_empty() {
        q.push(("buildargs", serde_json::to_string(&args)?));
    }
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    if !labels.is_empty() {
        q.push(("labels", serde_json::to_string(&labels)?));
    }
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    q.push(("nocache", flag(a.no_cache)));
    q.push(("pull", flag(a.pull)));
    q.push(("q", flag(a.quiet)));
    q.push(("rm", flag(a.rm)));
    q.push(("forcerm", flag(a.force_rm)));
    q.push(("networkmode", a.network.clone()));
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let size = |flag: &str, s: &str| {
        berth_api::opts::mount::parse_size(s).filter(|b| *b > 0).ok_or_else(|| {
            usage(format!(
                "invalid argument {s:?} for \"{flag}\" flag: valid: a size above 0 such as 64m, 1g"
            ))
        })
    };
    if let Some(s) = &a.shm_size {
        q.push(("shmsize", size("--shm-size", s)?.to_string()));
    }
    if let Some(m) = &a.memory {
        q.push(("memory", size("--memory", m)?.to_string()));
    }
    if !a.ulimit.is_empty() {
        let list: Vec<Value> = a
            .ulimit
            .iter()
            .map(|u| {
                let spec: berth_api::opts::ulimit::UlimitSpec = u
                    .parse()
                    .map_err(|e| usage(format!("invalid argument {u:?} for \"--ulimit\" flag: {e}")))?;
                // The API's form: {Name, Soft, Hard}, -1 for no limit.
                let n = |v: u64| if v == u64::MAX { -1 } else { v as i64 };
                Ok(serde_json::json!({"Name": spec.name, "Soft": n(spec.soft), "Hard": n(spec.hard)}))
            })
            .collect::<anyhow::Result<_>>()?;
        q.push(("ulimits", serde_json::to_string(&list)?));
    }
    q.extend(a.add_host.iter().map(|h| ("extrahosts", h.clone())));
    if !a.cache_from.is_empty() {
        q.push(("cachefrom", serde_json::to_string(&a.cache_from)?));
    }
    Ok(query(q))
}

/// `berth build`.
pub async fn build(c: &Client, a: BuildArgs) -> anyhow::Result<i32> {
    if a.path == "-" {
        return Err(usage(
            "berth build: a context from stdin is not supported yet; give a directory".into(),
        )
        .into());
    }
    let dir = PathBuf::from(&a.path);
    let packed = {
        let dir = dir.clone();
        let file = a.file.clone();
        tokio::task::spawn_blocking(move || berth_cli::context::pack(&dir, file.as_deref()))
            .await?
            .map_err(|e| usage(e.to_string()))?
    };
    let path = format!("/build{}", build_query(&a, &packed.dockerfile)?);
    let size = packed.file.metadata().map(|m| m.len()).unwrap_or(0);
    if !a.quiet {
        eprintln!(
            "Sending build context to Docker daemon  {}",
            berth_common::humanize::human_size(size)
        );
    }
    let body = reader_body(tokio::fs::File::from_std(packed.file));
    let mut s = c
        .stream(
            Method::POST,
            &path,
            body,
            &[("Content-Type", "application/x-tar")],
        )
        .await?;
    let mut id = None;
    let mut error = None;
    let quiet = a.quiet;
    s.lines(|raw| {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            return Ok::<(), ClientError>(());
        }
        let Ok(v) = serde_json::from_slice::<Value>(raw) else {
            return Ok(());
        };
        if let Some(e) = v["error"].as_str() {
            error = Some(e.to_string());
        } else if let Some(i) = v["aux"]["ID"].as_str() {
            id = Some(i.to_string());
        } else if let Some(text) = v["stream"].as_str() {
            if !quiet {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        }
        Ok(())
    })
    .await?;
    if let Some(e) = error {
        return Err(Exit {
            code: 1,
            message: e,
        }
        .into());
    }
    let id = id.ok_or_else(|| usage("the build ended without an image ID".into()))?;
    if quiet {
        println!("{id}");
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id).map_err(|e| usage(format!("writing {}: {e}", f.display())))?;
    }
    Ok(0)
}

/// `berth builder prune`.
pub async fn builder(c: &Client, cmd: BuilderCmd) -> anyhow::Result<i32> {
    match cmd {
        BuilderCmd::Prune { force } => {
            if !force {
                eprintln!(
                    "WARNING! This will remove all dangling build cache. Use -f to skip this prompt."
                );
                return Ok(1);
            }
            let v: Value = c.json(Method::POST, "/build/prune", None).await?;
            if let Some(list) = v["CachesDeleted"].as_array().filter(|l| !l.is_empty()) {
                println!("Deleted build cache objects:");
                for i in list {
                    println!("{}", i.as_str().unwrap_or_default());
                }
            }
            println!(
                "Total reclaimed space: {}",
                berth_common::humanize::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
            );
            Ok(0)
        }
    }
}
