//! Log lines gathered in memory and written by a thread of their own every few milliseconds, as
//! one write. A queue whose thread wakes for each line (tracing-appender's) cost each line a
//! wake-up and an allocation on the serving threads, and its own thread about a twelfth of the
//! gateway's CPU (README, "Benchmarks"); here a line is a copy into a buffer.
//!
//! Nothing is dropped: past [`MOST_PENDING`] bytes, the thread that logs writes what is pending
//! itself. Lines still pending when the process is killed outright are lost (at most the last
//! [`EVERY`]'s); [`Guard`]'s drop writes them otherwise, and lines logged after it are written
//! as they come.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait for its write.
const EVERY: Duration = Duration::from_millis(10);

/// Bytes pending at most before the thread that logs writes them itself: about 1,000 lines.
const MOST_PENDING: usize = 256 * 1024;

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so that batches are written in their order.
    out: Mutex<Box<dyn Write + Send>>,
    stopped: AtomicBool,
}

impl Shared {
    fn write_pending(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut *lock(&self.pending));
        if !batch.is_empty() {
            // A log line that cannot be written has nowhere else to go.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
        }
    }
}

/// Poisoning is ignored: a panic while either lock is held leaves whole lines behind.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the log layer writes.
#[derive(Clone)]
pub struct Lines(Arc<Shared>);

/// Stops the writing thread and writes what is pending, when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread that writes lines to `out`.
pub fn start(out: impl Write + Send + 'static) -> (Lines, Guard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Vec::new()),
        out: Mutex::new(Box::new(out)),
        stopped: AtomicBool::new(false),
    });
    let writer = shared.clone();
    let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || {
        while !writer.stopped.load(Ordering::Acquire) {
            std::thread::park_timeout(EVERY);
            writer.write_pending();
        }
    });
    let thread = thread
        .inspect_err(|e| {
            // Every line is then written by the thread that logs it.
            eprintln!("telemetry: cannot start the log writer, lines are written as they come: {e}");
            shared.stopped.store(true, Ordering::Release);
        })
        .ok();
    (Lines(shared.clone()), Guard { shared, thread })
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.shared.write_pending();
    }
}

impl Write for &Lines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = lock(&self.0.pending);
            pending.extend_from_slice(line);
            pending.len() >= MOST_PENDING
        };
        if full || self.0.stopped.load(Ordering::Acquire) {
            self.0.write_pending();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = &'a Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test reads back.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).unwrap()
        }
    }

    #[test]
    fn lines_are_written_in_their_order_within_a_few_milliseconds() {
        let written = Written::default();
        let (lines, _guard) = start(written.clone());
        for n in 0..100 {
            (&lines).write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while written.text() != expected {
            assert!(std::time::Instant::now() < deadline, "written: {:?}", written.text());
            std::thread::sleep(EVERY);
        }
    }

    #[test]
    fn the_thread_that_logs_writes_once_too_much_is_pending() {
        let written = Written::default();
        let (lines, _guard) = start(written.clone());
        let line = vec![b'x'; MOST_PENDING];
        (&lines).write_all(&line).unwrap();
        assert!(lock(&lines.0.pending).is_empty());
        assert_eq!(lock(&written.0).len(), MOST_PENDING);
    }

    #[test]
    fn the_guard_writes_what_is_pending_and_later_lines_are_written_as_they_come() {
        let written = Written::default();
        let (lines, guard) = start(written.clone());
        lock(&lines.0.pending).extend_from_slice(b"pending\n");
        drop(guard);
        assert_eq!(written.text(), "pending\n");
        (&lines).write_all(b"after\n").unwrap();
        assert_eq!(written.text(), "pending\nafter\n");
    }
}
