//! A projection's offset in Postgres (`noderouter_core.projection_offsets`), moved in the
//! transaction that applies an event, and guarded against the database going back
//! under a running follower: a dump restored while the platform runs holds an older
//! offset, and taking the next event would move the offset past the events the dump
//! lacks, losing them for good. Such an event is refused instead (the follower retries
//! it, logging why), until the service is restarted and replays from the restored offset.

use std::sync::atomic::{AtomicU64, Ordering};

/// One projection's offset, with the highest sequence this process knows it holds.
pub struct Offset {
    projection: &'static str,
    seen: AtomicU64,
}

impl Offset {
    /// `applied`: the offset read at start, where the follower begins.
    pub fn new(projection: &'static str, applied: u64) -> Offset {
        Offset {
            projection,
            seen: AtomicU64::new(applied),
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
        let seen = self.seen.load(Ordering::Acquire);
        if stored < seen {
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
