//! A projection's offset in Postgres (`noderouter_core.projection_offsets`), moved in the
//! transaction that applies an event, and guarded against the database going back
//! under a running follower: a dump restored while the platform runs holds an older
//! offset, and taking the next event would move the offset past the events the dump
//! lacks, losing them for good. Such an event is not applied: with a [`Replay`] the
//! follower reads the stream again right after the restored offset (the events already
//! read past it are skipped until the replay reaches them); without one the event is
//! refused with an error (the follower retries it) until the service is restarted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::follow::Replay;

/// The projection of `NR_APPS` (apps, versions, the permission catalogue).
pub const APPS: &str = "apps";
/// The projection of `NR_RBAC` (users, roles, grants, tokens, subscriptions).
pub const RBAC: &str = "rbac";

/// The last stream sequence `projection` applied (0 before its first event).
pub async fn applied(db: &sqlx::PgPool, projection: &str) -> Result<u64, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT stream_seq FROM noderouter_core.projection_offsets WHERE projection = $1",
    )
    .bind(projection)
    .fetch_optional(db)
    .await?;
    Ok(row.map_or(0, |(s,)| u64::try_from(s).unwrap_or(0)))
}

/// One projection's offset, with the highest sequence this process knows it holds.
pub struct Offset {
    projection: &'static str,
    seen: AtomicU64,
    replay: Option<Replay>,
    /// While a replay is on its way: the event that found the database gone back. Events
    /// from it on were read before the replay asked, and come again after what it reads.
    replaying_before: Mutex<Option<u64>>,
}

impl Offset {
    /// `applied`: the offset read at start, where the follower begins.
    pub fn new(projection: &'static str, applied: u64) -> Offset {
        Offset {
            projection,
            seen: AtomicU64::new(applied),
            replay: None,
            replaying_before: Mutex::new(None),
        }
    }

    /// As [`Offset::new`], and asks `replay` to read the stream again when the database
    /// went back.
    pub fn with_replay(projection: &'static str, applied: u64, replay: Replay) -> Offset {
        Offset {
            replay: Some(replay),
            ..Offset::new(projection, applied)
        }
    }

    /// In `tx`, before applying the event at `seq`: true when it is new (the offset now
    /// says `seq`), false when the database holds it already. An error when the database
    /// holds less than this process saw it hold.
    pub async fn advance(&self, tx: &mut sqlx::PgConnection, seq: u64) -> anyhow::Result<bool> {
        sqlx::query(
            "INSERT INTO noderouter_core.projection_offsets (projection, stream_seq) VALUES ($1, 0) \
             ON CONFLICT DO NOTHING",
        )
        .bind(self.projection)
        .execute(&mut *tx)
        .await?;
        let (stored,): (i64,) = sqlx::query_as(
            "SELECT stream_seq FROM noderouter_core.projection_offsets WHERE projection = $1 FOR UPDATE",
        )
        .bind(self.projection)
        .fetch_one(&mut *tx)
        .await?;
        let stored = u64::try_from(stored).unwrap_or(0);
        {
            let mut before = self
                .replaying_before
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match *before {
                // Read before the replay was asked for: it comes again.
                Some(b) if seq >= b => return Ok(false),
                Some(_) => *before = None,
                None => {}
            }
        }
        let seen = self.seen.load(Ordering::Acquire);
        if stored < seen {
            if let Some(replay) = &self.replay {
                tracing::warn!(
                    projection = self.projection,
                    seen,
                    stored,
                    "the database went back from stream sequence {seen} to {stored} while this service ran (a dump restored over a running platform?): reading the stream again after {stored}"
                );
                self.seen.store(stored, Ordering::Release);
                *self
                    .replaying_before
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(seq);
                replay.from_after(stored);
                return Ok(false);
            }
            anyhow::bail!(
                "projection {projection}: the database went back from stream sequence {seen} to {stored} while this service ran (a dump restored over a running platform?): the events after {stored} are not in it, and taking event {seq} would skip them for good. Restart the service: it replays them from the log (docs/operations.md, \"Streams and backups\")",
                projection = self.projection
            );
        }
        if stored >= seq {
            self.seen.fetch_max(stored, Ordering::AcqRel);
            return Ok(false);
        }
        sqlx::query(
            "UPDATE noderouter_core.projection_offsets SET stream_seq = $2, updated_at = NOW() \
             WHERE projection = $1",
        )
        .bind(self.projection)
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        Ok(true)
    }

    /// Whether a replay asked for is not under way yet: the event just handled was not
    /// applied, and must not be reported as applied.
    pub fn replaying(&self) -> bool {
        self.replaying_before
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Once the transaction that moved the offset to `seq` committed.
    pub fn done(&self, seq: u64) {
        self.seen.fetch_max(seq, Ordering::AcqRel);
    }

    /// Moves the offset past an event that can never be applied (undecodable).
    pub async fn skip(&self, db: &sqlx::PgPool, seq: u64) -> anyhow::Result<()> {
        let mut tx = db.begin().await?;
        if self.advance(&mut tx, seq).await? {
            tx.commit().await?;
            self.done(seq);
        }
        Ok(())
    }
}
