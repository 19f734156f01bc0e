//! The protocol, pure: the Bully election as a state machine, the members it ranks, the rules
//! every input must pass and the messages nodes exchange. Nothing in here opens a socket, reads
//! a clock, sleeps or starts a thread; the shell in [`crate::runtime`] does all of that and
//! feeds what happened back in as [`event::Event`]s.

pub mod announcements;
pub mod busy;
pub mod claim;
pub mod control;
pub mod election;
pub mod event;
mod failure;
#[cfg(test)]
mod fixtures;
pub mod lease;
pub mod lock;
pub mod member;
pub mod note;
pub mod quorum;
pub mod quorum_lease;
pub mod ready;
mod round;
pub mod round_state;
pub mod rules;
pub mod settings;
pub mod standing;
pub mod terms;
pub mod verdict;
pub mod watched;
pub mod wire;
