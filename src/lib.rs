//! dbrouter: a MySQL wire-protocol sharding proxy.
//!
//! A statement flows one way: client socket ([`frontend`]) → session state machine →
//! routing → backend connection ([`backend`]) → back to the client socket. Framing lives
//! in [`net`], packet layouts and authentication in [`protocol`], configuration in
//! [`config`], and every MySQL error the router itself sends is built in [`error`].
//! [`server`] wires them together for `dbrouter serve`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod backend;
pub mod config;
pub mod ctl;
pub mod error;
pub mod failover;
pub mod frontend;
pub mod metrics;
pub mod moves;
pub mod net;
pub mod protocol;
pub mod router;
pub mod server;
pub mod topology;

#[cfg(test)]
mod test_rng;
