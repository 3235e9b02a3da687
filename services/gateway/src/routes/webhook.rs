//! Webhook routes: the caller proves the raw body with an HMAC-SHA256 under a secret
//! of the app (`X-Hub-Signature-256: sha256=<hex>`, as GitHub sends it), checked in
//! constant time; a delivery id seen within the window is refused as a replay.

use hmac::{Hmac, Mac};
use nr_contracts::manifest::WebhookDecl;
use sha2::Sha256;

use crate::error::ApiError;
use crate::AppState;

/// Webhook bodies read at once, across all apps: each is read before its sender is
/// proven, so together they hold at most this many times `NR_MAX_BODY_BYTES`.
const READING_AT_ONCE: usize = 64;
static READING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(READING_AT_ONCE);

/// What a webhook request showed before its body was read: a well-formed signature, a
/// delivery id and a secret set for it, and its turn among the bodies being read.
pub(crate) struct Pending {
    sig: Vec<u8>,
    secret: String,
    delivery: String,
    _reading: tokio::sync::SemaphorePermit<'static>,
}

/// Checks what can be checked before the body is read. 401 for a missing or malformed
/// signature or a secret that is not set (or empty), 400 without a delivery id, 503
/// while [`READING_AT_ONCE`] bodies are being read.
pub(crate) async fn precheck(
    state: &AppState,
    app: &str,
    hook: &WebhookDecl,
    headers: &axum::http::HeaderMap,
) -> Result<Pending, ApiError> {
    let header = hook.signature_header();
    let given = headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized(format!("the {header} header is missing: sign the raw body with HMAC-SHA256 and send sha256=<hex>")))?;
    let malformed = || ApiError::Unauthorized(format!("{header} must read sha256=<64 hex digits>"));
    let hex_sig = given.strip_prefix("sha256=").ok_or_else(malformed)?;
    let sig = hex::decode(hex_sig)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(malformed)?;
    let dh = hook.delivery_header();
    let delivery = headers
        .get(dh)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "the {dh} header (the delivery's id, 1-200 characters) is missing"
            ))
        })?
        .to_owned();
    let lookup =
        nr_infra::appenv::load_secret(&state.db, state.secrets.as_deref(), app, &hook.secret_name)
            .await
            .map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("cannot load the webhook secret: {e}"))
            })?;
    // Only a secret keys a webhook: a plain variable's value is shown to whoever may list
    // the app's variables, and an empty key lets anyone sign. A stranger gets the answer
    // a wrong signature gets, so it cannot tell whether a secret is set; the log says why.
    let secret = match lookup {
        nr_infra::appenv::SecretLookup::Secret(s) => s,
        other => {
            let why = if other == nr_infra::appenv::SecretLookup::Plain {
                "is a plain variable: set it again as a secret"
            } else {
                "is not set"
            };
            tracing::warn!(app = %app, secret = %hook.secret_name, "webhook refused: its secret {why}");
            return Err(ApiError::Unauthorized(mismatch(header)));
        }
    };
    let reading = READING.try_acquire().map_err(|_| {
        ApiError::Unavailable(format!(
            "{READING_AT_ONCE} webhook deliveries are being read: retry shortly"
        ))
    })?;
    Ok(Pending {
        sig,
        secret,
        delivery,
        _reading: reading,
    })
}

/// The answer to a signature that does not match, and to any delivery while no secret
/// is set.
fn mismatch(header: &str) -> String {
    format!("the {header} signature does not match the body")
}

/// A delivery recorded as received: its id, and when this request recorded it (so that
/// releasing it never forgets a later request's record of the same id).
pub(crate) struct Delivery {
    id: String,
    received_at: time::OffsetDateTime,
}

/// Checks the signature of `body` against what [`precheck`] took, and records the
/// delivery: 401 when it does not match, 409 for a delivery id seen within the window.
pub(crate) async fn verify(
    state: &AppState,
    app: &str,
    hook: &WebhookDecl,
    pending: Pending,
    body: &[u8],
) -> Result<Delivery, ApiError> {
    let header = hook.signature_header();
    let mut mac = Hmac::<Sha256>::new_from_slice(pending.secret.as_bytes())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hmac key: {e}")))?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&pending.sig)
        .map_err(|_| ApiError::Unauthorized(mismatch(header)))?;
    let delivery = pending.delivery;
    let window = state.config.webhook_replay_window_s.max(1);
    let fresh: Option<time::OffsetDateTime> = sqlx::query_scalar(&format!(
        "INSERT INTO noderouter_core.webhook_deliveries (app_name, delivery_id) VALUES ($1, $2) \
         ON CONFLICT (app_name, delivery_id) DO UPDATE SET received_at = NOW() \
         WHERE webhook_deliveries.received_at < NOW() - INTERVAL '{window} seconds' \
         RETURNING received_at"
    ))
    .bind(app)
    .bind(&delivery)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot record the delivery: {e}")))?;
    let Some(received_at) = fresh else {
        return Err(ApiError::Conflict(format!(
            "delivery {delivery:?} was already received: a replay is refused"
        )));
    };
    let _ = sqlx::query(&format!(
        "DELETE FROM noderouter_core.webhook_deliveries WHERE received_at < NOW() - INTERVAL '{window} seconds'"
    ))
    .execute(&state.db)
    .await;
    Ok(Delivery {
        id: delivery,
        received_at,
    })
}

/// Forgets a delivery that was not handled, so its sender's retry under the same id is
/// served; a record a later request made of the same id stays. A failure here only
/// leaves the retry refused as a replay, as before.
pub(crate) async fn release(state: &AppState, app: &str, delivery: &Delivery) {
    let done = sqlx::query(
        "DELETE FROM noderouter_core.webhook_deliveries \
          WHERE app_name = $1 AND delivery_id = $2 AND received_at = $3",
    )
    .bind(app)
    .bind(&delivery.id)
    .bind(delivery.received_at)
    .execute(&state.db)
    .await;
    if let Err(e) = done {
        tracing::warn!(app, error = %e, "cannot release a webhook delivery that was not handled");
    }
}
