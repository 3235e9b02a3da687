//! One WebSocket: replay from `last_id`, then live events from the hub's bounded queue,
//! keep-alive pings, and the close codes of the protocol:
//!
//! - 1013 (try again later): the client stopped reading and its queue filled up;
//! - 1009 (message too big): the client sent a frame over the inbound cap;
//! - 1001 (going away): the server is stopping, or the client stopped answering pings;
//! - 4401 (session ended): the credential no longer authenticates (logout, password
//!   change, disabled user, revoked token), or it expired (reason "session expired");
//! - 4403 (access changed): the principal lost a role it had when the socket opened;
//!   reconnecting shows what it may see now.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::mpsc;
use tokio_util::sync::WaitForCancellationFuture;

use crate::auth::Viewer;
use crate::hub::{Hub, Out, Registration};

pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TRY_LATER: u16 = 1013;
pub const CLOSE_SESSION_ENDED: u16 = 4401;
pub const CLOSE_ACCESS_CHANGED: u16 = 4403;

/// How long a close frame may wait for a stalled client before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A cancellation wait made once per socket and polled again on every turn (making a
/// new one per message would take the token's lock twice each time, for every socket).
type Cancelled<'a, 'b> = Pin<&'a mut WaitForCancellationFuture<'b>>;

/// Sends unless the connection is declared slow meanwhile.
async fn send(socket: &mut WebSocket, msg: Message, slow: Cancelled<'_, '_>) -> bool {
    tokio::select! {
        biased;
        _ = slow => false,
        r = socket.send(msg) => r.is_ok(),
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(frame)).await;
}

/// Serves a socket the hub registered before the handshake was answered
/// ([`Hub::register`]); it leaves the hub when this returns.
pub(crate) async fn serve(
    hub: Arc<Hub>,
    (registration, mut rx): (Registration, mpsc::Receiver<Out>),
    mut socket: WebSocket,
    last_id: Option<u64>,
) {
    let conn = &registration.conn;
    let (slow, ended) = (conn.slow.clone(), conn.ended.clone());
    let mut slow_wait = std::pin::pin!(slow.cancelled());
    let mut ended_wait = std::pin::pin!(ended.cancelled());
    let mut shutdown_wait = std::pin::pin!(hub.shutdown.cancelled());
    // Access may have ended between the credential check and the registration.
    if let Err(reason) = crate::auth::still_admitted(&hub, &conn.viewer).await {
        close(&mut socket, reason.0, reason.1).await;
        return;
    }
    let mut last_sent = 0u64;
    if let Some(after) = last_id {
        last_sent = after;
        match replay(&hub, &conn.viewer, after, &mut socket, slow_wait.as_mut()).await {
            Ok(covered) => last_sent = last_sent.max(covered),
            Err(e) => {
                tracing::debug!(conn = conn.id, error = %e, "replay ended the socket");
                if slow.is_cancelled() {
                    close(&mut socket, CLOSE_TRY_LATER, "client too slow").await;
                }
                return;
            }
        }
    }

    // The credential's expiry ends the socket as a logout would: the page learns it
    // before its next request fails.
    // (An expiry too far to represent is none.)
    let expires = conn.viewer.exp.and_then(|exp| {
        let left = exp.saturating_sub(time::OffsetDateTime::now_utc().unix_timestamp());
        tokio::time::Instant::now()
            .checked_add(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    });
    let mut expired = std::pin::pin!(async move {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    });
    let ping_every = hub.limits().ping();
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shutdown_wait.as_mut() => {
                close(&mut socket, CLOSE_GOING_AWAY, "server stopping").await;
                break;
            }
            _ = ended_wait.as_mut() => {
                rx.close();
                while rx.try_recv().is_ok() {}
                let (code, reason) = conn
                    .end_reason
                    .lock()
                    .ok()
                    .and_then(|r| *r)
                    .unwrap_or((CLOSE_SESSION_ENDED, "session ended"));
                close(&mut socket, code, reason).await;
                break;
            }
            _ = expired.as_mut() => {
                close(&mut socket, CLOSE_SESSION_ENDED, "session expired").await;
                break;
            }
            _ = slow_wait.as_mut() => {
                // Drop what is queued at once; only the close frame is still written.
                rx.close();
                while rx.try_recv().is_ok() {}
                close(&mut socket, CLOSE_TRY_LATER, "client too slow: message queue full").await;
                break;
            }
            out = rx.recv() => {
                let msg = match out {
                    Some(Out::Action { seq, text }) => {
                        // Already sent by the replay that preceded the live feed.
                        if seq <= last_sent {
                            continue;
                        }
                        last_sent = seq;
                        Message::Text(text)
                    }
                    Some(Out::Job(text)) => Message::Text(text),
                    None => break,
                };
                if !send(&mut socket, msg, slow_wait.as_mut()).await && !slow.is_cancelled() {
                    break;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 + Duration::from_secs(1) {
                    close(&mut socket, CLOSE_GOING_AWAY, "no answer to pings").await;
                    break;
                }
                if !send(&mut socket, Message::Ping(Default::default()), slow_wait.as_mut()).await && !slow.is_cancelled() {
                    break;
                }
            }
            inbound = socket.recv() => match inbound {
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(e)) => {
                    tracing::debug!(conn = conn.id, error = %e, "socket read failed");
                    close(&mut socket, CLOSE_TOO_BIG, "frame too large or malformed").await;
                    break;
                }
            }
        }
    }
}

/// Sends what was missed after `after`; returns the last sequence it covers.
async fn replay(
    hub: &Hub,
    viewer: &Viewer,
    after: u64,
    socket: &mut WebSocket,
    mut slow: Cancelled<'_, '_>,
) -> anyhow::Result<u64> {
    let Some(mut replay) = hub.replay(after).await? else {
        return Ok(after);
    };
    let mut sent = after;
    while let Some((seq, text)) = replay.next(hub, viewer).await? {
        // An ordered consumer that resets before its first message may start over
        // from the stream's beginning: what the client has is never sent again.
        if seq <= sent {
            continue;
        }
        if !send(socket, Message::Text(text), slow.as_mut()).await {
            anyhow::bail!("the socket closed during replay");
        }
        sent = seq;
    }
    Ok(replay.last.max(sent))
}
