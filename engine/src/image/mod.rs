//! Images: what they are called ([`reference`]), what registries and archives describe them with
//! ([`manifest`]), where their bytes live ([`store`]), how a layer becomes a directory
//! ([`layer`]), how they travel to and from registries ([`registry`]), and how Docker shows them
//! ([`inspect`]).

pub mod archive;
pub mod background;
pub mod inspect;
pub mod layer;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod store;
