//! berth's small shared helpers, used by netcore, the engine, berthd and the CLI alike: random
//! IDs ([`id`]), state files written so a crash never leaves half of one ([`persist`]), times as
//! Docker writes and reads them ([`time`]) and numbers as Docker prints them ([`humanize`]).
//! Pure but for [`persist`] and [`id`], which touch the filesystem.

pub mod humanize;
pub mod id;
pub mod persist;
pub mod time;
