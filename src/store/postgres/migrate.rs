//! The embedded, versioned migrations and the runner that applies them to one schema.

use sqlx::PgPool;

use crate::Error;

/// A versioned SQL template; `__SCHEMA__` stands for the quoted schema name.
struct Migration {
    version: i64,
    name: &'static str,
    template: &'static str,
}

/// Every migration, oldest first. Released ones are never edited: their checksums are checked.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        template: include_str!("../../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "webhooks",
        template: include_str!("../../../migrations/0002_webhooks.sql"),
    },
    Migration {
        version: 3,
        name: "gone_only_disables_the_current_endpoint",
        template: include_str!(
            "../../../migrations/0003_gone_only_disables_the_current_endpoint.sql"
        ),
    },
    Migration {
        version: 4,
        name: "lifecycle_events",
        template: include_str!("../../../migrations/0004_lifecycle_events.sql"),
    },
    Migration {
        version: 5,
        name: "delivery_rules_cited",
        template: include_str!("../../../migrations/0005_delivery_rules_cited.sql"),
    },
    Migration {
        version: 6,
        name: "endpoint_versions",
        template: include_str!("../../../migrations/0006_endpoint_versions.sql"),
    },
    Migration {
        version: 7,
        name: "funnel",
        template: include_str!("../../../migrations/0007_funnel.sql"),
    },
    Migration {
        version: 8,
        name: "endpoint_event_types_and_review",
        template: include_str!("../../../migrations/0008_endpoint_event_types_and_review.sql"),
    },
    Migration {
        version: 9,
        name: "start_keys_and_handoffs",
        template: include_str!("../../../migrations/0009_start_keys_and_handoffs.sql"),
    },
    Migration {
        version: 10,
        name: "references_and_returns",
        template: include_str!("../../../migrations/0010_references_and_returns.sql"),
    },
    Migration {
        version: 11,
        name: "redaction",
        template: include_str!("../../../migrations/0011_redaction.sql"),
    },
    Migration {
        version: 12,
        name: "retention",
        template: include_str!("../../../migrations/0012_retention.sql"),
    },
];

/// The placeholder for the schema in the templates.
pub(super) const PLACEHOLDER: &str = "__SCHEMA__";

/// A migration that was applied to the schema differs from the one embedded in this build.
#[derive(Debug, thiserror::Error)]
#[error("migration {version} was applied with different SQL than this build embeds")]
pub(super) struct ChangedMigration {
    version: i64,
}

/// Applies the migrations `schema` lacks, all in one transaction, under an advisory lock so
/// that service instances starting together apply each once. `quoted` is the schema's quoted
/// identifier.
pub(super) async fn run(pool: &PgPool, schema: &str, quoted: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await.map_err(Error::backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("magic-link migrate {schema}"))
        .execute(&mut *tx)
        .await
        .map_err(Error::backend)?;
    let setup = format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted};
         CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
             version    bigint PRIMARY KEY,
             name       text NOT NULL,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    );
    sqlx::raw_sql(&setup)
        .execute(&mut *tx)
        .await
        .map_err(Error::backend)?;
    let check =
        format!("SELECT checksum = md5($2) FROM {quoted}.schema_migrations WHERE version = $1");
    let record = format!(
        "INSERT INTO {quoted}.schema_migrations (version, name, checksum) VALUES ($1, $2, md5($3))"
    );
    for migration in MIGRATIONS {
        let applied: Option<bool> = sqlx::query_scalar(&check)
            .bind(migration.version)
            .bind(migration.template)
            .fetch_optional(&mut *tx)
            .await
            .map_err(Error::backend)?;
        match applied {
            Some(true) => continue,
            Some(false) => {
                return Err(Error::backend(ChangedMigration {
                    version: migration.version,
                }))
            }
            None => {}
        }
        let sql = migration.template.replace(PLACEHOLDER, quoted);
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .map_err(Error::backend)?;
        sqlx::query(&record)
            .bind(migration.version)
            .bind(migration.name)
            .bind(migration.template)
            .execute(&mut *tx)
            .await
            .map_err(Error::backend)?;
    }
    tx.commit().await.map_err(Error::backend)
}
