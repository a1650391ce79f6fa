//! A container's file system: `berth diff`, `berth export` and `berth commit`, as the docker
//! CLI runs them.

use std::io::IsTerminal;

use berth_cli::client::{Client, empty, enc, query};
use clap::{ArgAction, Subcommand};
use hyper::Method;
use serde_json::Value;

use super::image::{split_tag, write_output};
use crate::Exit;

#[derive(Subcommand, Debug)]
pub enum FilesystemCmd {
    /// Create a new image from a container's changes
    Commit {
        /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
        #[arg(short, long)]
        author: Option<String>,
        /// Apply Dockerfile instruction to the created image
        #[arg(short = 'c', long = "change")]
        change: Vec<String>,
        /// Commit message
        #[arg(short, long)]
        message: Option<String>,
        /// Pause container during commit
        #[arg(short, long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
        pause: bool,
        /// The container
        container: String,
        /// REPOSITORY[:TAG] for the new image
        reference: Option<String>,
    },
    /// Inspect changes to files or directories on a container's filesystem
    Diff {
        /// The container
        container: String,
    },
    /// Export a container's filesystem as a tar archive
    Export {
        /// Write to a file, instead of STDOUT
        #[arg(short, long)]
        output: Option<String>,
        /// The container
        container: String,
    },
}

/// Docker's letter for a change kind.
fn kind_letter(kind: u64) -> &'static str {
    match kind {
        0 => "C",
        1 => "A",
        _ => "D",
    }
}

pub async fn filesystem(c: &Client, cmd: FilesystemCmd) -> anyhow::Result<i32> {
    match cmd {
        FilesystemCmd::Commit {
            author,
            change,
            message,
            pause,
            container,
            reference,
        } => {
            let mut q = vec![("container", container)];
            if let Some(r) = &reference {
                let (repo, tag) = split_tag(r);
                q.push(("repo", repo.to_string()));
                q.extend(tag.map(|t| ("tag", t.to_string())));
            }
            q.extend(author.map(|a| ("author", a)));
            q.extend(message.map(|m| ("comment", m)));
            q.push(("pause", if pause { "1" } else { "0" }.to_string()));
            q.extend(change.into_iter().map(|c| ("changes", c)));
            let v: Value = c
                .json(Method::POST, &format!("/commit{}", query(q)), None)
                .await?;
            println!("{}", v["Id"].as_str().unwrap_or_default());
            Ok(0)
        }
        FilesystemCmd::Diff { container } => {
            let rows: Vec<Value> = c
                .get(&format!("/containers/{}/changes", enc(&container)))
                .await?;
            for r in rows {
                println!(
                    "{} {}",
                    kind_letter(r["Kind"].as_u64().unwrap_or(2)),
                    r["Path"].as_str().unwrap_or_default()
                );
            }
            Ok(0)
        }
        FilesystemCmd::Export { output, container } => {
            if output.is_none() && std::io::stdout().is_terminal() {
                return Err(Exit {
                    code: 1,
                    message: "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        .into(),
                }
                .into());
            }
            let s = c
                .stream(
                    Method::GET,
                    &format!("/containers/{}/export", enc(&container)),
                    empty(),
                    &[],
                )
                .await?;
            write_output(s, output.as_deref(), "failed to export container").await?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_as_docker() {
        assert_eq!([0, 1, 2].map(kind_letter), ["C", "A", "D"]);
    }
}
