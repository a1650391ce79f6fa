//! berth's command line client: Docker's commands and flags over berthd's API socket. The
//! parts that decide (Go-template `--format`, tables, `run` flags to a create body, Docker's
//! human units) are pure and tested here; `main.rs` talks to the socket.

pub mod client;
pub mod context;
pub mod events;
pub mod output;
pub mod rows;
pub mod run_args;
pub mod stats;
pub mod stream;
pub mod template;
pub mod update_args;
