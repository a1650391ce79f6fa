//! berth's model of the Docker Engine API, shared by berthd (which reads it), the engine (which
//! consumes it) and the `berth` CLI (which builds it), so a `docker run` is translated once:
//! flags into [`container_create::ContainerCreate`], which berthd reads back.
//!
//! - [`container_create`]: the body of `POST /containers/create`.
//! - [`filters`]: the `filters` query parameter and Docker's matching rules.
//! - [`stream`]: Docker's framing of a container's stdout and stderr.
//! - [`archive`]: `docker cp`'s path stat header.
//! - [`opts`]: the flag values Docker's clients and daemon both parse (`-e`, `--env-file`, `-v`,
//!   `--mount`, sizes, `--ulimit`).
//!
//! Pure: no I/O, no runtime.

pub mod archive;
pub mod container_create;
pub mod filters;
pub mod opts;
pub mod stream;
