//! The builder. The Dockerfile front end: its text read as instructions ([`dockerfile`]),
//! Docker's word and substitution rules ([`words`]), the stages and arguments ([`stages`]),
//! and the instructions that only change an image's run configuration ([`metadata`]), which
//! `docker commit --change` and `docker import --change` apply too. Then what runs a build:
//! the context ([`context`]), `COPY`/`ADD` as layers ([`copy`]), an image's files read-only
//! ([`view`]), the step cache ([`cache`]) and the steps on the engine ([`builder`]).

pub mod builder;
pub mod cache;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod metadata;
pub mod stages;
pub mod view;
pub mod words;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile, the context or the options are wrong (nothing was built for it).
    #[error("{0}")]
    Invalid(String),
    /// A step failed (its command, a pull, the store).
    #[error("{0}")]
    Failed(String),
    /// The client went away.
    #[error("the build's client went away")]
    Cancelled,
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        source: std::io::Error,
    },
}
