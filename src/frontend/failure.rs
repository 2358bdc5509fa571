//! The session's one error pipeline. Each layer reports a failure in its own type —
//! routing a [`RouteError`], the pool a [`PoolError`], dbrouter's own exchanges with a
//! backend an [`ExchangeError`] or a [`PipelineError`], the relay a [`RelayError`], the
//! router's own refusals a [`ClientError`] — and a [`Failure`] joins them, with the shard
//! where the layer's error does not name it. [`Failure::reply`] is the one place where a
//! failure becomes what the client gets: a [`ClientError`] (whose client text leaves out
//! addresses and OS errors, and whose log text keeps them: `error.rs`), or a backend's own
//! ERR relayed unchanged. [`Failure::retryable`] asks that same mapping, so the hold/retry
//! logic and the message the client reads can never disagree.

use crate::backend::exchange::ExchangeError;
use crate::backend::pipeline::PipelineError;
use crate::backend::{BackendError, PoolError};
use crate::error::ClientError;
use crate::net::NetError;
use crate::router::RouteError;

use super::relay::RelayError;

/// Why a statement (or the session) failed, as the layer that failed reports it.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A decision of the router itself: a refusal, a limit, a malformed request.
    #[error(transparent)]
    Refused(#[from] ClientError),
    /// The statement cannot be routed to one shard.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// No connection to the shard's master could be had.
    #[error("shard '{shard}': {source}")]
    Checkout {
        /// Shard name.
        shard: String,
        /// The master dialled.
        addr: String,
        /// Whether the login was as the client's own account (its refusals are the
        /// client's business, see [`SERVER_SIDE_LOGIN_ERRORS`]).
        own_account: bool,
        /// What the pool reported.
        #[source]
        source: PoolError,
    },
    /// The session's state could not be restored on a connection it took.
    #[error("shard '{shard}': restoring the session's state: {source}")]
    Replay {
        /// Shard name.
        shard: String,
        /// What the pipeline reported.
        #[source]
        source: PipelineError,
    },
    /// A command dbrouter sent on its own (a replayed SET, a prepare copy, a rollback)
    /// failed on the connection.
    #[error("shard '{shard}': {source}")]
    Exchange {
        /// Shard name.
        shard: String,
        /// What the exchange reported.
        #[source]
        source: ExchangeError,
    },
    /// A client packet that cannot be taken (too large, out of order, cut short).
    #[error("client packet: {source}")]
    ClientPacket {
        /// The packet size limit in force (`server.max_packet_size`, or the
        /// connection phase's).
        limit: usize,
        /// What the framing reported.
        #[source]
        source: NetError,
    },
    /// Relaying a response failed on the backend's side.
    #[error("shard '{shard}': {source}")]
    Relay {
        /// Shard name.
        shard: String,
        /// What the relay reported.
        #[source]
        source: RelayError,
    },
}

/// What the client gets for a failure.
#[derive(Debug)]
pub enum Reply {
    /// The router's ERR packet for this error.
    Error(ClientError),
    /// The backend's own ERR packet (about the client's request, e.g. an unknown
    /// database), relayed unchanged.
    Relay(Vec<u8>),
}

/// Server error codes on a login that are about the server (its limits, its hosts, the
/// service account), not about what the client asked for: reported as the shard being
/// unavailable (retryable) instead of relayed.
const SERVER_SIDE_LOGIN_ERRORS: [u16; 6] = [1040, 1045, 1129, 1130, 1203, 1226];

/// Of those, the ones still about the server when the login was as the client's own
/// account (too many connections, the router's address blocked); access denied, host not
/// allowed and the account's connection limits are then the client's and relayed.
const SERVER_SIDE_OWN_LOGIN_ERRORS: [u16; 2] = [1040, 1129];

impl Failure {
    /// What the client gets: the one mapping from every layer's error.
    pub fn reply(&self) -> Reply {
        let lost = |shard: &String, detail: String| ClientError::BackendLost {
            shard: shard.clone(),
            detail,
        };
        Reply::Error(match self {
            Failure::Refused(e) => e.clone(),
            Failure::Route(e) => ClientError::Route(e.clone()),
            Failure::Checkout {
                shard,
                addr,
                own_account,
                source,
            } => match source {
                PoolError::Connect(BackendError::Server { payload, error, .. })
                    if !if *own_account {
                        &SERVER_SIDE_OWN_LOGIN_ERRORS[..]
                    } else {
                        &SERVER_SIDE_LOGIN_ERRORS[..]
                    }
                    .contains(&error.code) =>
                {
                    return Reply::Relay(payload.clone());
                }
                PoolError::Exhausted { addr, max, waited } => ClientError::PoolExhausted {
                    shard: shard.clone(),
                    addr: addr.clone(),
                    max: *max,
                    waited: *waited,
                    queue_full: false,
                },
                PoolError::QueueFull { addr, max, .. } => ClientError::PoolExhausted {
                    shard: shard.clone(),
                    addr: addr.clone(),
                    max: *max,
                    waited: std::time::Duration::ZERO,
                    queue_full: true,
                },
                PoolError::Connect(e) => ClientError::BackendUnavailable {
                    shard: shard.clone(),
                    addr: addr.clone(),
                    detail: e.to_string(),
                },
            },
            Failure::Replay { shard, source } => match source {
                PipelineError::Exchange(e) => exchange_error(shard, e),
                refused => ClientError::StateReplay {
                    shard: shard.clone(),
                    detail: refused.to_string(),
                },
            },
            Failure::Exchange { shard, source } => exchange_error(shard, source),
            Failure::ClientPacket { limit, source } => match source {
                NetError::TooLarge { .. } => ClientError::PacketTooLarge { limit: *limit },
                NetError::OutOfOrder { .. } => ClientError::PacketsOutOfOrder,
                other => ClientError::BadHandshake(other.to_string()),
            },
            Failure::Relay { shard, source } => match source {
                RelayError::BackendTimeout(after) => ClientError::BackendTimeout {
                    shard: shard.clone(),
                    after: *after,
                },
                other => lost(shard, other.to_string()),
            },
        })
    }

    /// Whether the client may simply retry: the statement did not run (a switching or
    /// unreachable master, a full pool). The session also asks it before it holds and
    /// retries a statement itself.
    pub fn retryable(&self) -> bool {
        match self.reply() {
            Reply::Error(e) => e.retryable(),
            Reply::Relay(_) => false,
        }
    }

    /// Whether the master could not be reached at all (as opposed to a full pool or a
    /// refusal): a newer topology may name another master that can.
    pub fn master_unreachable(&self) -> bool {
        matches!(
            self,
            Failure::Checkout {
                source: PoolError::Connect(
                    BackendError::Connect { .. }
                        | BackendError::Timeout { .. }
                        | BackendError::Net { .. }
                ),
                ..
            }
        ) && self.retryable()
    }
}

/// An internal exchange that failed: a timeout or a lost connection.
fn exchange_error(shard: &str, e: &ExchangeError) -> ClientError {
    match e {
        ExchangeError::Net(NetError::Timeout(after)) => ClientError::BackendTimeout {
            shard: shard.to_string(),
            after: *after,
        },
        other => ClientError::BackendLost {
            shard: shard.to_string(),
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn checkout(source: PoolError) -> Failure {
        Failure::Checkout {
            shard: "s1".into(),
            addr: "10.0.0.7:3306".into(),
            own_account: false,
            source,
        }
    }

    fn refused_login(code: u16, own_account: bool) -> Failure {
        let mut payload = vec![0xff];
        payload.extend_from_slice(&code.to_le_bytes());
        payload.extend_from_slice(b"#28000Access denied");
        Failure::Checkout {
            shard: "s1".into(),
            addr: "10.0.0.7:3306".into(),
            own_account,
            source: PoolError::Connect(BackendError::Server {
                addr: "10.0.0.7:3306".into(),
                error: crate::protocol::packets::parse_err(&payload).unwrap(),
                payload,
            }),
        }
    }

    #[test]
    fn a_refused_login_of_the_clients_own_account_is_relayed_and_the_services_is_not() {
        // The client's own account: access denied is the client's answer.
        let own = refused_login(1045, true);
        assert!(matches!(own.reply(), Reply::Relay(_)));
        assert!(!own.retryable());
        // The service account refused: the shard is unavailable to everyone (retryable).
        let service = refused_login(1045, false);
        assert!(matches!(service.reply(), Reply::Error(_)));
        assert!(service.retryable());
        // Too many connections is the server's, whoever logs in.
        assert!(matches!(refused_login(1040, true).reply(), Reply::Error(_)));
    }

    #[test]
    fn an_unreachable_master_is_retryable_and_its_address_stays_in_the_log() {
        let f = checkout(PoolError::Connect(BackendError::Timeout {
            addr: "10.0.0.7:3306".into(),
            after: Duration::from_secs(1),
        }));
        assert!(f.retryable());
        assert!(f.master_unreachable());
        let Reply::Error(e) = f.reply() else {
            panic!("not an error reply")
        };
        assert_eq!(e.code(), 1053);
        assert!(e.to_string().contains("10.0.0.7"), "log text: {e}");
        assert!(!e.client_text().contains("10.0.0.7"), "{}", e.client_text());
    }

    #[test]
    fn a_full_pool_is_retryable_but_not_a_reason_to_wait_for_the_topology() {
        let f = checkout(PoolError::Exhausted {
            addr: "10.0.0.7:3306".into(),
            max: 4,
            waited: Duration::from_millis(10),
        });
        assert!(f.retryable());
        assert!(!f.master_unreachable());
    }

    #[test]
    fn timeouts_of_internal_exchanges_and_relays_are_timeouts() {
        let after = Duration::from_millis(250);
        for f in [
            Failure::Exchange {
                shard: "s1".into(),
                source: ExchangeError::Net(NetError::Timeout(after)),
            },
            Failure::Replay {
                shard: "s1".into(),
                source: PipelineError::Exchange(ExchangeError::Net(NetError::Timeout(after))),
            },
            Failure::Relay {
                shard: "s1".into(),
                source: RelayError::BackendTimeout(after),
            },
        ] {
            let Reply::Error(e) = f.reply() else {
                panic!("not an error reply")
            };
            assert_eq!(e.code(), 1159, "{e}");
            assert!(!f.retryable(), "the outcome of {f} is unknown");
        }
    }

    #[test]
    fn a_refused_replay_is_a_state_error_and_a_lost_one_a_lost_connection() {
        let refused = Failure::Replay {
            shard: "s1".into(),
            source: PipelineError::Refused {
                code: 1193,
                message: "Unknown system variable 'x'".into(),
            },
        };
        let Reply::Error(e) = refused.reply() else {
            panic!("not an error reply")
        };
        assert_eq!((e.code(), e.closes_connection()), (1105, false));
        let lost = Failure::Exchange {
            shard: "s1".into(),
            source: ExchangeError::Net(NetError::Closed),
        };
        let Reply::Error(e) = lost.reply() else {
            panic!("not an error reply")
        };
        assert_eq!((e.code(), e.closes_connection()), (1158, true));
    }

    #[test]
    fn refusals_and_route_errors_keep_their_codes() {
        let f: Failure = ClientError::TablesLocked { shard: "s1".into() }.into();
        assert!(matches!(f.reply(), Reply::Error(e) if e.code() == 1235));
        assert!(!f.retryable());
    }
}
