//! `berth-image`: the image store from the command line, until berthd and `berth` wire it up
//! (the CLI issue). Same verbs and output as Docker's image commands:
//!
//! ```text
//! berth-image [--data-root DIR] pull|push|login|import|save|load|tag|rmi|images|inspect|history|prune
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use berth_common::humanize::human_size as human;
use berth_common::id::short_id as short;
use clap::{Parser, Subcommand};
use engine::image::archive;
use engine::image::inspect;
use engine::image::layer::{ExtractOptions, extract_layer};
use engine::image::registry::credentials::{self, Login};
use engine::image::registry::{Event, LayerStatus, Registry, RegistryOptions, Sink, pull, push};
use engine::image::store::ImageStore;

#[derive(Parser)]
#[command(
    name = "berth-image",
    about = "berth's image store: pull, push, save, load, ..."
)]
struct Cli {
    /// berth's state directory (images live under DIR/image).
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// A registry (host[:port] or CIDR) reached over plain HTTP; loopback always is.
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
    /// Upload blobs in chunks of this many bytes instead of one request.
    #[arg(long)]
    chunk_size: Option<usize>,
    /// Docker's credentials file (default $DOCKER_CONFIG/config.json or ~/.docker/config.json).
    #[arg(long)]
    auth_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download an image from a registry.
    Pull {
        name: String,
        /// os/arch, when the name points at a multi-platform index.
        #[arg(long)]
        platform: Option<String>,
        /// Print only the image reference.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Upload an image to a registry.
    Push {
        name: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Check credentials with a registry and keep them in the credentials file.
    Login {
        registry: String,
        #[arg(short, long)]
        username: String,
        /// The password (prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a one-layer image of a root file system tarball ("-" reads stdin).
    Import { file: String, tag: Option<String> },
    /// Write images to a tarball (docker save format and OCI layout).
    Save {
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Read images from a tarball made by `save` or `docker save`.
    Load {
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove images.
    Rmi {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List images.
    Images {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Docker's JSON for images.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The steps an image was made of.
    History { name: String },
    /// Remove unused images.
    Prune {
        /// Every image no container uses, not only untagged ones.
        #[arg(short, long)]
        all: bool,
    },
    /// Unpack a layer tarball into a new directory with berth's extractor (a debugging and
    /// benchmarking aid).
    Unpack { layer: PathBuf, dest: PathBuf },
}

/// Prints events the way `docker pull` does without a terminal: one line per state change.
fn printer(quiet: bool) -> Sink {
    Arc::new(move |ev| {
        if quiet {
            return;
        }
        let line = match ev {
            Event::Status {
                id: Some(id),
                status,
            } => format!("{id}: {status}"),
            Event::Status { id: None, status } => status,
            Event::Layer {
                status: LayerStatus::Downloading | LayerStatus::Pushing | LayerStatus::Extracting,
                ..
            } => return,
            Event::Layer {
                id, status, from, ..
            } => match from {
                Some(f) => format!("{id}: Mounted from {f}"),
                None => format!("{id}: {}", status.text()),
            },
            Event::PushResult { .. } => return,
        };
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    })
}

fn registry(cli: &Cli) -> Registry {
    Registry::new(RegistryOptions {
        insecure: cli.insecure.clone(),
        credentials: Some(
            cli.auth_file
                .clone()
                .unwrap_or_else(credentials::default_path),
        ),
        chunk_size: cli.chunk_size,
        ..RegistryOptions::default()
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Cmd::Unpack { layer, dest } = &cli.cmd {
        let f =
            std::fs::File::open(layer).with_context(|| format!("opening {}", layer.display()))?;
        let stats = extract_layer(
            engine::image::layer::decompress(f)?,
            dest,
            ExtractOptions {
                whiteouts: true,
                allow_devices: false,
                preserve_owners: nix::unistd::geteuid().is_root(),
            },
        )?;
        println!("{} entries, {} bytes", stats.entries, stats.bytes);
        return Ok(());
    }
    let root = cli.data_root.join("image");
    let store = Arc::new(
        ImageStore::open(&root)
            .with_context(|| format!("opening the image store {}", root.display()))?,
    );
    let reg = registry(&cli);
    match &cli.cmd {
        Cmd::Pull {
            name,
            platform,
            quiet,
        } => {
            let platform = match platform.as_deref().map(|p| p.split_once('/')) {
                None => None,
                Some(Some((os, arch))) => Some((os, arch)),
                Some(None) => bail!("--platform {platform:?}: expected os/arch, e.g. linux/amd64"),
            };
            let pulled = pull(&reg, &store, name, platform, printer(*quiet)).await?;
            if *quiet {
                println!("{}", pulled.repo_digest);
            }
        }
        Cmd::Push { name, quiet } => {
            let pushed = push(&reg, &store, name, printer(*quiet)).await?;
            if *quiet {
                println!("{}", pushed.digest);
            }
        }
        Cmd::Login {
            registry,
            username,
            password,
            password_stdin,
        } => {
            let password = match (password, password_stdin) {
                (Some(p), false) => p.clone(),
                (None, true) => {
                    let mut p = String::new();
                    std::io::stdin().read_line(&mut p)?;
                    p.trim_end_matches(['\n', '\r']).to_string()
                }
                _ => bail!("give the password with exactly one of --password and --password-stdin"),
            };
            reg.login(
                registry,
                &Login {
                    username: username.clone(),
                    password,
                },
            )
            .await?;
            println!("Login Succeeded");
        }
        Cmd::Import { file, tag } => {
            let input: Box<dyn std::io::Read> = if file == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(std::fs::File::open(file).with_context(|| format!("opening {file}"))?)
            };
            let img = store.import(input, tag.as_deref())?;
            println!("{}", img.id);
        }
        Cmd::Save { output, names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let s = &store;
            match output {
                Some(path) => {
                    let tmp = path.with_extension("partial");
                    let f = std::fs::File::create(&tmp)
                        .with_context(|| format!("creating {}", tmp.display()))?;
                    if let Err(e) = archive::save(s, &names, std::io::BufWriter::new(f)) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.into());
                    }
                    std::fs::rename(&tmp, path)?;
                }
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        bail!(
                            "refusing to write an archive to a terminal: use -o FILE or redirect"
                        );
                    }
                    archive::save(s, &names, std::io::stdout().lock())?;
                }
            }
        }
        Cmd::Load { input } => {
            let reader: Box<dyn std::io::Read> = match input {
                Some(p) => Box::new(
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
                ),
                None => Box::new(std::io::stdin()),
            };
            for line in archive::load(&store, std::io::BufReader::new(reader))? {
                println!("{line}");
            }
        }
        Cmd::Tag { source, target } => store.tag(source, target)?,
        Cmd::Rmi { force, names } => {
            for n in names {
                for line in store.remove(n, *force, |_| None)? {
                    println!("{line}");
                }
            }
        }
        Cmd::Images { quiet } => {
            let s = store.snapshot();
            if *quiet {
                for r in s.list() {
                    println!("{}", short(&r.id.hex));
                }
            } else {
                println!(
                    "{:<40} {:<10} {:<14} {:<22} SIZE",
                    "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
                );
                for r in s.list() {
                    println!(
                        "{:<40} {:<10} {:<14} {:<22} {}",
                        r.repository,
                        r.tag,
                        short(&r.id.hex),
                        r.created,
                        human(r.size)
                    );
                }
            }
        }
        Cmd::Inspect { names } => {
            let s = store.snapshot();
            let mut out = Vec::new();
            for n in names {
                let img = s.resolve(n)?;
                let config: serde_json::Value =
                    serde_json::from_slice(&store.blobs().read(&img.id)?)?;
                let tags = s
                    .tags_of(&img.id)
                    .into_iter()
                    .filter_map(|t| t.parse::<engine::image::reference::Reference>().ok())
                    .map(|r| r.familiar_name_with_tag())
                    .collect();
                out.push(inspect::inspect(img, tags, &config));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::History { name } => {
            let img = store.resolve(name)?;
            let config: serde_json::Value = serde_json::from_slice(&store.blobs().read(&img.id)?)?;
            println!(
                "{:<14} {:<22} {:<45} {:<10} COMMENT",
                "IMAGE", "CREATED", "CREATED BY", "SIZE"
            );
            for r in inspect::history(&img, &config) {
                let by: String = r.created_by.chars().take(45).collect();
                let image = r
                    .image
                    .strip_prefix("sha256:")
                    .map_or(r.image.clone(), short);
                println!(
                    "{:<14} {:<22} {:<45} {:<10} {}",
                    image,
                    r.created,
                    by,
                    human(r.size),
                    r.comment
                );
            }
        }
        Cmd::Prune { all } => {
            let (lines, freed) = store.prune(*all, |_| false)?;
            if !lines.is_empty() {
                println!("Deleted Images:");
                for l in lines {
                    println!(
                        "{}",
                        l.replacen("Untagged:", "untagged:", 1)
                            .replacen("Deleted:", "deleted:", 1)
                    );
                }
                println!();
            }
            println!("Total reclaimed space: {}", human(freed));
        }
        Cmd::Unpack { .. } => unreachable!("handled above"),
    }
    Ok(())
}
