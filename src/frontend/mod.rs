//! The client side: the listener (readiness, connection limit, graceful drain) and the
//! per-connection session (handshake, authentication, the command loop and the relay of
//! responses back to the client).

pub mod backends;
pub mod drain;
pub mod failure;
pub mod listener;
pub mod local;
pub mod relay;
pub mod session;
pub mod transaction;
pub mod workers;

pub use listener::{serve, ServeError};
