//! The Docker Engine API as plain functions over data: what a request body asks for
//! ([`create`]), how a container looks to a client ([`views`]), `filters` ([`filters`]), the
//! version prefix ([`version`]), errors in Docker's shape ([`error`]), stats ([`stats`]) and
//! events ([`events`]).

pub mod create;
pub mod error;
pub mod events;
pub mod filters;
pub mod network;
pub mod stats;
pub mod update;
pub mod version;
pub mod views;
