//! Applying one `app.updated` event to the Postgres projection, idempotently.

use nr_contracts::events::{AppChange, AppUpdated};
use nr_contracts::manifest::Manifest;
use nr_contracts::{decode, Envelope};
use sqlx::PgPool;

const PROJECTION: &str = nr_infra::offset::APPS;

/// Applies the event at stream sequence `seq`. An event at or below the recorded offset
/// was applied before and is skipped, so redelivery and replay are harmless.
pub async fn apply(
    db: &PgPool,
    offset: &nr_infra::offset::Offset,
    seq: u64,
    payload: &[u8],
) -> anyhow::Result<()> {
    let event: Envelope<AppUpdated> = match decode(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(seq, error = %e, "undecodable app.updated event skipped");
            return offset.skip(db, seq).await;
        }
    };
    let d = &event.data;
    let deleted = d.change == AppChange::Deleted;
    // A deletion needs no manifest; anything else must carry one every service reads.
    let manifest = if deleted {
        None
    } else {
        match Manifest::from_value(&d.manifest) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(seq, app = %d.app_name, error = %e, "app.updated event skipped: its manifest does not parse; the app stays as it was");
                nr_telemetry::metrics::metrics().app_event_skipped("registry", "manifest");
                return offset.skip(db, seq).await;
            }
        }
    };
    let mut tx = db.begin().await?;
    if !offset.advance(&mut tx, seq).await? {
        return Ok(());
    }
    let rev = i64::try_from(seq).unwrap_or(i64::MAX);
    // A deleted app's row keeps the names its last manifest gave it.
    let (display_name, description) = match &manifest {
        Some(m) => (m.display_name.as_deref(), m.description.as_deref()),
        None => (
            d.manifest.get("display_name").and_then(|v| v.as_str()),
            d.manifest.get("description").and_then(|v| v.as_str()),
        ),
    };
    // The event's own time, so a replay rebuilds the same history.
    let at =
        time::OffsetDateTime::parse(&event.time, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    // A deleted app whose name differs only in case gives its name key to the new one.
    sqlx::query(
        "DELETE FROM noderouter_core.apps WHERE app_key = lower($1) AND app_name <> $1 AND deleted",
    )
    .bind(&d.app_name)
    .execute(&mut *tx)
    .await?;
    let upsert = sqlx::query(
        "INSERT INTO noderouter_core.apps (app_name, app_key, display_name, description, current_version, \
             current_sha256, bundle_key, manifest, rev, deleted, created_at, updated_at) \
         VALUES ($1, lower($1), $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (app_name) DO UPDATE SET display_name = EXCLUDED.display_name, \
             description = EXCLUDED.description, current_version = EXCLUDED.current_version, \
             current_sha256 = EXCLUDED.current_sha256, bundle_key = EXCLUDED.bundle_key, \
             manifest = EXCLUDED.manifest, rev = EXCLUDED.rev, deleted = EXCLUDED.deleted, updated_at = EXCLUDED.updated_at",
    )
    .bind(&d.app_name)
    .bind(display_name)
    .bind(description)
    .bind(&d.version)
    .bind(&d.sha256)
    .bind(&d.bundle_key)
    .bind(&d.manifest)
    .bind(rev)
    .bind(deleted)
    .bind(at)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(e)) = &upsert {
        if e.is_unique_violation() {
            // Deploy refuses names differing only in case from a live app; one that
            // slipped through a race must not stall the projection for every app.
            tracing::error!(seq, app = %d.app_name, "app name differs only in case from a live app; event not projected");
            drop(tx);
            return offset.skip(db, seq).await;
        }
    }
    upsert?;
    if let Some(manifest) = &manifest {
        catalogue_permissions(&mut tx, &d.app_name, manifest).await?;
        sqlx::query(
            "INSERT INTO noderouter_core.app_versions (app_name, version, sha256, bundle_key, manifest, first_rev, last_rev, deployed_at, \
                 deployed_by, deployed_by_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9) \
             ON CONFLICT (app_name, sha256) DO UPDATE SET last_rev = EXCLUDED.last_rev, refused = NULL",
        )
        .bind(&d.app_name)
        .bind(&d.version)
        .bind(&d.sha256)
        .bind(&d.bundle_key)
        .bind(&d.manifest)
        .bind(rev)
        .bind(at)
        .bind(&d.actor)
        .bind(&d.actor_id)
        .execute(&mut *tx)
        .await?;
    }
    // The version this change undoes was refused: say so in its history.
    if let Some(undone) = &d.undoes {
        sqlx::query(
            "UPDATE noderouter_core.app_versions SET refused = $3 WHERE app_name = $1 AND sha256 = $2",
        )
        .bind(&d.app_name)
        .bind(&undone.sha256)
        .bind(&undone.reason)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    offset.done(seq);
    Ok(())
}

/// Adds the permissions an app declares (`permissions[]`) or requires
/// (`required_permission`, `actions[].required_permission`) to the RBAC catalogue. A
/// description is written only on a permission this app brought: never over the
/// platform's own (an app declaring `rbac:manage` "harmless" would mislead whoever
/// grants it) nor over another app's.
async fn catalogue_permissions(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    app: &str,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    let mut found: Vec<(String, String)> = manifest
        .permissions
        .iter()
        .map(|p| (p.name.clone(), p.description.clone().unwrap_or_default()))
        .collect();
    let required = std::iter::once(&manifest.required_permission)
        .chain(manifest.actions.iter().map(|a| &a.required_permission));
    for p in required.flatten() {
        if !p.trim().is_empty() {
            found.push((p.trim().to_owned(), String::new()));
        }
    }
    for (name, description) in found {
        sqlx::query(
            "INSERT INTO noderouter_core.permissions (name, description, source) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description \
                 WHERE permissions.source = EXCLUDED.source AND EXCLUDED.description <> ''",
        )
        .bind(&name)
        .bind(&description)
        .bind(app)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The highest stream sequence the projection has applied.
pub async fn applied(db: &PgPool) -> anyhow::Result<u64> {
    Ok(nr_infra::offset::applied(db, PROJECTION).await?)
}
