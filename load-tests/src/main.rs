//! `nr-load`: load generators that print figures.
//!
//! - `nats-floor`: the bare NATS request/reply round trip on this machine, the floor
//!   under any sync call (the gateway's hop to a runner is one such round trip).
//! - `js-floor`: a JetStream publish awaited until its ack, on a throwaway file-storage
//!   stream shaped like `NR_JOB_EVENTS` (the runner awaits two such acks per job, the
//!   gateway one).
//! - `async`: async jobs end to end: submits jobs over HTTP and follows their
//!   `job.progress.<app>.<job_id>` events on NATS (see `async.sh`).
//!
//! Sync HTTP load through the gateway is generated with `wrk` (see `sync.sh`).

mod jobs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::StreamExt;

#[derive(Parser)]
#[command(name = "nr-load")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Request/reply round trips against a trivial responder.
    NatsFloor {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// Concurrent requesters.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// JetStream publishes awaited until acknowledged, on a temporary stream.
    JsFloor {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// Concurrent publishers.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Async jobs end to end: jobs/s from submit to `completed`, submit-to-start and
    /// submit-to-complete latency, from the job.progress events seen on NATS.
    Async(jobs::AsyncArgs),
}

/// Latency summary of a run, printed as one line.
pub struct Summary {
    pub label: String,
    pub count: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub micros: Vec<u64>,
}

impl Summary {
    pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
    }

    pub fn print(mut self) {
        self.micros.sort_unstable();
        let rate = self.count as f64 / self.elapsed.as_secs_f64();
        println!(
            "{:<28} {:>10.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   n={} errors={}",
            self.label,
            rate,
            Self::percentile(&self.micros, 0.50),
            Self::percentile(&self.micros, 0.99),
            self.count,
            self.errors
        );
    }
}

async fn nats_floor(url: &str, concurrency: usize, seconds: u64) -> anyhow::Result<()> {
    let server = async_nats::connect(url).await?;
    let subject = format!("nr.load.floor.{}", std::process::id());
    let mut sub = server.subscribe(subject.clone()).await?;
    let responder = server.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, msg.payload).await;
            }
        }
    });
    server.flush().await?;
    let client = async_nats::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let subject = Arc::new(subject);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let subject = subject.clone();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client
                    .request(subject.as_str().to_owned(), "{}".into())
                    .await
                {
                    Ok(_) => micros.push(t.elapsed().as_micros() as u64),
                    Err(_) => errors += 1,
                }
            }
            (micros, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (m, e) = t.await?;
        all.extend(m);
        errors += e;
    }
    Summary {
        label: format!("nats request/reply c={concurrency}"),
        count: all.len(),
        errors,
        elapsed: start.elapsed(),
        micros: all,
    }
    .print();
    Ok(())
}

async fn js_floor(url: &str, concurrency: usize, seconds: u64) -> anyhow::Result<()> {
    use async_nats::jetstream::{self, message::PublishMessage, stream};
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    let name = format!("NR_LOAD_JS_FLOOR_{}", std::process::id());
    let prefix = format!("nr.load.js.{}", std::process::id());
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(600),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot create stream {name}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let prefix = Arc::new(prefix);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let js = js.clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            let mut errors = 0;
            let payload = bytes::Bytes::from(vec![b'x'; 200]);
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let t = Instant::now();
                let publish = PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(format!("{worker}-{n}"));
                let sent = js
                    .send_publish(format!("{prefix}.{worker}.{n}"), publish)
                    .await;
                let acked = match sent {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if acked {
                    micros.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (micros, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (m, e) = t.await?;
        all.extend(m);
        errors += e;
    }
    let elapsed = start.elapsed();
    js.delete_stream(&name)
        .await
        .map_err(|e| anyhow::anyhow!("cannot delete stream {name}: {e}"))?;
    Summary {
        label: format!("jetstream publish+ack c={concurrency}"),
        count: all.len(),
        errors,
        elapsed,
        micros: all,
    }
    .print();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Named threads, so a system-wide profile tells the load generator from the
    // platform (whose tokio threads are `tokio-rt-worker`).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nr-load")
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::NatsFloor {
            nats_url,
            concurrency,
            seconds,
        } => nats_floor(&nats_url, concurrency, seconds).await,
        Cmd::JsFloor {
            nats_url,
            concurrency,
            seconds,
        } => js_floor(&nats_url, concurrency, seconds).await,
        Cmd::Async(args) => jobs::run(args).await,
    }
}
