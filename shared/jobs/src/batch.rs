//! Batching of queue writes: requests that arrive while a write is in flight go in the
//! next one, so under load many claims (or completions) share one statement and one
//! commit, and a lone request is written at once without waiting for company.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

type Request<T, R> = (T, oneshot::Sender<R>);

/// Runs `f` over whatever requests are queued (at most `max` at a time); `f` answers
/// each request, in order.
pub struct Batcher<T, R> {
    tx: mpsc::Sender<Request<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    pub fn spawn<F, Fut>(max: usize, f: F) -> Batcher<T, R>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let max = max.max(1);
        let (tx, mut rx) = mpsc::channel::<Request<T, R>>(max * 4);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut items = vec![first];
                while items.len() < max {
                    match rx.try_recv() {
                        Ok(r) => items.push(r),
                        Err(_) => break,
                    }
                }
                let (reqs, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = items.into_iter().unzip();
                let answers = f(reqs).await;
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
        });
        Batcher { tx }
    }

    /// Queues one request and waits for its answer; `None` when the batcher is gone
    /// or `f` gave this request no answer.
    pub async fn call(&self, item: T) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).await.ok()?;
        rx.await.ok()
    }
}
