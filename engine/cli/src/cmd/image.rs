//! Image commands: images, pull, push, tag, rmi, save, load, history. Pull and push show
//! berthd's JSON progress as bars on a terminal and as `ID: Status` lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use berth_cli::client::{Body, Client, ClientError, empty, query, reader_body};
use berth_cli::output::Format;
use berth_cli::rows;
use clap::Subcommand;
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use super::{filters, for_each, now};
use crate::Exit;

/// The image commands.
#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images
    Images {
        /// Show all images (default hides intermediate images)
        #[arg(short, long)]
        all: bool,
        /// Only show image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Filter output based on conditions provided
        #[arg(short, long = "filter")]
        filter: Vec<String>,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
        /// Don't truncate output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Show digests
        #[arg(long)]
        digests: bool,
        /// The repository (and tag) to list
        reference: Option<String>,
    },
    /// Download an image from a registry
    Pull {
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
        /// NAME[:TAG|@DIGEST]
        name: String,
    },
    /// Upload an image to a registry
    Push {
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
        /// NAME[:TAG]
        name: String,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag {
        /// SOURCE_IMAGE[:TAG]
        source: String,
        /// TARGET_IMAGE[:TAG]
        target: String,
    },
    /// Remove one or more images
    Rmi {
        /// Force removal of the image
        #[arg(short, long)]
        force: bool,
        /// Do not delete untagged parents
        #[arg(long = "no-prune")]
        no_prune: bool,
        /// Images
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save {
        /// Write to a file, instead of STDOUT
        #[arg(short, long)]
        output: Option<String>,
        /// Images
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load an image from a tar archive or STDIN
    Load {
        /// Read from tar archive file, instead of STDIN
        #[arg(short, long)]
        input: Option<String>,
        /// Suppress the load output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Import the contents from a tarball to create a filesystem image
    Import {
        /// Apply Dockerfile instructions to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
        /// ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK)
        #[arg(short = 'c', long = "change")]
        change: Vec<String>,
        /// Set commit message for imported image
        #[arg(short, long)]
        message: Option<String>,
        /// The tarball (plain, gzip or zstd), or - for STDIN
        file: String,
        /// REPOSITORY[:TAG] to tag it with
        reference: Option<String>,
    },
    /// Log in to a registry (berthd checks the credentials; berth keeps them in its config file
    /// and sends them with each pull and push of that registry)
    Login {
        /// Username
        #[arg(short, long)]
        username: Option<String>,
        /// Password
        #[arg(short, long)]
        password: Option<String>,
        /// Take the password from stdin
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        /// The registry (host[:port])
        server: String,
    },
    /// Log out from a registry (forgets the credentials kept for it)
    Logout {
        /// The registry (host[:port])
        server: String,
    },
    /// Show the history of an image
    History {
        /// Don't truncate output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Only show image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
        /// The image
        image: String,
    },
}

/// `NAME:TAG` split as Docker does (a `:` after the last `/` starts the tag).
/// Writes a streamed answer (a tar) to stdout, or to `path`: beside it first and renamed at the
/// end, so a failure leaves the old file (if any) as it was and no partial archive. `what` is
/// Docker's wording of the failure (`failed to save image`).
pub async fn write_output(
    mut s: berth_cli::client::BodyStream,
    path: Option<&str>,
    what: &str,
) -> anyhow::Result<()> {
    match path {
        None => berth_cli::client::copy_to(&mut s, &mut std::io::stdout().lock()).await?,
        Some(path) => {
            let dir = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let bad = |e: &dyn std::fmt::Display| Exit {
                code: 1,
                message: format!("Error: {what}: invalid output path {path:?}: {e}"),
            };
            let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| bad(&e))?;
            let mut out = std::io::BufWriter::new(tmp);
            berth_cli::client::copy_to(&mut s, &mut out).await?;
            let tmp = out.into_inner().map_err(|e| bad(&e.error().to_string()))?;
            tmp.persist(path).map_err(|e| bad(&e.error))?;
        }
    }
    Ok(())
}

/// `REPO[:TAG]` split (a port's colon is not a tag's).
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() => (repo, Some(tag)),
        _ => (name, None),
    }
}

/// The client's credentials file, as Docker's CLI: `$BERTH_CONFIG/config.json`, else
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (the same format, so a
/// `docker login` serves berth too).
fn credentials_path() -> std::path::PathBuf {
    match std::env::var_os("BERTH_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir).join("config.json"),
        None => berth_common::credentials::default_path(),
    }
}

/// The `X-Registry-Auth` value for a pull or push of `name`: the login kept for its registry,
/// else `{}` (anonymous). A file that cannot be read is warned about, as Docker's CLI does.
fn auth_header(name: &str) -> String {
    use berth_common::credentials::{self as creds, AuthConfig};
    let path = credentials_path();
    let registry = creds::split_registry(name).0;
    let login = creds::load(&path)
        .and_then(|cfg| creds::lookup(&cfg, registry, &path.display().to_string()));
    match login {
        Ok(Some(l)) => creds::encode_header(&AuthConfig {
            username: l.username,
            password: l.password,
            serveraddress: creds::key_for(registry),
            ..AuthConfig::default()
        }),
        Ok(None) => creds::encode_header(&AuthConfig::default()),
        Err(e) => {
            eprintln!("WARNING: Error loading config file: {e}");
            creds::encode_header(&AuthConfig::default())
        }
    }
}

/// Pulls `name`, showing progress on stderr (`run`) or stdout (`pull`); the reference pulled
/// (`name` with `:latest` when it had no tag).
pub async fn pull(c: &Client, name: &str, to_stderr: bool, quiet: bool) -> anyhow::Result<String> {
    let (repo, tag, pulled) = match name.split_once('@') {
        Some((repo, digest)) => (repo, digest, name.to_string()),
        None => {
            let (repo, tag) = split_tag(name);
            let tag = tag.unwrap_or("latest");
            (repo, tag, format!("{repo}:{tag}"))
        }
    };
    let path = format!(
        "/images/create{}",
        query([("fromImage", repo.to_string()), ("tag", tag.to_string())])
    );
    let auth = auth_header(name);
    let headers = [("X-Registry-Auth", auth.as_str())];
    progress(c, &path, empty(), &headers, to_stderr, quiet).await?;
    Ok(pulled)
}

/// POSTs to `path` and shows the JSON progress stream it answers with (pull, push, load,
/// import); an `error` line in it fails the command.
async fn progress(
    c: &Client,
    path: &str,
    body: Body,
    headers: &[(&str, &str)],
    to_stderr: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut s = c.stream(Method::POST, path, body, headers).await?;
    let mut p = Progress::new(to_stderr, quiet);
    s.lines(|l| p.line(l)).await?;
    p.finish()
}

/// A request body read from `path`, or from stdin for `-`/none (refused on a terminal).
async fn input_body(path: Option<&str>) -> anyhow::Result<Body> {
    match path.filter(|p| *p != "-") {
        Some(path) => Ok(reader_body(tokio::fs::File::open(path).await.map_err(
            |e| Exit {
                code: 1,
                message: format!("Error: open {path}: {e}"),
            },
        )?)),
        None if std::io::stdin().is_terminal() => Err(Exit {
            code: 1,
            message: "Error: requested to read an archive from stdin, but stdin is a terminal"
                .into(),
        }
        .into()),
        None => Ok(reader_body(tokio::io::stdin())),
    }
}

/// Refuses an image reference that cannot go into a request path as it is (dockerd takes
/// `localhost:5000/a/b:v1` unescaped; `?`, `#`, spaces would change the request).
pub fn check_ref(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/@-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Exit {
            code: 1,
            message: format!(
                "Error: invalid reference format: {name:?} (valid: [HOST[:PORT]/]NAME[:TAG|@DIGEST] with letters, digits, . _ - / : @)"
            ),
        }
        .into())
    }
}

/// A tar archive's headers.
const TAR: &[(&str, &str)] = &[("Content-Type", "application/x-tar")];

/// The display of a JSON progress stream.
struct Progress {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    last: HashMap<String, String>,
    to_stderr: bool,
    quiet: bool,
    error: Option<String>,
}

impl Progress {
    fn new(to_stderr: bool, quiet: bool) -> Progress {
        let terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let bars = (terminal && !quiet).then(|| {
            let target = if to_stderr {
                indicatif::ProgressDrawTarget::stderr()
            } else {
                indicatif::ProgressDrawTarget::stdout()
            };
            (MultiProgress::with_draw_target(target), HashMap::new())
        });
        Progress {
            bars,
            last: HashMap::new(),
            to_stderr,
            quiet,
            error: None,
        }
    }

    fn print(&self, text: &str) {
        if self.quiet {
            return;
        }
        if let Some((mp, _)) = &self.bars {
            let _ = mp.println(text);
        } else if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    fn line(&mut self, raw: &[u8]) -> Result<(), ClientError> {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            return Ok(());
        }
        let Ok(v) = serde_json::from_slice::<Value>(raw) else {
            self.print(&String::from_utf8_lossy(raw));
            return Ok(());
        };
        if let Some(e) = v["error"].as_str() {
            self.error = Some(e.to_string());
            return Ok(());
        }
        if let Some(s) = v["stream"].as_str() {
            self.print(s.trim_end_matches('\n'));
            return Ok(());
        }
        let status = v["status"].as_str().unwrap_or("");
        let Some(id) = v["id"].as_str().filter(|i| !i.is_empty()) else {
            self.print(status);
            return Ok(());
        };
        let current = v["progressDetail"]["current"].as_u64();
        let total = v["progressDetail"]["total"].as_u64();
        if let Some((mp, bars)) = &mut self.bars {
            let bar = bars.entry(id.to_string()).or_insert_with(|| {
                let b = mp.add(ProgressBar::new(0));
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {msg:<12} {wide_bar} {bytes}/{total_bytes}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_prefix(id.to_string());
                b
            });
            bar.set_message(status.to_string());
            if let Some(t) = total {
                bar.set_length(t);
            }
            if let Some(cur) = current {
                bar.set_position(cur);
            }
            if status.ends_with("complete")
                || status == "Already exists"
                || status == "Pushed"
                || status == "Layer already exists"
            {
                bar.finish();
            }
        } else if self.last.get(id).map(String::as_str) != Some(status) {
            self.last.insert(id.to_string(), status.to_string());
            self.print(&format!("{id}: {status}"));
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Some((mp, bars)) = &self.bars {
            for b in bars.values() {
                b.finish();
            }
            let _ = mp.clear();
        }
        match self.error {
            Some(e) => Err(Exit {
                code: 1,
                message: e,
            }
            .into()),
            None => Ok(()),
        }
    }
}

/// The image commands.
pub async fn image(c: &Client, cmd: ImageCmd) -> anyhow::Result<i32> {
    match cmd {
        ImageCmd::Images {
            all,
            quiet,
            mut filter,
            format,
            no_trunc,
            digests,
            reference,
        } => {
            if let Some(r) = reference {
                filter.push(format!("reference={r}"));
            }
            let mut q = vec![("all", all.to_string())];
            q.extend(filters(&filter)?.map(|f| ("filters", f)));
            let list: Vec<Value> = c.get(&format!("/images/json{}", query(q))).await?;
            let now = now();
            let rows: Vec<Value> = list
                .iter()
                .flat_map(|i| rows::image_rows(i, now, no_trunc))
                .collect();
            let f = if quiet {
                Format::quiet()
            } else if digests && format.is_none() {
                Format::parse(
                    None,
                    "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
                )?
            } else {
                Format::parse(format.as_deref(), rows::IMAGES_TABLE)?
            };
            let mut out = Vec::new();
            f.write(&mut out, &rows, rows::IMAGES_HEADERS)?;
            if quiet {
                // One ID per image, not per tag.
                let mut seen = Vec::new();
                for l in String::from_utf8_lossy(&out).lines() {
                    if !seen.iter().any(|s: &String| s == l) {
                        seen.push(l.to_string());
                        println!("{l}");
                    }
                }
            } else {
                std::io::stdout().write_all(&out)?;
            }
            Ok(0)
        }
        ImageCmd::Pull { quiet, name } => {
            if !name.contains('@') && split_tag(&name).1.is_none() {
                println!("Using default tag: latest");
            }
            let pulled = pull(c, &name, false, quiet).await?;
            println!("{pulled}");
            Ok(0)
        }
        ImageCmd::Push { quiet, name } => {
            check_ref(&name)?;
            let (repo, tag) = split_tag(&name);
            let q = query(tag.map(|t| ("tag", t.to_string())));
            let auth = auth_header(&name);
            let headers = [("X-Registry-Auth", auth.as_str())];
            progress(
                c,
                &format!("/images/{repo}/push{q}"),
                empty(),
                &headers,
                false,
                quiet,
            )
            .await?;
            Ok(0)
        }
        ImageCmd::Tag { source, target } => {
            check_ref(&source)?;
            check_ref(&target)?;
            let (repo, tag) = split_tag(&target);
            let mut q = vec![("repo", repo.to_string())];
            q.extend(tag.map(|t| ("tag", t.to_string())));
            c.call(
                Method::POST,
                &format!("/images/{source}/tag{}", query(q)),
                None,
            )
            .await?;
            Ok(0)
        }
        ImageCmd::Rmi {
            force,
            no_prune,
            images,
        } => {
            for i in &images {
                check_ref(i)?;
            }
            for_each(&images, |n| async move {
                let out: Vec<Value> = c
                    .json(
                        Method::DELETE,
                        &format!("/images/{n}?force={force}&noprune={no_prune}"),
                        None,
                    )
                    .await?;
                let lines: Vec<String> = out
                    .iter()
                    .flat_map(|o| {
                        [("Untagged", &o["Untagged"]), ("Deleted", &o["Deleted"])]
                            .into_iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}: {v}")))
                    })
                    .collect();
                Ok((!lines.is_empty()).then(|| lines.join("\n")))
            })
            .await
        }
        ImageCmd::Save { output, images } => {
            for i in &images {
                check_ref(i)?;
            }
            let q = query(images.iter().map(|i| ("names", i.clone())));
            if output.is_none() && std::io::stdout().is_terminal() {
                return Err(Exit {
                    code: 1,
                    message: "Error: cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                }
                .into());
            }
            let s = c
                .stream(Method::GET, &format!("/images/get{q}"), empty(), &[])
                .await?;
            write_output(s, output.as_deref(), "failed to save image").await?;
            Ok(0)
        }
        ImageCmd::Load { input, quiet } => {
            let body = input_body(input.as_deref()).await?;
            progress(
                c,
                &format!("/images/load?quiet={quiet}"),
                body,
                TAR,
                false,
                false,
            )
            .await?;
            Ok(0)
        }
        ImageCmd::Login {
            username,
            password,
            password_stdin,
            server,
        } => {
            let usage = |m: &str| Exit {
                code: 1,
                message: format!("Error: {m}"),
            };
            let username = username.ok_or_else(|| usage("give the username with -u"))?;
            let password = match (password, password_stdin) {
                (Some(p), false) => p,
                (None, true) => {
                    let mut p = String::new();
                    std::io::stdin().read_line(&mut p)?;
                    p.trim_end_matches(['\n', '\r']).to_string()
                }
                (Some(_), true) => {
                    return Err(
                        usage("--password and --password-stdin are mutually exclusive").into(),
                    );
                }
                (None, false) => {
                    return Err(usage("give the password with -p or --password-stdin").into());
                }
            };
            let body = serde_json::json!({"username": username, "password": password, "serveraddress": server});
            let v: Value = c.json(Method::POST, "/auth", Some(&body)).await?;
            // Accepted: kept client-side, as Docker's CLI keeps it (berthd keeps nothing).
            let path = credentials_path();
            let login = berth_common::credentials::Login { username, password };
            let server = berth_common::credentials::normalise(&server);
            let kept = berth_common::credentials::load(&path).and_then(|cfg| {
                let cfg = berth_common::credentials::with_login(cfg, server, &login);
                berth_common::credentials::store(&path, &cfg)
            });
            kept.map_err(|e| Exit {
                code: 1,
                message: format!("Error saving credentials: {e}"),
            })?;
            eprintln!(
                "WARNING! Your password will be stored unencrypted in {}.",
                path.display()
            );
            println!("{}", v["Status"].as_str().unwrap_or("Login Succeeded"));
            Ok(0)
        }
        ImageCmd::Logout { server } => {
            let path = credentials_path();
            let cfg = berth_common::credentials::load(&path).map_err(|e| Exit {
                code: 1,
                message: format!("Error: {e}"),
            })?;
            let server = berth_common::credentials::normalise(&server).to_string();
            match berth_common::credentials::without(cfg, &server) {
                Some(cfg) => {
                    println!("Removing login credentials for {server}");
                    berth_common::credentials::store(&path, &cfg).map_err(|e| Exit {
                        code: 1,
                        message: format!("Error: {e}"),
                    })?;
                }
                None => println!("Not logged in to {server}"),
            }
            Ok(0)
        }
        ImageCmd::Import {
            change,
            message,
            file,
            reference,
        } => {
            let body = input_body(Some(&file)).await?;
            let mut q = vec![("fromSrc", "-".to_string())];
            q.extend(change.into_iter().map(|c| ("changes", c)));
            q.extend(message.map(|m| ("message", m)));
            if let Some(r) = &reference {
                let (repo, tag) = split_tag(r);
                q.push(("repo", repo.to_string()));
                q.extend(tag.map(|t| ("tag", t.to_string())));
            }
            progress(
                c,
                &format!("/images/create{}", query(q)),
                body,
                TAR,
                false,
                false,
            )
            .await?;
            Ok(0)
        }
        ImageCmd::History {
            no_trunc,
            quiet,
            format,
            image,
        } => {
            check_ref(&image)?;
            let list: Vec<Value> = c.get(&format!("/images/{image}/history")).await?;
            let now = now();
            let rows: Vec<Value> = list
                .iter()
                .map(|h| rows::history_row(h, now, no_trunc))
                .collect();
            super::print_rows(
                &rows,
                quiet,
                format.as_deref(),
                rows::HISTORY_TABLE,
                rows::HISTORY_HEADERS,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_that_would_change_the_request_are_refused() {
        for ok in [
            "busybox",
            "localhost:5000/a/b:v1",
            "bb@sha256:abc",
            "sha256:ff",
        ] {
            assert!(check_ref(ok).is_ok(), "{ok}");
        }
        for bad in ["alpine?x", "a b", "a#b", "", "é"] {
            let e = check_ref(bad).unwrap_err().to_string();
            assert!(e.contains("invalid reference format"), "{bad}: {e}");
        }
    }

    #[test]
    fn tags_split_as_docker() {
        assert_eq!(split_tag("busybox"), ("busybox", None));
        assert_eq!(split_tag("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(
            split_tag("localhost:5000/a/b"),
            ("localhost:5000/a/b", None)
        );
        assert_eq!(
            split_tag("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b", Some("v1"))
        );
    }

    #[test]
    fn progress_lines_dedupe_and_errors() {
        let mut p = Progress::new(true, true);
        p.line(br#"{"status":"Pulling from a/b","id":"v1"}"#)
            .unwrap();
        p.line(br#"{"status":"Downloading","id":"abc","progressDetail":{"current":1,"total":9}}"#)
            .unwrap();
        p.line(br#"{"status":"Downloading","id":"abc","progressDetail":{"current":5,"total":9}}"#)
            .unwrap();
        assert_eq!(p.last["abc"], "Downloading");
        p.line(b"{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r")
            .unwrap();
        let e = p.finish().unwrap_err();
        assert_eq!(e.to_string(), "boom");
    }
}
