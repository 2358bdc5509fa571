//! Connections to MariaDB servers: dialing, the client side of the handshake with the
//! router's service account, and the connection type the relay writes statements to.
//! (Pooling per shard master arrives with sharding; see docs/architecture.md.)

pub mod connection;
pub mod exchange;
pub mod pool;

pub use connection::{connect, BackendConn, BackendError, LoginOptions};
pub use pool::{PoolError, PoolKey, PoolLimits, PooledConn, Pools};
