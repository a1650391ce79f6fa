//! Images: what they are called ([`reference`]), where their bytes live ([`store`]), and how a
//! layer becomes a directory ([`layer`]).

pub mod layer;
pub mod manifest;
pub mod reference;
pub mod store;
