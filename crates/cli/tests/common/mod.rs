//! What several end-to-end tests of the `calbridge` binary share: a fresh PostgreSQL database
//! per test on the test server (`CALBRIDGE_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(dead_code)]

use sqlx::{Connection, PgConnection};

/// The test server's URL.
pub fn postgres_server() -> String {
    std::env::var("CALBRIDGE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database `calbridge_{purpose}_…` on the test server: its URL and name, or `None`
/// (after saying why) when there is no server, except under CI, where that fails.
pub async fn fresh_database(purpose: &str) -> Option<(String, String)> {
    let url = postgres_server();
    let mut conn = match PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none_or(|v| v.is_empty()),
                "no PostgreSQL at {url} ({e}): in CI this test must run; start PostgreSQL or set CALBRIDGE_TEST_POSTGRES"
            );
            println!("skipped: no PostgreSQL at {url}, set CALBRIDGE_TEST_POSTGRES");
            return None;
        }
    };
    // Tests of one binary run at once and may ask in the same microsecond: a counter keeps
    // their names apart.
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("calbridge_{purpose}_{}_{}_{n}", std::process::id(), chrono::Utc::now().timestamp_micros());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create the test database");
    let (base, _) = url.rsplit_once('/').expect("a database URL");
    Some((format!("{base}/{name}"), name))
}

/// Drops a database made by [`fresh_database`] (its connections closed by force).
pub async fn drop_database(name: &str) {
    if let Ok(mut conn) = PgConnection::connect(&postgres_server()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
    }
}
