//! NATS connection, JetStream streams and event publishing.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, message::PublishMessage as Publish};
use nr_config::nats_auth::Role;
use nr_config::{NatsArgs, NatsCredentials};
use nr_contracts::{encode, Envelope};
use serde::Serialize;

mod streams;

#[cfg(test)]
use streams::parse_replicas;
pub use streams::{ensure_streams, ensure_streams_with, stream_replicas, STREAM_REPLICAS_ENV};

/// Connects to NATS without credentials (a server without authorization), naming the
/// connection after the service for `nats server report`. `url` may list several
/// servers of a cluster, comma-separated.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    connect_with(url, async_nats::ConnectOptions::new().name(name)).await
}

/// Connects as `role` with the credentials `args` give for it (see
/// [`nr_config::nats_auth`]): the connection is named `nr-<role>` and receives replies on
/// the role's own inbox prefix, the only inbox its permissions let it read.
pub async fn connect_as(args: &NatsArgs, role: Role) -> anyhow::Result<async_nats::Client> {
    connect_with(&args.nats_url, options_as(args, role)?)
        .await
        .with_context(|| refused(args, role))
}

/// [`connect_as`], with [`Drops`] that tell when the connection drops.
pub async fn connect_as_watched(
    args: &NatsArgs,
    role: Role,
) -> anyhow::Result<(async_nats::Client, Drops)> {
    let drops = Drops::default();
    let notify = drops.0.clone();
    let options = options_as(args, role)?.event_callback(move |event| {
        let notify = notify.clone();
        async move {
            if matches!(event, async_nats::Event::Disconnected) {
                notify.notify_waiters();
            }
        }
    });
    let client = connect_with(&args.nats_url, options)
        .await
        .with_context(|| refused(args, role))?;
    Ok((client, drops))
}

/// Wakes the requests waiting on a connection when it drops. A reply on its way through
/// a NATS node that died is lost, and the connection's subscriptions come back on
/// another node without it: a request sent before the drop would otherwise wait for
/// its whole time limit.
#[derive(Clone, Default)]
pub struct Drops(std::sync::Arc<tokio::sync::Notify>);

impl Drops {
    /// Completes at the connection's next drop. Enable it (`Notified::enable`) before
    /// sending, so a drop between the send and the first poll is not missed.
    pub fn next(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.notified()
    }
}

/// The error of a refused connection: the service, the user it tried and where.
fn refused(args: &NatsArgs, role: Role) -> String {
    let user = match args.credentials(role) {
        Ok(NatsCredentials::UserPassword { user, .. }) => format!("user {user:?}"),
        _ => "no user".to_owned(),
    };
    format!(
        "NATS refused or did not answer the {role} service ({user} at {}): check NR_NATS_URL, NR_NATS_USER and NR_NATS_PASSWORD",
        args.nats_url
    )
}

fn options_as(args: &NatsArgs, role: Role) -> anyhow::Result<async_nats::ConnectOptions> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("nr-{role}"))
        .custom_inbox_prefix(role.inbox_prefix());
    match args.credentials(role).map_err(|e| anyhow::anyhow!(e))? {
        NatsCredentials::None => {
            tracing::warn!(
                role = %role,
                "connecting to NATS without credentials: anyone who reaches this server can act as the platform (set NR_NATS_USER and NR_NATS_PASSWORD)"
            );
        }
        NatsCredentials::UserPassword { user, password } => {
            let own = role.user();
            if user != own && Role::parse(&user).is_some_and(|r| r != role && r != Role::Admin) {
                tracing::error!(
                    role = %role,
                    user = %user,
                    "the {role} service connects to NATS as another service's user ({user}, not {own}): its permissions will refuse what this service needs (set NR_NATS_USER={own})"
                );
            }
            options = options.user_and_password(user, password);
        }
    }
    Ok(options)
}

/// The runner's second connection, as [`Role::RunnerJobs`] (see
/// [`nr_config::nats_auth`]): `None` on a NATS without authorization, where one
/// connection does both. A NATS that refuses the jobs user (a configuration written by
/// hand before that user existed) is reported loudly, and the runner then reads its
/// streams on its first connection, slower past a few thousand jobs.
pub async fn connect_runner_jobs(args: &NatsArgs) -> anyhow::Result<Option<async_nats::Client>> {
    if args
        .credentials(Role::RunnerJobs)
        .map_err(|e| anyhow::anyhow!(e))?
        == NatsCredentials::None
    {
        return Ok(None);
    }
    match connect_as(args, Role::RunnerJobs).await {
        Ok(client) => Ok(Some(client)),
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "the runner's jobs user was refused: add it to the NATS configuration (`noderouter nats-config` renders it); until then jobs are read on the runner's first connection and slow down past a few thousand"
            );
            Ok(None)
        }
    }
}

async fn connect_with(
    url: &str,
    options: async_nats::ConnectOptions,
) -> anyhow::Result<async_nats::Client> {
    let servers: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    options
        .connection_timeout(Duration::from_secs(5))
        .connect(servers)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))
}

/// Why a publish did not land.
#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    /// Another writer appended to the subject since `expected_last_subject_seq`.
    #[error("another change to this subject landed first")]
    Conflict,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The pauses before a publish whose acknowledgement did not come is sent again.
const PUBLISH_AGAIN_AFTER: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// Publishes an event to JetStream with its id as `Nats-Msg-Id`, optionally fenced on
/// the subject's last sequence (optimistic concurrency). Returns the stream sequence.
///
/// When no acknowledgement comes (a timeout, a connection cut while it was awaited),
/// the event may have been stored all the same: it is sent again under the same id, and
/// JetStream answers a copy it already holds with that copy's sequence (deduplication
/// comes before the fence), or stores it now. So a change that was made is never
/// answered as failed for a lost acknowledgement, and none is stored twice.
pub async fn publish_event<T: Serialize>(
    js: &jetstream::Context,
    subject: &str,
    event: &Envelope<T>,
    expected_last_subject_seq: Option<u64>,
) -> Result<u64, PublishFailure> {
    publish_event_until(js, subject, event, expected_last_subject_seq, None).await
}

/// [`publish_event`], making no attempt and waiting for no acknowledgement past `until`
/// (a caller that stops waiting then must not have the event stored after it was told
/// otherwise; one stored by an attempt already sent stays, as with any lost answer).
pub async fn publish_event_until<T: Serialize>(
    js: &jetstream::Context,
    subject: &str,
    event: &Envelope<T>,
    expected_last_subject_seq: Option<u64>,
    until: Option<tokio::time::Instant>,
) -> Result<u64, PublishFailure> {
    let payload: bytes::Bytes = encode(event).map_err(anyhow::Error::from)?.into();
    let mut pauses = PUBLISH_AGAIN_AFTER.iter();
    loop {
        let attempt = publish_once(
            js,
            subject,
            &event.id,
            payload.clone(),
            expected_last_subject_seq,
        );
        let outcome = match until {
            Some(by) => tokio::time::timeout_at(by, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(Attempt::Unanswered(anyhow::anyhow!(
                    "publish to {subject} was not acknowledged before its caller stopped waiting"
                )))
                }),
            None => attempt.await,
        };
        let error = match outcome {
            Ok(seq) => return Ok(seq),
            Err(Attempt::Final(failure)) => return Err(failure),
            Err(Attempt::Unanswered(e)) => e,
        };
        let Some(pause) = pauses
            .next()
            .filter(|p| until.is_none_or(|by| tokio::time::Instant::now() + **p < by))
        else {
            return Err(PublishFailure::Other(error));
        };
        tracing::warn!(subject, id = %event.id, error = %format!("{error:#}"), "publish not acknowledged; sending it again under the same id");
        tokio::time::sleep(*pause).await;
    }
}

/// How one publish attempt failed.
enum Attempt {
    /// JetStream answered: a retry would be answered the same.
    Final(PublishFailure),
    /// No answer came: the event may or may not be stored.
    Unanswered(anyhow::Error),
}

/// Whether a failed attempt may have reached the server (or may succeed as it is sent
/// again): no answer, a cut connection, or, on a cluster, JetStream's "duplicate
/// message id is in process" while the first copy is still being replicated.
fn unanswered(kind: PublishErrorKind, text: &str) -> bool {
    matches!(
        kind,
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
    ) || text.contains("duplicate message id is in process")
}

async fn publish_once(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: bytes::Bytes,
    expected_last_subject_seq: Option<u64>,
) -> Result<u64, Attempt> {
    let mut publish = Publish::build().payload(payload).message_id(id);
    if let Some(seq) = expected_last_subject_seq {
        publish = publish.expected_last_subject_sequence(seq);
    }
    let ack = js
        .send_publish(subject.to_owned(), publish)
        .await
        .map_err(|e| {
            let error = anyhow::anyhow!("publish to {subject} failed: {e}");
            if unanswered(e.kind(), &e.to_string()) {
                Attempt::Unanswered(error)
            } else {
                Attempt::Final(PublishFailure::Other(error))
            }
        })?;
    match ack.await {
        Ok(ack) => Ok(ack.sequence),
        // JetStream answers 10071 "wrong last sequence" when the fence fails; the
        // client reports it as its own error kind.
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
            Err(Attempt::Final(PublishFailure::Conflict))
        }
        Err(e) => {
            let text = e.to_string();
            let error = anyhow::anyhow!("publish to {subject} was not acknowledged: {text}");
            Err(if unanswered(e.kind(), &text) {
                Attempt::Unanswered(error)
            } else {
                Attempt::Final(PublishFailure::Other(error))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use nr_config::nats_auth::Role;

    #[test]
    fn a_replica_count_outside_one_to_five_is_refused_by_name() {
        assert_eq!(super::parse_replicas("3").unwrap(), 3);
        assert_eq!(super::parse_replicas(" 1 ").unwrap(), 1);
        for bad in ["0", "6", "three", ""] {
            let err = super::parse_replicas(bad).unwrap_err().to_string();
            assert!(err.contains("NR_STREAM_REPLICAS"), "{err}");
        }
    }

    #[tokio::test]
    async fn three_replicas_on_a_single_server_is_refused_naming_the_stream() {
        let nats = nr_testkit::TestNats::start().await.unwrap();
        let mut args = nr_config::NatsArgs::anonymous(nats.url.clone());
        args.nats_user = Some("admin".into());
        args.nats_password = Some(nats.password(Role::Admin));
        let client = super::connect_as(&args, Role::Admin).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let err = super::ensure_streams_with(&js, 3).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("NR_APPS") && text.contains("3 replica"),
            "{text}"
        );
        // One replica is what a single server keeps.
        super::ensure_streams_with(&js, 1).await.unwrap();
        let info = js
            .get_stream("NR_JOBS")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .config
            .clone();
        assert_eq!(info.num_replicas, 1);
    }

    #[tokio::test]
    async fn a_comma_separated_list_reaches_whichever_server_answers() {
        let nats = nr_testkit::TestNats::start().await.unwrap();
        let mut args = nats.args();
        args.nats_url = format!("nats://127.0.0.1:1, {}", nats.url);
        let client = super::connect_as(&args, Role::Gateway).await.unwrap();
        client.flush().await.unwrap();
        let err = super::connect("nats://127.0.0.1:1,nats://127.0.0.1:2", "t")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("nats://127.0.0.1:1,nats://127.0.0.1:2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn without_credentials_or_with_a_wrong_password_the_server_refuses() {
        let nats = nr_testkit::TestNats::start().await.unwrap();
        assert!(super::connect(&nats.url, "t").await.is_err());
        let mut args = nr_config::NatsArgs::anonymous(nats.url.clone());
        args.nats_user = Some("gateway".into());
        args.nats_password = Some("wrong".into());
        let err = super::connect_as(&args, Role::Gateway).await.err();
        assert!(err.is_some(), "a wrong password connected");
        args.nats_password = Some(nats.password(Role::Gateway));
        let client = super::connect_as(&args, Role::Gateway).await.unwrap();
        client.flush().await.unwrap();
    }

    /// The server is paused (SIGSTOP) under a publish, past the client's wait for its
    /// acknowledgement, then resumed: it stores the event when it reads it, and the
    /// acknowledgement goes to a waiter that gave up. The publish is answered with the
    /// event's sequence, and the stream holds it once.
    #[tokio::test]
    async fn a_publish_whose_acknowledgement_was_lost_is_answered_with_its_sequence() {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let nats = nr_testkit::TestNats::start().await.unwrap();
        let client = super::connect_as(&nats.args(), Role::Deploy).await.unwrap();
        let mut js = async_nats::jetstream::new(client);
        super::ensure_streams(&js).await.unwrap();
        js.set_timeout(std::time::Duration::from_millis(150));
        let subject = nr_contracts::subjects::app_updated("lost");
        let event = nr_contracts::Envelope::new("app.updated", "test", 1u32);
        let server = Pid::from_raw(nats.pid() as i32);
        kill(server, Signal::SIGSTOP).unwrap();
        let resume = tokio::spawn(async move {
            // After the first wait (150 ms), before the second try (150 + 250 ms).
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            kill(server, Signal::SIGCONT).unwrap();
        });
        let published = super::publish_event(&js, &subject, &event, Some(0)).await;
        resume.await.unwrap();
        assert_eq!(published.ok(), Some(1));
        let mut stream = js
            .get_stream(nr_contracts::subjects::STREAM_APPS)
            .await
            .unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 1);
    }

    #[tokio::test]
    async fn a_publish_that_loses_the_sequence_race_is_a_conflict() {
        let nats = nr_testkit::TestNats::start().await.unwrap();
        let client = super::connect_as(&nats.args(), Role::Deploy).await.unwrap();
        let js = async_nats::jetstream::new(client);
        super::ensure_streams(&js).await.unwrap();
        let subject = nr_contracts::subjects::app_updated("race");
        let event = |n: u32| nr_contracts::Envelope::new("app.updated", "test", n);
        let first = super::publish_event(&js, &subject, &event(1), Some(0)).await;
        assert!(first.is_ok(), "{:?}", first.err());
        // A second writer that also saw an empty subject loses, and is told so by kind.
        match super::publish_event(&js, &subject, &event(2), Some(0)).await {
            Err(super::PublishFailure::Conflict) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
}
