//! Transactions through a router over both shards, checked on the masters themselves
//! (committed rows read directly, open transactions in `INNODB_TRX`): one named test per
//! case of the transaction bug report, and a randomized test that interleaves transaction
//! statements with keyed and keyless statements for users of both shards and checks the
//! invariants after every step (docs/sharding.md, "Transactions"):
//!
//! * at most one shard has an open transaction for the session;
//! * an OK for COMMIT means every write of the transaction is committed;
//! * a ROLLBACK, or an error that says "rolled back", leaves nothing of it.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::harness::*;
use crate::sharding::{create_on_both, direct_to, users_on_both};

const SHARDING: &str = r#"
[sharding]
key_column = "userid"
key_type = "bigint unsigned"
global_shard = "shard1"
global_tables = ["countries"]
"#;

/// A router over both shards, a fresh database `db` with `posts` on both masters, and
/// users `a` and `b` on different shards with their masters.
struct Lab {
    router: TestRouter,
    db: String,
    a: u64,
    b: u64,
    a_master: String,
    b_master: String,
}

impl Lab {
    async fn new(db: &str) -> Lab {
        create_on_both(db, "posts").await;
        let router = TestRouter::start(two_shards(SHARDING));
        let (a, b, _) = users_on_both(&router);
        let table = router.routing();
        let master = |u: u64| {
            let shard = table.shard_for_key(u.to_string().as_bytes()).0;
            table.shard(shard).unwrap().master.clone()
        };
        let (a_master, b_master) = (master(a), master(b));
        Lab {
            router,
            db: db.into(),
            a,
            b,
            a_master,
            b_master,
        }
    }

    async fn conn(&self) -> Conn {
        self.router.app_conn(Some(&self.db)).await
    }

    /// Committed rows with this body on `master` (read directly, READ COMMITTED).
    async fn committed(&self, master: &str, body: &str) -> i64 {
        let mut d = direct_to(master, Some(&self.db)).await;
        d.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await
            .unwrap();
        let n: Option<i64> = d
            .exec_first("SELECT COUNT(*) FROM posts WHERE body = ?", (body,))
            .await
            .unwrap();
        d.disconnect().await.unwrap();
        n.unwrap_or(0)
    }

    /// Committed rows with this body on either master.
    async fn committed_anywhere(&self, body: &str) -> i64 {
        self.committed(&self.a_master, body).await + self.committed(&self.b_master, body).await
    }

    /// Whether at most `most` masters hold an open InnoDB transaction of a session using
    /// this test's database. `INNODB_TRX` is a cache refreshed at most every 100 ms and
    /// may still show a transaction that ended: a count above `most` is read again until
    /// it holds for a whole second.
    async fn at_most_open(&self, most: usize) -> bool {
        for _ in 0..8 {
            if self.shards_with_open_transactions().await <= most {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        false
    }

    /// How many masters hold an open InnoDB transaction of a session using this test's
    /// database (the router's backend connections for this test), as `INNODB_TRX` shows.
    async fn shards_with_open_transactions(&self) -> usize {
        let mut n = 0;
        for master in [&self.a_master, &self.b_master] {
            let mut d = direct_to(master, None).await;
            let open: Vec<(u64, String, Option<String>)> = d
                .exec(
                    "SELECT t.trx_mysql_thread_id, t.trx_state, p.INFO \
                     FROM information_schema.INNODB_TRX t \
                     JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
                     WHERE p.DB = ?",
                    (&self.db,),
                )
                .await
                .unwrap();
            d.disconnect().await.unwrap();
            n += usize::from(!open.is_empty());
        }
        n
    }
}

fn code(r: Result<(), mysql_async::Error>) -> u16 {
    match r {
        Ok(()) => 0,
        Err(e) => server_error(e).0,
    }
}

/// Case 1: with `autocommit = 0`, a SET that reads a sharded table used to open a second
/// transaction on the other shard, and COMMIT then committed one shard only.
#[tokio::test]
async fn autocommit_off_never_commits_half() {
    let lab = Lab::new("tx_case1").await;
    let (a, b) = (lab.a, lab.b);
    let mut c = lab.conn().await;
    c.query_drop(format!("SELECT * FROM posts WHERE userid = {a}"))
        .await
        .unwrap();
    c.query_drop(format!("SELECT * FROM posts WHERE userid = {b}"))
        .await
        .unwrap();
    c.query_drop("SET autocommit = 0").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'case1')"
    ))
    .await
    .unwrap();
    // Reads a sharded table without its key: refused, never broadcast.
    assert_eq!(
        code(c.query_drop("SET @n = (SELECT COUNT(*) FROM posts)").await),
        1235
    );
    assert!(lab.at_most_open(1).await);
    c.query_drop("COMMIT").await.unwrap();
    assert_eq!(lab.committed(&lab.a_master, "case1").await, 1);
    assert!(lab.at_most_open(0).await);
}

/// Case 2: a compound statement and a transaction inside a batch are refused, not
/// answered OK and dropped.
#[tokio::test]
async fn compound_statements_and_transaction_batches_are_refused() {
    let lab = Lab::new("tx_case2").await;
    let a = lab.a;
    let mut c = lab.conn().await;
    let compound =
        format!("BEGIN NOT ATOMIC INSERT INTO posts (userid, body) VALUES ({a}, 'case2a'); END");
    assert_eq!(code(c.query_drop(compound).await), 1235);
    let batch = format!("BEGIN; INSERT INTO posts (userid, body) VALUES ({a}, 'case2b'); COMMIT");
    assert_eq!(code(c.query_drop(batch).await), 1235);
    c.query_drop("SELECT 1").await.unwrap();
    assert_eq!(lab.committed_anywhere("case2a").await, 0);
    assert_eq!(lab.committed_anywhere("case2b").await, 0);
}

/// Case 3: CALL runs inside the open transaction (on the shard its hint names), and a
/// keyless CALL is refused.
#[tokio::test]
async fn call_runs_inside_the_transaction() {
    let lab = Lab::new("tx_case3").await;
    let a = lab.a;
    for master in [&lab.a_master, &lab.b_master] {
        let mut d = direct_to(master, Some(&lab.db)).await;
        d.query_drop(
            "CREATE OR REPLACE PROCEDURE p(u BIGINT UNSIGNED, t VARCHAR(100)) \
             INSERT INTO posts (userid, body) VALUES (u, t)",
        )
        .await
        .unwrap();
    }
    let mut c = lab.conn().await;
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop(format!("/* userid={a} */ CALL p({a}, 'case3')"))
        .await
        .unwrap();
    c.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(lab.committed_anywhere("case3").await, 0);
    assert_eq!(
        code(c.query_drop(format!("CALL p({a}, 'case3b')")).await),
        1235
    );
    assert_eq!(lab.committed_anywhere("case3b").await, 0);
}

/// Case 4: XA is refused outright, so no XA branch can outlive a refusal.
#[tokio::test]
async fn xa_is_refused() {
    let lab = Lab::new("tx_case4").await;
    let mut c = lab.conn().await;
    for sql in ["XA START 'x1'", "XA RECOVER", "xa commit 'x1'"] {
        assert_eq!(code(c.query_drop(sql).await), 1235, "{sql}");
    }
    assert!(lab.at_most_open(0).await);
}

/// Case 5: WITH CONSISTENT SNAPSHOT takes its snapshot at START, on the pinned shard;
/// without a known shard it is refused.
#[tokio::test]
async fn consistent_snapshot_starts_where_it_is_asked_for() {
    let lab = Lab::new("tx_case5").await;
    let a = lab.a;
    let mut c = lab.conn().await;
    assert_eq!(
        code(
            c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
        ),
        1235
    );
    c.query_drop(format!("SET @dbrouter_userid = {a}"))
        .await
        .unwrap();
    c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .unwrap();
    let mut d = direct_to(&lab.a_master, Some(&lab.db)).await;
    d.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'case5-late')"
    ))
    .await
    .unwrap();
    let seen: Option<i64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM posts WHERE userid = {a} AND body = 'case5-late'"
        ))
        .await
        .unwrap();
    assert_eq!(
        seen,
        Some(0),
        "the snapshot was taken after START TRANSACTION"
    );
    c.query_drop("COMMIT").await.unwrap();
}

/// Case 6: UNLOCK TABLES goes to the shard holding the locks; other shards are refused
/// while they are held.
#[tokio::test]
async fn unlock_tables_reaches_the_locks() {
    let lab = Lab::new("tx_case6").await;
    let (a, b) = (lab.a, lab.b);
    let mut c = lab.conn().await;
    c.query_drop(format!("SELECT * FROM posts WHERE userid = {b}"))
        .await
        .unwrap();
    c.query_drop(format!("/* userid={a} */ LOCK TABLES posts WRITE"))
        .await
        .unwrap();
    assert_eq!(
        code(
            c.query_drop(format!("SELECT * FROM posts WHERE userid = {b}"))
                .await
        ),
        1235
    );
    c.query_drop("UNLOCK TABLES").await.unwrap();
    // The lock is gone: a direct writer does not wait for it.
    let mut d = direct_to(&lab.a_master, Some(&lab.db)).await;
    d.query_drop("SET SESSION lock_wait_timeout = 2")
        .await
        .unwrap();
    d.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'case6')"
    ))
    .await
    .unwrap();
    c.query_drop(format!("SELECT * FROM posts WHERE userid = {b}"))
        .await
        .unwrap();
}

/// Case 7: a one-shot SET TRANSACTION applies to the next transaction only, wherever it
/// runs, and never becomes session state.
#[tokio::test]
async fn one_shot_set_transaction_is_not_session_state() {
    let lab = Lab::new("tx_case7").await;
    let (a, b) = (lab.a, lab.b);
    let mut c = lab.conn().await;
    c.query_drop(format!("SELECT * FROM posts WHERE userid = {a}"))
        .await
        .unwrap();
    c.query_drop("SET TRANSACTION READ ONLY").await.unwrap();
    c.query_drop("BEGIN").await.unwrap();
    // The next transaction is read only (MariaDB's 1792)…
    assert_eq!(
        code(
            c.query_drop(format!(
                "INSERT INTO posts (userid, body) VALUES ({b}, 'case7a')"
            ))
            .await
        ),
        1792
    );
    c.query_drop("ROLLBACK").await.unwrap();
    // … and only that one, on every shard.
    for u in [a, b] {
        c.query_drop(format!(
            "INSERT INTO posts (userid, body) VALUES ({u}, 'case7b')"
        ))
        .await
        .unwrap();
    }
    assert_eq!(lab.committed_anywhere("case7b").await, 2);
}

/// Case 8: LAST_INSERT_ID() answers for the last statement that generated an id, not for
/// the shard of the last statement.
#[tokio::test]
async fn last_insert_id_answers_for_the_last_insert() {
    let lab = Lab::new("tx_case8").await;
    let (a, b) = (lab.a, lab.b);
    let mut c = lab.conn().await;
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({a}, 'case8')"
    ))
    .await
    .unwrap();
    let id = c.last_insert_id().unwrap();
    c.query_drop(format!("SELECT * FROM posts WHERE userid = {b}"))
        .await
        .unwrap();
    let got: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
    assert_eq!(got, Some(id));
}

/// Case 9: COMMIT RELEASE closes the client connection after committing; COMMIT AND
/// CHAIN and savepoints before the transaction's first statement keep it on the right
/// shard.
#[tokio::test]
async fn release_chain_and_savepoints() {
    let lab = Lab::new("tx_case9").await;
    let (a, b) = (lab.a, lab.b);
    let mut c = lab.conn().await;
    c.query_drop(format!("SELECT * FROM posts WHERE userid = {a}"))
        .await
        .unwrap();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("SAVEPOINT s1").await.unwrap();
    c.query_drop("COMMIT AND CHAIN").await.unwrap();
    c.query_drop("SAVEPOINT s2").await.unwrap();
    // The chained transaction starts on b's shard, not on the last-used one.
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({b}, 'case9a')"
    ))
    .await
    .unwrap();
    c.query_drop("ROLLBACK TO SAVEPOINT s2").await.unwrap();
    c.query_drop(format!(
        "INSERT INTO posts (userid, body) VALUES ({b}, 'case9b')"
    ))
    .await
    .unwrap();
    c.query_drop("ROLLBACK TO SAVEPOINT nosuch")
        .await
        .map_or_else(
            |e| assert_eq!(server_error(e).0, 1305),
            |()| panic!("no such savepoint"),
        );
    c.query_drop("COMMIT RELEASE").await.unwrap();
    assert_eq!(lab.committed(&lab.b_master, "case9a").await, 0);
    assert_eq!(lab.committed(&lab.b_master, "case9b").await, 1);
    // The router closed the connection: the next statement fails as a lost connection,
    // never with an error for a statement that did not run.
    let next = tokio::time::timeout(Duration::from_secs(10), c.query_drop("SELECT 1")).await;
    assert!(
        matches!(next, Ok(Err(ref e)) if !matches!(e, mysql_async::Error::Server(_))),
        "{next:?}"
    );
}

/// The invariants under a random mix of transaction statements, keyed statements for
/// both users, keyless statements and autocommit changes.
#[tokio::test]
async fn random_interleavings_keep_the_invariants() {
    let lab = Lab::new("tx_random").await;
    let (a, b) = (lab.a, lab.b);
    let mut c = lab.conn().await;
    let mut seed: u64 = 0x7a11_5eed_0bad_cafe;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // The model: writes of the current transaction, whether one is open, autocommit.
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut explicit = false;
    let mut autocommit = true;
    let mut log: Vec<String> = Vec::new();
    for step in 0..150 {
        let user = if next(2) == 0 { a } else { b };
        let master = if user == a {
            lab.a_master.clone()
        } else {
            lab.b_master.clone()
        };
        let body = format!("r{step}");
        let sql = match next(10) {
            0 => "BEGIN".to_string(),
            1 => "COMMIT".to_string(),
            2 => "ROLLBACK".to_string(),
            3..=5 => format!("INSERT INTO posts (userid, body) VALUES ({user}, '{body}')"),
            6 => format!("SELECT COUNT(*) FROM posts WHERE userid = {user}"),
            7 => "SELECT 1".to_string(),
            8 => format!("SET autocommit = {}", next(2)),
            _ => "SAVEPOINT s".to_string(),
        };
        log.push(sql.clone());
        let result = c.query_drop(&sql).await;
        let in_tx = explicit || !autocommit;
        match (&result, sql.as_str()) {
            (Ok(()), "BEGIN") => {
                // BEGIN commits what was open.
                for (m, body) in pending.drain(..) {
                    assert_eq!(lab.committed(&m, &body).await, 1, "{log:?}");
                }
                explicit = true;
            }
            (Ok(()), "COMMIT") => {
                for (m, body) in pending.drain(..) {
                    assert_eq!(lab.committed(&m, &body).await, 1, "COMMIT said OK: {log:?}");
                }
                explicit = false;
            }
            (Ok(()), "ROLLBACK") => {
                for (_, body) in pending.drain(..) {
                    assert_eq!(lab.committed_anywhere(&body).await, 0, "{log:?}");
                }
                explicit = false;
            }
            (Ok(()), s) if s.starts_with("SET autocommit") => {
                let on = s.ends_with('1');
                if on && !autocommit {
                    // Turning autocommit on commits the open transaction.
                    for (m, body) in pending.drain(..) {
                        assert_eq!(lab.committed(&m, &body).await, 1, "{log:?}");
                    }
                    explicit = false;
                }
                autocommit = on;
            }
            (Ok(()), s) if s.starts_with("INSERT") => {
                if in_tx {
                    pending.push((master.clone(), body.clone()));
                } else {
                    assert_eq!(lab.committed(&master, &body).await, 1, "{log:?}");
                }
            }
            (Ok(()), _) => {}
            (Err(e), _) => {
                let text = format!("{e}");
                if text.contains("rolled back") {
                    for (_, body) in pending.drain(..) {
                        assert_eq!(lab.committed_anywhere(&body).await, 0, "{log:?}");
                    }
                    explicit = false;
                } else {
                    // The only other refusal here: none. Anything else is a bug.
                    panic!("step {step}: {sql}: {e} ({log:?})");
                }
            }
        }
        assert!(
            lab.at_most_open(1).await,
            "two shards hold a transaction after {log:?}"
        );
    }
    c.query_drop("ROLLBACK").await.unwrap();
}
