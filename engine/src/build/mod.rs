//! The Dockerfile front end: its text read as instructions ([`dockerfile`]), Docker's word
//! and substitution rules ([`words`]), and the instructions that only change an image's run
//! configuration ([`metadata`]), which `docker commit --change` and `docker import --change`
//! apply too.

pub mod dockerfile;
pub mod metadata;
pub mod words;
