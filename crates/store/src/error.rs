//! Turning sqlx errors into [`StoreError`]s that say what failed.

use calbridge_core::store::StoreError;

/// Adds what was being done to a sqlx error.
pub(crate) trait Context<T> {
    /// Maps the error to [`StoreError::Database`] (or [`StoreError::Conflict`] for a unique
    /// violation), prefixed with `what` ("could not read event X").
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|e| classify(e, what()))
    }
}

pub(crate) fn classify(e: sqlx::Error, what: String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(format!("{what}: a row with the same key already exists ({})", d.message()))
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::Conflict(format!("{what}: it refers to a row that does not exist ({})", d.message()))
        }
        sqlx::Error::Database(d)
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() && is_busy(d.code().as_deref()) =>
        {
            StoreError::Database(format!(
                "{what}: the SQLite database stayed locked by another writer past the busy timeout ({e}); \
                 check that no other process holds a long write transaction on the file"
            ))
        }
        sqlx::Error::Database(d) if d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => {
            match postgres_hint(d.code().as_deref()) {
                Some(hint) => StoreError::Database(format!("{what}: {e}; {hint}")),
                None => StoreError::Database(format!("{what}: {e}")),
            }
        }
        sqlx::Error::PoolTimedOut => StoreError::Database(format!(
            "{what}: no database connection became free in time; the store is overloaded or a \
             transaction was left open"
        )),
        sqlx::Error::PoolClosed => StoreError::Database(format!("{what}: the store was closed")),
        _ => StoreError::Database(format!("{what}: {e}")),
    }
}

/// SQLITE_BUSY (5) and its extended codes (`5 | n << 8`).
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 5)
}

/// What to do about a PostgreSQL error, by SQLSTATE, where there is something to do.
fn postgres_hint(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "40001" | "40P01" => {
            "two calbridge transactions needed the same rows at once and PostgreSQL stopped one; retry"
        }
        "55P03" => {
            "a row stayed locked by another transaction past the lock timeout; retry, and look for long transactions"
        }
        "57014" => "the statement ran past the statement timeout; raise it or look for long transactions",
        "53300" => "PostgreSQL has no connection slot left; raise max_connections or run fewer workers",
        "42501" => "the database user lacks a privilege; grant it the calbridge database (owner or ALL PRIVILEGES)",
        "3D000" => "the database does not exist; create it (CREATE DATABASE) or fix the name in the store URL",
        "28P01" | "28000" => "the server refused the user or password; check the store URL and PGPASSWORD",
        _ => return None,
    })
}

/// A row whose stored JSON cannot be read back.
pub(crate) fn corrupt(what: String, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("{what} is unreadable in the database ({e}); was it written by a newer calbridge?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_codes_are_recognised() {
        assert!(is_busy(Some("5")));
        assert!(is_busy(Some("517"))); // SQLITE_BUSY_SNAPSHOT
        assert!(!is_busy(Some("19"))); // SQLITE_CONSTRAINT
        assert!(!is_busy(None));
    }

    #[test]
    fn postgres_codes_say_what_to_do() {
        assert!(postgres_hint(Some("40001")).unwrap().contains("retry"));
        assert!(postgres_hint(Some("3D000")).unwrap().contains("CREATE DATABASE"));
        assert_eq!(postgres_hint(Some("23505")), None);
        assert_eq!(postgres_hint(None), None);
    }

    #[test]
    fn plain_errors_name_what_failed() {
        let e = classify(sqlx::Error::RowNotFound, "could not read event e1".into());
        match e {
            StoreError::Database(m) => assert!(m.starts_with("could not read event e1: "), "{m}"),
            other => panic!("expected a database error, got {other:?}"),
        }
    }
}
