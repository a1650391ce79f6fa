//! Flag values as Docker reads them, wherever they are read: the CLI refuses a bad one before
//! anything reaches berthd, and berthd reads the same strings from API bodies (`Binds`, `Env`).

pub mod device;
pub mod env;
pub mod mount;
pub mod security;
pub mod ulimit;
