//! The schema migrations, embedded in the binary.
//!
//! The SQL files in `migrations/` (SQLite) and `migrations/postgres/` (PostgreSQL) follow
//! sqlx's naming (`{version}_{description}.sql`) and are applied by sqlx's own [`Migrator`],
//! which records each one (version, checksum) in the `_sqlx_migrations` table and skips those
//! already applied. They are embedded with `include_str!` and handed to the migrator through a
//! small [`MigrationSource`], so the crate needs neither sqlx's `macros` feature nor the files
//! at run time. Switching to `sqlx::migrate!("./migrations")` later would produce the same
//! versions and checksums. Both backends carry the same versions with the same descriptions:
//! a schema version means the same tables whichever database holds them.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use calbridge_core::store::StoreError;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// Every SQLite migration: version, description, SQL. Append only; never edit an applied one.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "api", include_str!("../migrations/0002_api.sql")),
    (3, "admins", include_str!("../migrations/0003_admins.sql")),
    (4, "subscriptions", include_str!("../migrations/0004_subscriptions.sql")),
    (5, "leases", include_str!("../migrations/0005_leases.sql")),
    (6, "sync requests", include_str!("../migrations/0006_sync_requests.sql")),
    (7, "busy times", include_str!("../migrations/0007_busy_times.sql")),
];

/// Every PostgreSQL migration, the same versions as [`MIGRATIONS`]. Append only.
pub const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/postgres/0001_initial.sql")),
    (2, "api", include_str!("../migrations/postgres/0002_api.sql")),
    (3, "admins", include_str!("../migrations/postgres/0003_admins.sql")),
    (4, "subscriptions", include_str!("../migrations/postgres/0004_subscriptions.sql")),
    (5, "leases", include_str!("../migrations/postgres/0005_leases.sql")),
    (6, "sync requests", include_str!("../migrations/postgres/0006_sync_requests.sql")),
    (7, "busy times", include_str!("../migrations/postgres/0007_busy_times.sql")),
];

/// The schema version this build writes: the highest migration version.
pub const SCHEMA_VERSION: i64 = 7;

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator for the embedded SQLite migrations.
pub(crate) async fn migrator() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(MIGRATIONS)).await
}

/// The migrator for the embedded PostgreSQL migrations.
pub(crate) async fn postgres_migrator() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(POSTGRES_MIGRATIONS)).await
}

/// What a failed migration of the database at `location` (never a password) means: a
/// database written by a newer calbridge, or by a modified build, is refused, not changed.
pub(crate) fn failure(e: MigrateError, location: &str) -> StoreError {
    match e {
        MigrateError::VersionMissing(v) => StoreError::Database(format!(
            "{location} has schema migration {v}, which this calbridge does not know: it was written by a \
             newer calbridge; upgrade calbridge or restore a backup"
        )),
        MigrateError::VersionMismatch(v) => StoreError::Database(format!(
            "{location}: schema migration {v} was applied with different SQL than this calbridge carries; \
             the database was made by a modified build, restore a backup"
        )),
        e => StoreError::Database(format!("could not migrate {location}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_schema_version_is_the_last() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions must increase: {versions:?}");
        assert_eq!(versions.last().copied(), Some(SCHEMA_VERSION));
    }

    #[test]
    fn both_backends_carry_the_same_versions() {
        let names = |m: &[(i64, &str, &str)]| m.iter().map(|&(v, d, _)| (v, d.to_string())).collect::<Vec<_>>();
        assert_eq!(names(POSTGRES_MIGRATIONS), names(MIGRATIONS));
    }
}
