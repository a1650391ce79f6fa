//! The Docker Engine API as plain functions over data: what a request body asks for
//! ([`create`]), how a container looks to a client ([`views`]), `filters` ([`filters`]), the
//! version prefix ([`version`]) and errors in Docker's shape ([`error`]).

pub mod create;
pub mod error;
pub mod filters;
pub mod network;
pub mod version;
pub mod views;
