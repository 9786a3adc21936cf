//! A group commit on the client side: every item asked for while earlier calls are on their way
//! goes out in the next call. One call for many items saves most of their per-call cost (HTTP/2
//! frames, system calls, a task on each side); a lone item goes out at once, so batches form
//! only under load. Tracker events (`ingest.rs`) and authorization decisions (`decisions.rs`)
//! travel this way.

use std::sync::Arc;

use std::time::Duration;

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
    /// Calls in flight at once. The next batch gathers while they are answered, since the task
    /// waits for a free call before it takes the items waiting.
    pub in_flight: usize,
    /// What becomes of an item whose asker stopped waiting before it left.
    pub abandoned: Abandoned,
    /// How long an item may wait for its outcome, in the queue and on the way, before it is
    /// answered as unavailable (it may or may not have been acted on).
    pub timeout: Duration,
}

/// What becomes of an item whose asker stopped waiting (its request was cancelled, or it waited
/// the shape's `timeout`) before its batch left.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// Sent all the same: an event answered 503 may still be stored, as after a call that timed
    /// out.
    Sent,
    /// Left out: a decision nobody waits for would take a rate-limit slot no answer gives back.
    Dropped,
}

/// One call with a batch of items: an outcome per item, in their order.
pub type Call<T, R> = Box<dyn Fn(Vec<T>) -> BoxFuture<'static, Result<Vec<Result<R>>>> + Send + Sync>;

type Pending<T, R> = (T, oneshot::Sender<Result<R>>);

/// The sending side of a batching task.
pub struct Batches<T, R> {
    queue: mpsc::Sender<Pending<T, R>>,
    to: &'static str,
    timeout: Duration,
}

impl<T: Send + 'static, R: Send + 'static> Batches<T, R> {
    /// Starts the batching task, which stops once the `Batches` is dropped.
    pub fn spawn(shape: Shape, call: Call<T, R>) -> Batches<T, R> {
        let (queue, rx) = mpsc::channel(8 * shape.max_batch);
        tokio::spawn(send(shape, call, rx));
        Batches { queue, to: shape.to, timeout: shape.timeout }
    }

    /// The outcome of `item`, once its batch is answered; unavailable after the shape's
    /// `timeout`, waiting in the queue included, as a call made alone would be.
    pub async fn ask(&self, item: T) -> Result<R> {
        let (reply, outcome) = oneshot::channel();
        let asked = async {
            self.queue.send((item, reply)).await.map_err(|_| Error::unavailable(self.to))?;
            outcome.await.map_err(|_| Error::unavailable(self.to))?
        };
        tokio::time::timeout(self.timeout, asked).await.map_err(|_| Error::unavailable(self.to))?
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
        if shape.abandoned == Abandoned::Dropped {
            batch.retain(|(_, reply)| !reply.is_closed());
            if batch.is_empty() {
                continue;
            }
        }
        let (items, replies): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
        let answer = call(items);
        let to = shape.to;
        tokio::spawn(async move {
            let _permit = permit;
            // Bounded here as well as in the transport, which in the all-in-one mode has no
            // timeout of its own: a call that hangs must give its place back, or with one call in
            // flight every later item would wait for it.
            let answer =
                tokio::time::timeout(shape.timeout, answer).await.unwrap_or_else(|_| Err(Error::unavailable(to)));
            match answer {
                Ok(outcomes) if outcomes.len() == replies.len() => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        drop(reply.send(outcome));
                    }
                }
                // Some items may have been acted on: as after a call cut short.
                Ok(outcomes) => {
                    tracing::error!(
                        outcomes = outcomes.len(),
                        items = replies.len(),
                        "a batch call answered out of shape"
                    );
                    let e = Error::unavailable(to);
                    replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone()))));
                }
                Err(e) => replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone())))),
            }
        });
    }
}

/// Whether an item succeeded, as a batch call's outcome says: the error table's code (empty
/// when it did), the error's message and, for a validation error, its field.
pub fn succeeded(code: &str, message: String, field: Option<String>) -> Result<()> {
    if code.is_empty() {
        return Ok(());
    }
    Err(match ErrorCode::parse(code) {
        Some(code) => {
            let mut error = Error::new(code, message);
            error.field = field;
            error
        }
        None => Error::internal(format!("unknown error code {code}")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use futures::FutureExt as _;

    use super::*;

    type Seen = Arc<Mutex<Vec<Vec<u32>>>>;

    const SENT: Shape =
        Shape { to: "test", max_batch: 4, in_flight: 1, abandoned: Abandoned::Sent, timeout: Duration::from_secs(2) };

    /// One call at a time, of at most four items, each answered with its double once `gate`
    /// lets the call through; every batch sent is recorded in `seen`.
    fn doubling(abandoned: Abandoned, seen: &Seen, gate: &Arc<Semaphore>) -> Batches<u32, u32> {
        let shape = Shape { abandoned, ..SENT };
        let (seen, gate) = (seen.clone(), gate.clone());
        Batches::spawn(
            shape,
            Box::new(move |items: Vec<u32>| {
                seen.lock().unwrap().push(items.clone());
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok(items.into_iter().map(|i| Ok(i * 2)).collect())
                }
                .boxed()
            }),
        )
    }

    /// Waits until `seen` holds `n` batches.
    async fn sent(seen: &Seen, n: usize) {
        while seen.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn items_asked_while_a_call_is_on_its_way_go_out_together_each_with_its_own_outcome() {
        let (seen, gate) = (Seen::default(), Arc::new(Semaphore::new(0)));
        let batches = Arc::new(doubling(Abandoned::Sent, &seen, &gate));
        let ask = |item: u32| {
            let batches = batches.clone();
            tokio::spawn(async move { batches.ask(item).await.unwrap() })
        };
        let first = ask(1);
        sent(&seen, 1).await;
        let later: Vec<_> = (2..=4).map(ask).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(2);
        assert_eq!(first.await.unwrap(), 2, "a lone item left at once");
        assert_eq!(
            futures::future::join_all(later).await.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [4, 6, 8]
        );
        assert_eq!(*seen.lock().unwrap(), [vec![1], vec![2, 3, 4]]);
    }

    #[tokio::test]
    async fn an_item_its_asker_stopped_waiting_for_is_left_out_when_abandoned_items_are_dropped() {
        let (seen, gate) = (Seen::default(), Arc::new(Semaphore::new(0)));
        let batches = Arc::new(doubling(Abandoned::Dropped, &seen, &gate));
        let first = tokio::spawn({
            let batches = batches.clone();
            async move { batches.ask(1).await }
        });
        sent(&seen, 1).await;
        let cancelled = tokio::spawn({
            let batches = batches.clone();
            async move { batches.ask(2).await }
        });
        let kept = tokio::spawn({
            let batches = batches.clone();
            async move { batches.ask(3).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancelled.abort();
        assert!(cancelled.await.unwrap_err().is_cancelled());
        gate.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), 2);
        assert_eq!(kept.await.unwrap().unwrap(), 6);
        assert_eq!(*seen.lock().unwrap(), [vec![1], vec![3]]);
    }

    #[tokio::test]
    async fn a_call_answering_out_of_shape_leaves_each_item_unavailable() {
        let shape = Shape { timeout: Duration::from_secs(10), ..SENT };
        let batches: Batches<u32, u32> = Batches::spawn(shape, Box::new(|_| async { Ok(vec![]) }.boxed()));
        assert_eq!(batches.ask(1).await.unwrap_err().code, ErrorCode::ServiceUnavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_a_stuck_call_holds_is_unavailable_once_the_shapes_timeout_passes() {
        let batches: Batches<u32, u32> = Batches::spawn(SENT, Box::new(|_| futures::future::pending().boxed()));
        let asked = tokio::time::Instant::now();
        assert_eq!(batches.ask(1).await.unwrap_err().code, ErrorCode::ServiceUnavailable);
        // Virtual time, which only the timers move.
        let waited = asked.elapsed();
        assert!(waited >= SENT.timeout && waited < SENT.timeout * 2, "{waited:?}");
    }

    #[test]
    fn an_outcome_carries_the_error_tables_code_and_field() {
        assert_eq!(succeeded("", String::new(), None), Ok(()));
        let error = succeeded("VALIDATION_ERROR", "bad".into(), Some("request".into())).unwrap_err();
        assert_eq!(
            (error.code, error.field.as_deref(), error.message.as_str()),
            (ErrorCode::Validation, Some("request"), "bad")
        );
        assert_eq!(succeeded("NO_SUCH_CODE", String::new(), None).unwrap_err().code, ErrorCode::Internal);
    }
}
