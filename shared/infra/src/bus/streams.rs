//! The platform's JetStream streams: created at every service's start when missing,
//! with the replica count a cluster keeps (`NR_STREAM_REPLICAS`).

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use nr_contracts::subjects;

/// Environment variable naming how many copies of each stream a NATS cluster keeps.
pub const STREAM_REPLICAS_ENV: &str = "NR_STREAM_REPLICAS";

/// The replica count the platform's streams are created with: `NR_STREAM_REPLICAS`
/// (1 to 5, JetStream's limit), 1 when unset. Three on a three-node cluster, so a
/// stream survives the loss of any one node.
pub fn stream_replicas() -> anyhow::Result<usize> {
    match std::env::var(STREAM_REPLICAS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(1),
        Err(e) => anyhow::bail!("{STREAM_REPLICAS_ENV}: {e}"),
        Ok(v) => parse_replicas(&v),
    }
}

pub(super) fn parse_replicas(value: &str) -> anyhow::Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n @ 1..=5) => Ok(n),
        _ => anyhow::bail!(
            "{STREAM_REPLICAS_ENV}={value:?} is not a replica count: JetStream keeps 1 to 5 copies of a stream (3 on a three-node cluster)"
        ),
    }
}

/// Creates the platform's streams when missing, with [`stream_replicas`] copies. Safe to
/// call from every service at start.
pub async fn ensure_streams(js: &jetstream::Context) -> anyhow::Result<()> {
    ensure_streams_with(js, stream_replicas()?).await
}

/// [`ensure_streams`] with an explicit replica count. A stream that exists is used as it
/// is; one with fewer replicas than asked is reported (scaling it is an operator's edit).
pub async fn ensure_streams_with(js: &jetstream::Context, replicas: usize) -> anyhow::Result<()> {
    let day = Duration::from_secs(24 * 3600);
    let configs = [
        stream::Config {
            name: subjects::STREAM_APPS.into(),
            subjects: vec![subjects::APP_UPDATED_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: subjects::STREAM_JOBS.into(),
            subjects: vec![subjects::JOB_SUBMITTED_ALL.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: subjects::STREAM_JOB_EVENTS.into(),
            subjects: vec![subjects::JOB_PROGRESS_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: day,
            ..Default::default()
        },
        stream::Config {
            name: subjects::STREAM_ACTIONS.into(),
            subjects: vec![subjects::ACTION_TRIGGERED_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: 7 * day,
            ..Default::default()
        },
        stream::Config {
            name: subjects::STREAM_RBAC.into(),
            subjects: vec![subjects::RBAC_LOG.into(), subjects::RBAC_BOOTSTRAP.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: subjects::STREAM_APP_ENV.into(),
            subjects: vec![subjects::APP_ENV_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: subjects::STREAM_SCHEDULES.into(),
            subjects: vec![subjects::SCHEDULE_CHANGED_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
    ];
    for mut config in configs {
        config.num_replicas = replicas;
        let name = config.name.clone();
        let mut stream = js
            .get_or_create_stream(config.clone())
            .await
            .with_context(|| {
                format!("cannot create or open stream {name} with {replicas} replica(s)")
            })?;
        let info = stream
            .info()
            .await
            .with_context(|| format!("cannot read stream {name}"))?;
        if info.config.num_replicas < replicas {
            // Services may create streams but not edit them (their NATS permissions);
            // scaling an existing stream is the operator's, with the admin user.
            tracing::warn!(
                stream = %name,
                has = info.config.num_replicas,
                wanted = replicas,
                "stream has fewer replicas than NR_STREAM_REPLICAS asks: scale it with `nats stream edit {name} --replicas {replicas}` as the admin user (docs/operations.md)"
            );
        }
    }
    Ok(())
}
