//! The schema migrations, embedded in the binary.
//!
//! The SQL files in `migrations/` follow sqlx's naming (`{version}_{description}.sql`) and are
//! applied by sqlx's own [`Migrator`], which records each one (version, checksum) in the
//! `_sqlx_migrations` table and skips those already applied. They are embedded with
//! `include_str!` and handed to the migrator through a small [`MigrationSource`], so the crate
//! needs neither sqlx's `macros` feature nor the files at run time. Switching to
//! `sqlx::migrate!("./migrations")` later would produce the same versions and checksums.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// Every migration: version, description, SQL. Append only; never edit an applied one.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "api", include_str!("../migrations/0002_api.sql")),
    (3, "admins", include_str!("../migrations/0003_admins.sql")),
];

/// The schema version this build writes: the highest migration version.
pub const SCHEMA_VERSION: i64 = 3;

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
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

/// The migrator for the embedded migrations.
pub(crate) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
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
}
