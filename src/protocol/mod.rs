//! The MySQL client/server protocol as dbrouter speaks it: command codes, the packets
//! the router writes itself (greeting, OK, ERR, auth switch), the few fields it decodes
//! from relayed packets (terminator status flags), password verification, and the
//! response state machine that tells where a relayed response ends.
//!
//! Packet structs and scrambles come from `mysql_common`; framing is in [`crate::net`].

pub mod auth;
pub mod command;
pub mod handshake;
pub mod packets;
pub mod response;
