//! Projects the `NR_RBAC` event log (users, roles, grants, tokens, sessions,
//! subscriptions) into Postgres, then announces each applied sequence on
//! `rbac.applied` so gateways and hubs drop cached access decisions.

use async_nats::jetstream;
use nr_contracts::events::RbacChange;
use nr_contracts::{decode, subjects, Envelope};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const PROJECTION: &str = nr_infra::offset::RBAC;

/// Follows `NR_RBAC` from the offset stored in Postgres; returns the stream's last
/// sequence at start, which the projection must reach to be caught up.
pub(crate) async fn start(
    js: &jetstream::Context,
    nats: async_nats::Client,
    db: PgPool,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let target = nr_infra::follow::last_sequence(js, subjects::STREAM_RBAC).await?;
    let at_start = applied(&db).await?;
    let replay = nr_infra::follow::Replay::default();
    let offset = std::sync::Arc::new(nr_infra::offset::Offset::with_replay(
        PROJECTION,
        at_start,
        replay.clone(),
    ));
    nr_infra::follow::from_offset(
        js,
        nr_infra::follow::Follow {
            stream: subjects::STREAM_RBAC,
            filter: None,
            applied: at_start,
            name: "rbac",
            replay: Some(replay),
        },
        stop,
        move |seq, payload| {
            let (db, nats, offset) = (db.clone(), nats.clone(), offset.clone());
            async move {
                apply(&db, &offset, seq, &payload).await?;
                if offset.replaying() {
                    // Not applied: the replay brings it again.
                    return Ok(());
                }
                let _ = nats
                    .publish(subjects::RBAC_APPLIED, seq.to_string().into())
                    .await;
                Ok(())
            }
        },
    )
    .await?;
    Ok(target)
}

/// The highest `NR_RBAC` sequence the projection has applied.
pub async fn applied(db: &PgPool) -> anyhow::Result<u64> {
    Ok(nr_infra::offset::applied(db, PROJECTION).await?)
}

/// Applies one change at `seq`; a sequence already applied is skipped.
pub async fn apply(
    db: &PgPool,
    offset: &nr_infra::offset::Offset,
    seq: u64,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    if !offset.advance(&mut tx, seq).await? {
        return Ok(());
    }
    let (change, at) = match decode::<Envelope<RbacChange>>(payload) {
        // Rows carry the event's own time, so a rebuild from the log is identical.
        Ok(e) => (e.data, event_time(&e.time)),
        Err(e) => {
            tracing::warn!(seq, error = %e, "undecodable RBAC event skipped");
            tx.commit().await?;
            offset.done(seq);
            return Ok(());
        }
    };
    let q = |sql: &'static str| sqlx::query(sql);
    match change {
        RbacChange::Bootstrap {
            id,
            username,
            password_hash,
        } => {
            q("INSERT INTO noderouter_core.users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(&id).bind(&username).bind(&password_hash).bind(at).execute(&mut *tx).await?;
            q("INSERT INTO noderouter_core.user_roles (user_id, role) VALUES ($1, 'admin') ON CONFLICT DO NOTHING")
                .bind(&id).execute(&mut *tx).await?;
        }
        RbacChange::UserCreated {
            id,
            username,
            password_hash,
        } => {
            q("INSERT INTO noderouter_core.users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(&id).bind(&username).bind(&password_hash).bind(at).execute(&mut *tx).await?;
        }
        RbacChange::UserDisabled { id, disabled } => {
            // Disabling ends the user's sessions for good: each one is bound to this
            // count (`nr_auth::password::session_stamp`), so enabling the user again
            // does not bring them back.
            q("UPDATE noderouter_core.users SET disabled = $2, \
               sessions_epoch = sessions_epoch + CASE WHEN $2 THEN 1 ELSE 0 END WHERE id = $1")
            .bind(&id)
            .bind(disabled)
            .execute(&mut *tx)
            .await?;
        }
        RbacChange::PasswordSet { id, password_hash } => {
            q("UPDATE noderouter_core.users SET password_hash = $2 WHERE id = $1")
                .bind(&id)
                .bind(&password_hash)
                .execute(&mut *tx)
                .await?;
        }
        RbacChange::UserRolesSet { id, roles } => {
            q("DELETE FROM noderouter_core.user_roles WHERE user_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            q("INSERT INTO noderouter_core.user_roles (user_id, role) \
               SELECT $1, r FROM unnest($2::text[]) AS r WHERE EXISTS (SELECT 1 FROM noderouter_core.roles WHERE name = r) \
               AND EXISTS (SELECT 1 FROM noderouter_core.users WHERE id = $1) ON CONFLICT DO NOTHING")
                .bind(&id).bind(&roles).execute(&mut *tx).await?;
        }
        RbacChange::RoleCreated { name, description } => {
            q("INSERT INTO noderouter_core.roles (name, description, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description")
                .bind(&name).bind(&description).bind(at).execute(&mut *tx).await?;
        }
        RbacChange::RoleDeleted { name } => {
            q("DELETE FROM noderouter_core.roles WHERE name = $1 AND NOT builtin")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
        }
        RbacChange::PermissionGranted { role, permission } => {
            q("INSERT INTO noderouter_core.role_permissions (role, permission) SELECT $1, $2 \
               WHERE EXISTS (SELECT 1 FROM noderouter_core.roles WHERE name = $1) ON CONFLICT DO NOTHING")
                .bind(&role).bind(&permission).execute(&mut *tx).await?;
        }
        RbacChange::PermissionRevoked { role, permission } => {
            q("DELETE FROM noderouter_core.role_permissions WHERE role = $1 AND permission = $2")
                .bind(&role)
                .bind(&permission)
                .execute(&mut *tx)
                .await?;
        }
        RbacChange::TokenIssued {
            id,
            name,
            owner,
            roles,
            secret_hash,
            expires_at,
        } => {
            let expires = expires_at.and_then(|t| {
                time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
            });
            q("INSERT INTO noderouter_core.api_tokens (id, name, owner, roles, secret_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING")
                .bind(&id).bind(&name).bind(&owner).bind(&roles).bind(&secret_hash).bind(expires).bind(at).execute(&mut *tx).await?;
        }
        RbacChange::TokenRevoked { id } => {
            q("UPDATE noderouter_core.api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1").bind(&id).bind(at).execute(&mut *tx).await?;
        }
        RbacChange::SessionRevoked { jti, expires_at } => {
            let expires = time::OffsetDateTime::parse(
                &expires_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc() + time::Duration::days(1));
            q("INSERT INTO noderouter_core.revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&jti).bind(expires).execute(&mut *tx).await?;
            q("DELETE FROM noderouter_core.revoked_tokens WHERE expires_at < NOW() - INTERVAL '1 day'").execute(&mut *tx).await?;
        }
        RbacChange::Subscribed {
            user_id,
            app_name,
            action_name,
        } => {
            q("INSERT INTO noderouter_core.subscriptions (user_id, app_name, action_name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(&user_id).bind(&app_name).bind(&action_name).bind(at).execute(&mut *tx).await?;
        }
        RbacChange::Unsubscribed {
            user_id,
            app_name,
            action_name,
        } => {
            q("DELETE FROM noderouter_core.subscriptions WHERE user_id = $1 AND app_name = $2 AND action_name = $3")
                .bind(&user_id).bind(&app_name).bind(&action_name).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    offset.done(seq);
    Ok(())
}

/// An event's RFC 3339 time; the wall clock only for an event without a readable one.
fn event_time(t: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
}
