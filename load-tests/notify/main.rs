//! `nr-load-notify`: fan-out benchmark of the WebSocket hub.
//!
//! Opens N sockets on `/api/ws/notify` (default 10,000) as one subscribed user, fires one
//! action per round through `POST /api/sync/bench_notify` and measures, for every socket,
//! the time from the app's return (`time.time()` stamped into the payload just before
//! `execute` returns) to the message's arrival. Reports p50/p99/max over all deliveries,
//! the time until the last socket had each round, and the server's RSS growth per socket.
//!
//! The WebSocket client is a minimal one written here (handshake, unmasked server
//! frames, pong replies), so 10,000 sockets cost the client little. Run it through
//! `load-tests/notify/run.sh`, which starts the platform and raises `ulimit -n`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

#[derive(Parser)]
#[command(
    name = "nr-load-notify",
    about = "Fan-out latency and memory of /api/ws/notify"
)]
struct Args {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:3999")]
    url: String,
    /// Bearer token of the user who subscribes and listens (NR_TOKEN).
    #[arg(long, env = "NR_TOKEN")]
    token: String,
    /// Sockets to open.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Actions fired, one at a time.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Process id of the server, to read its RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value = "bench_notify")]
    app: String,
    #[arg(long, default_value = "tick")]
    action: String,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One delivery: its round, and milliseconds from the app's return to the socket and
/// to the runner's publish (the envelope's `ts`).
type Delivery = (u64, f64, f64);

/// The fields of an `action` message the benchmark reads (borrowed, nothing else kept).
#[derive(Deserialize)]
struct ActionMsg<'a> {
    #[serde(borrow)]
    ts: Option<&'a str>,
    payload: Option<Tick>,
}

#[derive(Deserialize)]
struct Tick {
    round: Option<u64>,
    t: Option<f64>,
}

/// Seconds since the epoch of an RFC 3339 time.
fn rfc3339_s(ts: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

async fn open_socket(host: &str, token: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(host).await?;
    stream.set_nodelay(true)?;
    let mut stream = BufReader::with_capacity(2048, stream);
    let req = format!(
        "GET /api/ws/notify HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: bm9kZXJvdXRlci1iZW5jaA==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.get_mut().write_all(req.as_bytes()).await?;
    let mut status = String::new();
    stream.read_line(&mut status).await?;
    if !status.contains(" 101 ") {
        bail!("handshake refused: {}", status.trim());
    }
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            bail!("connection closed during the handshake");
        }
        if line == "\r\n" {
            break;
        }
    }
    Ok(stream)
}

/// Reads frames until the connection ends; reports each `action` message's latency.
async fn listen(mut stream: BufReader<TcpStream>, out: mpsc::UnboundedSender<Delivery>) {
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; 2];
        if stream.read_exact(&mut head).await.is_err() {
            return;
        }
        let opcode = head[0] & 0x0f;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            if stream.read_exact(&mut b).await.is_err() {
                return;
            }
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            if stream.read_exact(&mut b).await.is_err() {
                return;
            }
            len = u64::from_be_bytes(b);
        }
        payload.resize(len as usize, 0);
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        match opcode {
            1 => {
                let arrived = now_s();
                if let Ok(m) = serde_json::from_slice::<ActionMsg>(&payload) {
                    if let Some(Tick {
                        round: Some(round),
                        t: Some(t),
                    }) = m.payload
                    {
                        let published = m.ts.and_then(rfc3339_s).unwrap_or(f64::NAN);
                        let _ = out.send((round, (arrived - t) * 1000.0, (published - t) * 1000.0));
                    }
                }
            }
            8 => return,
            9 => {
                // Pong with the ping's data; client frames are masked (a zero key).
                let mut frame = vec![0x8a, 0x80 | (payload.len() as u8 & 0x7f), 0, 0, 0, 0];
                frame.extend_from_slice(&payload);
                if stream.get_mut().write_all(&frame).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// A small HTTP/1.1 POST (one connection per call); returns status and body.
async fn post(host: &str, path: &str, token: &str, body: &Value) -> anyhow::Result<(u16, String)> {
    let body = body.to_string();
    let mut stream = TcpStream::connect(host).await?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut res = Vec::new();
    stream.read_to_end(&mut res).await?;
    let text = String::from_utf8_lossy(&res).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let host = args
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let (status, body) = post(
        &host,
        "/api/notify/subscribe",
        &args.token,
        &json!({"app_name": args.app, "action_name": args.action}),
    )
    .await
    .context("subscribe")?;
    if status != 200 {
        bail!("subscribe failed: {status} {body}");
    }

    let rss_before = args.server_pid.and_then(rss_kib);
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut opening = Vec::with_capacity(args.sockets);
    for _ in 0..args.sockets {
        let (host, token, tx) = (host.clone(), args.token.clone(), tx.clone());
        let (gate, opened, failed) = (gate.clone(), opened.clone(), failed.clone());
        opening.push(tokio::spawn(async move {
            let stream = {
                let Ok(_permit) = gate.acquire().await else {
                    return;
                };
                open_socket(&host, &token).await
            };
            match stream {
                Ok(stream) => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    listen(stream, tx).await;
                }
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("socket failed: {e}");
                    }
                }
            }
        }));
    }
    drop(tx);
    while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < args.sockets {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open = opened.load(Ordering::Relaxed);
    let connect_time = started.elapsed();
    // Let the server settle (upgrade tasks, buffers) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = args.server_pid.and_then(rss_kib);
    println!(
        "sockets: {open} open, {} failed, in {:.2} s",
        failed.load(Ordering::Relaxed),
        connect_time.as_secs_f64()
    );

    let mut all = Vec::with_capacity(open * args.rounds);
    let mut to_publish = Vec::with_capacity(args.rounds);
    let mut last_per_round = Vec::new();
    let mut missing = 0usize;
    for round in 0..args.rounds as u64 {
        let (status, body) = post(
            &host,
            &format!("/api/sync/{}", args.app),
            &args.token,
            &json!({"round": round}),
        )
        .await
        .context("fire")?;
        if status != 200 {
            bail!("sync call failed: {status} {body}");
        }
        let mut got = 0usize;
        let mut worst = 0f64;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while got < open {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((r, ms, publish_ms))) if r == round => {
                    if got == 0 {
                        to_publish.push(publish_ms);
                    }
                    got += 1;
                    worst = worst.max(ms);
                    all.push(ms);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        missing += open - got;
        last_per_round.push(worst);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_after = args.server_pid.and_then(rss_kib);

    all.sort_by(f64::total_cmp);
    last_per_round.sort_by(f64::total_cmp);
    to_publish.sort_by(f64::total_cmp);
    println!(
        "fan-out of one action to {open} sockets, {} rounds ({} deliveries, {missing} missing):",
        args.rounds,
        all.len()
    );
    println!(
        "  app return -> delivery: p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  app return -> last socket of a round: p50 {:.1} ms   max {:.1} ms",
        percentile(&last_per_round, 0.5),
        last_per_round.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  app return -> runner publish (envelope ts): p50 {:.1} ms   max {:.1} ms",
        percentile(&to_publish, 0.5),
        to_publish.last().copied().unwrap_or(f64::NAN)
    );
    if let (Some(before), Some(with), Some(after)) = (rss_before, rss_open, rss_after) {
        let per = (with.saturating_sub(before)) as f64 / open.max(1) as f64;
        println!(
            "server RSS: {:.1} MiB before, {:.1} MiB with {open} sockets, {:.1} MiB after the rounds: {per:.1} KiB per socket",
            before as f64 / 1024.0,
            with as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }
    for task in opening {
        task.abort();
    }
    Ok(())
}
