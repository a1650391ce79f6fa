//! berth's small shared helpers, used by netcore, the engine, berthd and the CLI alike: random
//! IDs ([`id`]), state files written so a crash never leaves half of one ([`persist`]), times as
//! Docker writes and reads them ([`time`]), numbers as Docker prints them ([`humanize`]) and the
//! daemons' process limits ([`limits`]), registry logins in Docker's file and its
//! `X-Registry-Auth` header ([`credentials`]). Pure but for [`persist`], [`id`], [`limits`] and
//! the file's load and store.

pub mod credentials;
pub mod humanize;
pub mod id;
pub mod limits;
pub mod pattern;
pub mod persist;
pub mod time;
