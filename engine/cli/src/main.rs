//! `berth`: Docker's commands, flags, output and exit codes, as a client of berthd's socket
//! (`-H`, `BERTH_HOST`; default unix:///run/berth.sock), or of its TCP listener over TLS
//! with a client certificate (`-H tcp://host:port --tlsverify --tlscacert --tlscert --tlskey`,
//! or `BERTH_TLS_VERIFY=1 BERTH_CERT_PATH=dir` with ca.pem, cert.pem and key.pem). `run` exits with the
//! container's code, 125 when berthd refuses, 126/127 when the command cannot be invoked or
//! found; other commands exit 1 on error, and usage errors exit 125, as the docker CLI's do.

mod cmd;

use std::io::Write;
use std::path::PathBuf;

use berth_cli::client::{Client, ClientError};
use clap::{CommandFactory, Parser, Subcommand};

use cmd::container::{ContainerCmd, RunCmd};
use cmd::image::ImageCmd;
use cmd::network::{NetworkCmd, VolumeCmd};
use cmd::system::SystemCmd;

/// berth: containers with Docker's commands, served by berthd.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, disable_help_subcommand = true)]
struct Cli {
    /// Daemon socket to connect to
    #[arg(
        short = 'H',
        long = "host",
        env = "BERTH_HOST",
        default_value = "unix:///run/berth.sock",
        global = true
    )]
    host: String,
    /// Use TLS and verify the remote (berth always verifies berthd over TCP)
    // BERTH_TLS_VERIFY: any value but "", 0, false, no, off (DOCKER_TLS_VERIFY takes any).
    #[arg(
        long,
        env = "BERTH_TLS_VERIFY",
        value_parser = clap::builder::FalseyValueParser::new(),
        global = true
    )]
    tlsverify: bool,
    /// Trust certs signed only by this CA [default: BERTH_CERT_PATH/ca.pem]
    #[arg(long, global = true)]
    tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file [default: BERTH_CERT_PATH/cert.pem]
    #[arg(long, global = true)]
    tlscert: Option<PathBuf>,
    /// Path to TLS key file [default: BERTH_CERT_PATH/key.pem]
    #[arg(long, global = true)]
    tlskey: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    #[command(flatten)]
    Run(Box<RunCmd>),
    #[command(flatten)]
    Container(ContainerCmd),
    #[command(flatten)]
    Image(ImageCmd),
    #[command(flatten)]
    Filesystem(cmd::filesystem::FilesystemCmd),
    /// Build an image from a Dockerfile
    Build(Box<cmd::build::BuildArgs>),
    /// Manage builds
    #[command(subcommand)]
    Builder(cmd::build::BuilderCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCmd),
    #[command(flatten)]
    System(SystemCmd),
    /// Generate the autocompletion script for the specified shell
    Completion {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

/// An exit with a code other than 1, carrying what to print (run's 125/126/127, a
/// container's own code with nothing to print).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process's exit code.
    pub code: i32,
    /// Printed to stderr when not empty.
    pub message: String,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 125,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Cmd::Completion { shell } = cli.cmd {
        clap_complete::generate(shell, &mut Cli::command(), "berth", &mut std::io::stdout());
        return;
    }
    let code = match client(&cli) {
        Err(e) => {
            eprintln!("berth: {e}");
            125
        }
        Ok(client) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let code = match rt.block_on(dispatch(client, cli.cmd)) {
                Ok(code) => code,
                Err(e) => report(&e),
            };
            // A stdin reader may still be blocked in a thread of the runtime: leave it.
            rt.shutdown_background();
            code
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// The client of `-H`: a Unix socket, or TCP with TLS (the files from the flags, or
/// BERTH_CERT_PATH's ca.pem, cert.pem and key.pem; the docker CLI's DOCKER_CERT_PATH).
fn client(cli: &Cli) -> Result<Client, String> {
    if !cli.host.starts_with("tcp://") {
        return Client::new(&cli.host);
    }
    let dir = std::env::var_os("BERTH_CERT_PATH")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let file = |flag: &Option<PathBuf>, name: &str| {
        flag.clone().or_else(|| dir.as_ref().map(|d| d.join(name)))
    };
    match (
        cli.tlsverify,
        file(&cli.tlscacert, "ca.pem"),
        file(&cli.tlscert, "cert.pem"),
        file(&cli.tlskey, "key.pem"),
    ) {
        (true, Some(ca), Some(cert), Some(key)) => Client::with_tls(&cli.host, &ca, &cert, &key),
        (verify, ca, cert, key) => {
            let missing: Vec<&str> = [
                ("--tlsverify", !verify),
                ("--tlscacert", ca.is_none()),
                ("--tlscert", cert.is_none()),
                ("--tlskey", key.is_none()),
            ]
            .into_iter()
            .filter_map(|(flag, absent)| absent.then_some(flag))
            .collect();
            Err(format!(
                "refusing to connect to {} without {} (or BERTH_TLS_VERIFY=1 and BERTH_CERT_PATH with ca.pem, cert.pem and key.pem): berth speaks TCP to berthd only over TLS with client certificates",
                cli.host,
                missing.join(", ")
            ))
        }
    }
}

/// Prints `e` as the docker CLI does and gives the exit code.
fn report(e: &anyhow::Error) -> i32 {
    if let Some(x) = e.downcast_ref::<Exit>() {
        if !x.message.is_empty() {
            eprintln!("{}", x.message);
        }
        return x.code;
    }
    if let Some(c) = e.downcast_ref::<ClientError>() {
        eprintln!("{c}");
    } else {
        eprintln!("Error: {e:#}");
    }
    1
}

async fn dispatch(client: Client, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Run(c) => cmd::container::run_cmd(&client, *c).await,
        Cmd::Container(c) => cmd::container::container(&client, c).await,
        Cmd::Image(c) => cmd::image::image(&client, c).await,
        Cmd::Filesystem(c) => cmd::filesystem::filesystem(&client, c).await,
        Cmd::Build(a) => cmd::build::build(&client, *a).await,
        Cmd::Builder(c) => cmd::build::builder(&client, c).await,
        Cmd::Network(c) => cmd::network::network(&client, c).await,
        Cmd::Volume(c) => cmd::network::volume(&client, c).await,
        Cmd::System(c) => cmd::system::system(&client, c).await,
        Cmd::Completion { .. } => unreachable!("handled before the runtime starts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dockers_flags_parse() {
        let c = Cli::try_parse_from([
            "berth", "run", "-d", "--name", "web", "-p", "8080:80", "-h", "box", "busybox",
            "httpd", "-f", "-p", "80",
        ])
        .unwrap();
        let Cmd::Run(run) = c.cmd else {
            panic!("not run")
        };
        let RunCmd::Run(r) = *run else {
            panic!("not run")
        };
        assert!(r.detach);
        assert_eq!(r.args.hostname.as_deref(), Some("box"));
        assert_eq!(r.image, "busybox");
        assert_eq!(r.command, ["httpd", "-f", "-p", "80"]);
        let c = Cli::try_parse_from(["berth", "-H", "unix:///tmp/b.sock", "ps", "-aq"]).unwrap();
        assert_eq!(c.host, "unix:///tmp/b.sock");
        assert!(Cli::try_parse_from(["berth", "run", "--bogus", "x"]).is_err());
    }

    #[test]
    fn tcp_hosts_need_tls() {
        let c = Cli::try_parse_from(["berth", "-H", "tcp://127.0.0.1:2376", "ps"]).unwrap();
        let e = client(&c).unwrap_err();
        assert!(
            e.contains("refusing to connect to tcp://127.0.0.1:2376 without --tlsverify, --tlscacert, --tlscert, --tlskey"),
            "{e}"
        );
        let c = Cli::try_parse_from([
            "berth",
            "-H",
            "tcp://127.0.0.1:2376",
            "--tlsverify",
            "--tlscacert",
            "/c/ca.pem",
            "ps",
        ])
        .unwrap();
        let e = client(&c).unwrap_err();
        assert!(e.contains(" without --tlscert, --tlskey ("), "{e}");
        // The flags after the command too (global), and a missing file named.
        let c = Cli::try_parse_from([
            "berth",
            "-H",
            "tcp://127.0.0.1:2376",
            "version",
            "--tlsverify",
            "--tlscacert",
            "/nonexistent/ca.pem",
            "--tlscert",
            "/nonexistent/cert.pem",
            "--tlskey",
            "/nonexistent/key.pem",
        ])
        .unwrap();
        assert!(c.tlsverify);
        let e = client(&c).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
