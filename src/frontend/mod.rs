//! The client side: the listener (connection limit, graceful drain), the serving
//! threads, and the per-connection session (handshake, authentication, the command loop
//! and the relay of responses back to the client). Built and started by
//! [`crate::server`].

pub mod accounts;
pub mod backends;
pub mod drain;
pub mod failure;
pub mod kill;
pub mod listener;
pub mod local;
pub mod login_limits;
pub mod process;
pub mod relay;
pub mod session;
pub mod sessions;
pub mod transaction;
pub mod workers;
