//! End-to-end protocol tests: real clients (mysql_async, and a raw packet client for the
//! commands drivers rarely send) through a real dbrouter against the real MariaDB cluster
//! started by `scripts/test` (`scripts/dev-cluster`), compared with the same statements
//! sent directly to MariaDB where that makes the test stronger.
//!
//! They need the cluster's environment (`eval "$(scripts/dev-cluster env)"`); without it
//! they fail with a message saying so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod auth;
mod auto_failover;
mod bad_input;
mod conformance;
mod failover;
mod harness;
mod identity;
mod in_process;
mod kill;
mod lifecycle;
mod limits;
mod moves;
mod multiplex;
mod oracle;
mod placement;
mod prepared;
mod queries;
pub mod raw;
mod reload;
mod scripted;
pub mod sharding;
mod tls;
mod topology;
mod transactions;
mod zk_ensemble;
