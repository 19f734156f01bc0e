//! Who the members are: the directory read from the registry, this node's own registration
//! in it, and riding out a registry outage.

pub mod directory;
pub mod outage;
pub mod registration;
