//! The binary protocol through the router: COM_STMT_PREPARE / EXECUTE / SEND_LONG_DATA
//! (mysql_async sends every string parameter as long data) / CLOSE, with results
//! compared to the same statements sent directly.

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Row, Value};

use crate::harness::*;

async fn rows(conn: &mut Conn, sql: &str, params: Vec<Value>) -> Vec<Vec<Value>> {
    let rows: Vec<Row> = conn
        .exec(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|r| r.unwrap()).collect()
}

#[tokio::test]
async fn binary_protocol_roundtrips_every_type() {
    fresh_database("t_prep").await;
    let mut r = Conn::new(Opts::from(app_opts(&cluster_router_addr(), Some("t_prep"))))
        .await
        .unwrap();
    let mut d = direct(Some("t_prep")).await;
    d.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, i8 TINYINT, u64 BIGINT UNSIGNED, f FLOAT, dbl DOUBLE, \
         dec_ DECIMAL(20,6), s VARCHAR(100), b BLOB, d DATE, dt DATETIME(6), tm TIME(3), j JSON, e ENUM('a','b'))",
    )
    .await
    .unwrap();
    let insert = "INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";
    let params: Vec<Value> = vec![
        1.into(),
        (-128i8).into(),
        u64::MAX.into(),
        1.25f32.into(),
        (-3.5e100f64).into(),
        "12345678901234.123456".into(),
        "héllo ☃".into(),
        vec![0u8, 255, 10, 13].into(),
        Value::Date(2024, 2, 29, 0, 0, 0, 0),
        Value::Date(2024, 2, 29, 23, 59, 58, 123_456),
        Value::Time(true, 0, 12, 34, 56, 789_000),
        r#"{"k": [1, 2]}"#.into(),
        "b".into(),
    ];
    r.exec_drop(insert, params).await.unwrap();
    r.exec_drop(
        insert,
        vec![Value::Int(2); 1]
            .into_iter()
            .chain(vec![Value::NULL; 12])
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    for sql in [
        "SELECT * FROM t WHERE id = ?",
        "SELECT * FROM t WHERE id <> ?",
    ] {
        for id in [1i64, 2, 3] {
            assert_eq!(
                rows(&mut r, sql, vec![Value::Int(id)]).await,
                rows(&mut d, sql, vec![Value::Int(id)]).await,
                "{sql} {id}"
            );
        }
    }
}

#[tokio::test]
async fn statements_are_reused_closed_and_reprepared() {
    let opts = app_opts(&cluster_router_addr(), Some("app")).stmt_cache_size(Some(200));
    let mut r = Conn::new(Opts::from(opts)).await.unwrap();
    let stmt = r.prep("SELECT ? * 2, CONCAT(?, '!')").await.unwrap();
    for i in 0..50i64 {
        let got: Option<(i64, String)> = r.exec_first(&stmt, (i, format!("v{i}"))).await.unwrap();
        assert_eq!(got, Some((i * 2, format!("v{i}!"))));
    }
    r.close(stmt).await.unwrap();
    // Executing a closed statement id gets the server's own error.
    let again = r.prep("SELECT 1").await.unwrap();
    let v: Option<i64> = r.exec_first(&again, ()).await.unwrap();
    assert_eq!(v, Some(1));
    // Many statements at once.
    let mut stmts = Vec::new();
    for i in 0..100 {
        stmts.push(r.prep(format!("SELECT {i} + ?")).await.unwrap());
    }
    for (i, s) in stmts.iter().enumerate() {
        let v: Option<i64> = r.exec_first(s, (1,)).await.unwrap();
        assert_eq!(v, Some(i as i64 + 1));
    }
}

#[tokio::test]
async fn prepare_errors_pass_through() {
    let mut r = Conn::new(Opts::from(app_opts(&cluster_router_addr(), Some("app"))))
        .await
        .unwrap();
    let mut d = direct(Some("app")).await;
    for sql in ["SELECT * FROM nope WHERE a = ?", "SELEKT ?"] {
        let a = server_error(r.prep(sql).await.unwrap_err());
        let b = server_error(d.prep(sql).await.unwrap_err());
        assert_eq!(a, b);
    }
    let v: Option<i64> = r.exec_first("SELECT ?", (5,)).await.unwrap();
    assert_eq!(v, Some(5));
}

#[tokio::test]
async fn large_long_data_parameter() {
    fresh_database("t_longdata").await;
    let mut r = Conn::new(Opts::from(app_opts(
        &cluster_router_addr(),
        Some("t_longdata"),
    )))
    .await
    .unwrap();
    let mut d = direct(Some("t_longdata")).await;
    d.query_drop("CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB)")
        .await
        .unwrap();
    // 17 MiB: sent as COM_STMT_SEND_LONG_DATA chunks, the first one a full 16 MiB packet.
    let blob: Vec<u8> = (0..17 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    r.exec_drop("INSERT INTO t VALUES (?, ?)", (1, blob.clone()))
        .await
        .unwrap();
    let back: Option<Vec<u8>> = d
        .exec_first("SELECT b FROM t WHERE id = ?", (1,))
        .await
        .unwrap();
    assert!(back.unwrap() == blob, "blob differs after the round trip");
    let via_router: Option<Vec<u8>> = r
        .exec_first("SELECT b FROM t WHERE id = ?", (1,))
        .await
        .unwrap();
    assert!(
        via_router.unwrap() == blob,
        "blob differs when read through the router"
    );
}
