//! berthd: serves the Docker Engine API (version 1.43, minimum 1.24) on a Unix socket over
//! berth's engine. [`api`] holds the pure parts — request bodies to engine options, records to
//! Docker's JSON, filters, errors to status codes — and [`routes`] the routes that apply them.
#![recursion_limit = "256"]

pub mod api;
pub mod config;
pub mod events;
pub mod routes;
pub mod tls;
