//! Volumes: what `-v` and `--mount` ask for ([`spec`]) and the local volume store
//! ([`store`]).

pub mod store;
