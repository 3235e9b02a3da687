//! Applying one `app.updated` event to the Postgres projection, idempotently.

use nr_contracts::events::{AppChange, AppUpdated};
use nr_contracts::{decode, Envelope};
use sqlx::PgPool;

const PROJECTION: &str = "apps";

/// Applies the event at stream sequence `seq`. An event at or below the recorded offset
/// was applied before and is skipped, so redelivery and replay are harmless.
pub async fn apply(db: &PgPool, seq: u64, payload: &[u8]) -> anyhow::Result<()> {
    let event: Envelope<AppUpdated> = match decode(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(seq, error = %e, "undecodable app.updated event skipped");
            return advance_only(db, seq).await;
        }
    };
    let seq = seq as i64;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO noderouter_core.projection_offsets (projection, stream_seq) VALUES ($1, 0) \
         ON CONFLICT DO NOTHING",
    )
    .bind(PROJECTION)
    .execute(&mut *tx)
    .await?;
    let advanced = sqlx::query(
        "UPDATE noderouter_core.projection_offsets SET stream_seq = $2, updated_at = NOW() \
         WHERE projection = $1 AND stream_seq < $2",
    )
    .bind(PROJECTION)
    .bind(seq)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if advanced == 0 {
        return Ok(());
    }
    let d = &event.data;
    let display_name = d.manifest.get("display_name").and_then(|v| v.as_str());
    let description = d.manifest.get("description").and_then(|v| v.as_str());
    let deleted = d.change == AppChange::Deleted;
    sqlx::query(
        "INSERT INTO noderouter_core.apps (app_name, app_key, display_name, description, current_version, \
             current_sha256, bundle_key, manifest, rev, deleted) \
         VALUES ($1, lower($1), $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (app_name) DO UPDATE SET display_name = EXCLUDED.display_name, \
             description = EXCLUDED.description, current_version = EXCLUDED.current_version, \
             current_sha256 = EXCLUDED.current_sha256, bundle_key = EXCLUDED.bundle_key, \
             manifest = EXCLUDED.manifest, rev = EXCLUDED.rev, deleted = EXCLUDED.deleted, updated_at = NOW()",
    )
    .bind(&d.app_name)
    .bind(display_name)
    .bind(description)
    .bind(&d.version)
    .bind(&d.sha256)
    .bind(&d.bundle_key)
    .bind(&d.manifest)
    .bind(seq)
    .bind(deleted)
    .execute(&mut *tx)
    .await?;
    if !deleted {
        sqlx::query(
            "INSERT INTO noderouter_core.app_versions (app_name, version, sha256, bundle_key, manifest, first_rev, last_rev) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (app_name, sha256) DO UPDATE SET last_rev = EXCLUDED.last_rev",
        )
        .bind(&d.app_name)
        .bind(&d.version)
        .bind(&d.sha256)
        .bind(&d.bundle_key)
        .bind(&d.manifest)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn advance_only(db: &PgPool, seq: u64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO noderouter_core.projection_offsets (projection, stream_seq) VALUES ($1, $2) \
         ON CONFLICT (projection) DO UPDATE SET stream_seq = GREATEST(projection_offsets.stream_seq, EXCLUDED.stream_seq)",
    )
    .bind(PROJECTION)
    .bind(seq as i64)
    .execute(db)
    .await?;
    Ok(())
}
