//! A group commit on the client side: every item asked for while earlier calls are on their way
//! goes out in the next call. One call for many items saves most of their per-call cost (HTTP/2
//! frames, system calls, a task on each side); a lone item goes out at once, so batches form
//! only under load. Tracker events (`ingest.rs`) and authorization decisions (`decisions.rs`)
//! travel this way.

use std::sync::Arc;

use common::{Error, ErrorCode, Result};
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// How a batching task sends.
#[derive(Clone, Copy)]
pub struct Shape {
    /// What the items go to, for the error when it cannot be reached.
    pub to: &'static str,
    /// Most items in one call.
    pub max_batch: usize,
    /// Calls in flight at once: more than one, so that the next batch gathers while the other
    /// end answers one.
    pub in_flight: usize,
}

/// One call with a batch of items: an outcome per item, in their order.
pub type Call<T, R> = Box<dyn Fn(Vec<T>) -> BoxFuture<'static, Result<Vec<Result<R>>>> + Send + Sync>;

type Pending<T, R> = (T, oneshot::Sender<Result<R>>);

/// The sending side of a batching task.
pub struct Batches<T, R> {
    queue: mpsc::Sender<Pending<T, R>>,
    to: &'static str,
}

impl<T: Send + 'static, R: Send + 'static> Batches<T, R> {
    /// Starts the batching task, which stops once the `Batches` is dropped.
    pub fn spawn(shape: Shape, call: Call<T, R>) -> Batches<T, R> {
        let (queue, rx) = mpsc::channel(8 * shape.max_batch);
        tokio::spawn(send(shape, call, rx));
        Batches { queue, to: shape.to }
    }

    /// The outcome of `item`, once its batch is answered.
    pub async fn ask(&self, item: T) -> Result<R> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| Error::unavailable(self.to))?;
        outcome.await.map_err(|_| Error::unavailable(self.to))?
    }
}

async fn send<T: Send + 'static, R: Send + 'static>(
    shape: Shape,
    call: Call<T, R>,
    mut rx: mpsc::Receiver<Pending<T, R>>,
) {
    let calls = Arc::new(Semaphore::new(shape.in_flight));
    let mut batch = Vec::with_capacity(shape.max_batch);
    loop {
        // Waiting for a free call before taking items lets them gather into the next batch.
        let Ok(permit) = calls.clone().acquire_owned().await else { return };
        if rx.recv_many(&mut batch, shape.max_batch).await == 0 {
            return;
        }
        let (items, replies): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
        let answer = call(items);
        tokio::spawn(async move {
            let _permit = permit;
            match answer.await {
                Ok(outcomes) if outcomes.len() == replies.len() => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        drop(reply.send(outcome));
                    }
                }
                Ok(outcomes) => {
                    let e = Error::internal(format!("{} outcomes for {} items", outcomes.len(), replies.len()));
                    replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone()))));
                }
                Err(e) => replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone())))),
            }
        });
    }
}

/// An item's error as a batch call's outcome carries it: the error table's code (empty when
/// there is none), its message and, for a validation error, the field.
pub fn outcome_error(code: &str, message: String, field: Option<String>) -> Option<Error> {
    if code.is_empty() {
        return None;
    }
    Some(match ErrorCode::parse(code) {
        Some(code) => {
            let mut error = Error::new(code, message);
            error.field = field;
            error
        }
        None => Error::internal(format!("unknown error code {code}")),
    })
}
