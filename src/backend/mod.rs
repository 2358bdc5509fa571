//! Connections to MariaDB servers: dialing, the client side of the handshake with the
//! router's service account, and the connection type the relay writes statements to.
//! Also the pools per shard master (and their wait queues), the health checker and the
//! opinions it publishes.

pub mod carried;
pub mod connection;
pub mod exchange;
pub mod health;
pub mod opinions;
pub mod pipeline;
pub mod pool;
mod queue;

pub use connection::{connect, BackendConn, BackendError, LoginOptions};
pub use pool::{PoolError, PoolKey, PoolLimits, PooledConn, Pools};
