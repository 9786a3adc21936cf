//! Log lines gathered in memory and written by a thread of their own, 10 ms' worth at a time, as
//! one write. A queue whose thread wakes for each line (tracing-appender's) cost each line a
//! wake-up and an allocation on the serving threads, and its own thread about a twelfth of the
//! gateway's CPU (README, "Benchmarks"); here a line is a copy into a buffer, and the thread
//! wakes once per batch, never while nothing is logged.
//!
//! Nothing is dropped: past [`MOST_PENDING`] bytes, the thread that logs writes what is pending
//! itself. Lines still pending when the process is killed outright or aborts are lost: the last
//! [`GATHER`]'s, more if stderr is slow to take them (at most [`MOST_PENDING`] bytes).
//! [`Guard`]'s drop writes them otherwise, and lines logged after it are written as they come.
//! Messages written straight to stderr (a panic's) may come before lines logged just before them.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// How long the first line of a batch waits for others.
const GATHER: Duration = Duration::from_millis(10);

/// Bytes pending at most before the thread that logs writes them itself: about 1,000 lines.
const MOST_PENDING: usize = 256 * 1024;

struct Output {
    to: Box<dyn Write + Send>,
    /// The buffer written last, kept so that the next batch is gathered without growing one.
    spare: Vec<u8>,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so that batches are written in their order.
    out: Mutex<Output>,
    stopped: AtomicBool,
}

impl Shared {
    fn write_pending(&self) {
        let mut out = lock(&self.out);
        let Output { to, spare } = &mut *out;
        spare.clear();
        std::mem::swap(&mut *lock(&self.pending), spare);
        if !spare.is_empty() {
            // Lines are text; what quotes a key (a client's path, a library's message) leaves
            // with the key cut to its hint.
            let redacted = std::str::from_utf8(spare).map(crate::redact::secrets);
            let batch = match &redacted {
                Ok(text) => text.as_bytes(),
                Err(_) => spare.as_slice(),
            };
            // A log line that cannot be written has nowhere else to go.
            let _ = to.write_all(batch).and_then(|()| to.flush());
        }
    }
}

/// Poisoning is ignored: a panic while either lock is held leaves whole lines behind.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the log layer writes.
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
    /// The writing thread, woken by the first line of a batch; none if it could not start.
    writer: Option<Thread>,
}

/// Stops the writing thread and writes what is pending, when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread that writes lines to `out`.
pub fn start(out: impl Write + Send + 'static) -> (Lines, Guard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Vec::new()),
        out: Mutex::new(Output { to: Box::new(out), spare: Vec::new() }),
        stopped: AtomicBool::new(false),
    });
    let writer = shared.clone();
    let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || {
        while !writer.stopped.load(Ordering::Acquire) {
            std::thread::park();
            if !writer.stopped.load(Ordering::Acquire) {
                std::thread::park_timeout(GATHER);
            }
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
    let writer = thread.as_ref().map(|t| t.thread().clone());
    (Lines { shared: shared.clone(), writer }, Guard { shared, thread })
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
        let shared = &self.shared;
        let (first, full) = {
            let mut pending = lock(&shared.pending);
            let first = pending.is_empty();
            pending.extend_from_slice(line);
            (first, pending.len() >= MOST_PENDING)
        };
        if full || shared.stopped.load(Ordering::Acquire) {
            shared.write_pending();
        } else if first && let Some(writer) = &self.writer {
            writer.unpark();
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
    use std::thread::ThreadId;

    /// One write: by which thread, and what.
    type OneWrite = (ThreadId, Vec<u8>);

    /// An output the test reads back, with the thread of each write.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<OneWrite>>>);

    impl Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).push((std::thread::current().id(), bytes.to_vec()));
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn text(&self) -> String {
            lock(&self.0).iter().map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned()).collect()
        }
    }

    #[test]
    fn lines_from_several_threads_are_written_whole_and_each_thread_s_in_its_order() {
        let written = Written::default();
        let (lines, _guard) = start(written.clone());
        std::thread::scope(|scope| {
            for t in 0..4 {
                let lines = &lines;
                scope.spawn(move || {
                    for n in 0..1000 {
                        (&*lines).write_all(format!("{t} {n}\n").as_bytes()).unwrap();
                    }
                });
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while written.text().lines().count() < 4000 {
            assert!(std::time::Instant::now() < deadline, "not every line was written");
            std::thread::sleep(GATHER);
        }
        let text = written.text();
        for t in 0..4 {
            let of_thread: Vec<String> =
                text.lines().filter(|l| l.split(' ').next() == Some(&t.to_string())).map(str::to_owned).collect();
            assert_eq!(of_thread, (0..1000).map(|n| format!("{t} {n}")).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_thread_that_logs_writes_once_too_much_is_pending() {
        let written = Written::default();
        let (lines, _guard) = start(written.clone());
        (&lines).write_all(&vec![b'x'; MOST_PENDING]).unwrap();
        let writes = lock(&written.0).clone();
        assert_eq!(writes.len(), 1, "written at once, as one write");
        assert_eq!(writes[0].0, std::thread::current().id());
        assert_eq!(writes[0].1.len(), MOST_PENDING);
    }

    #[test]
    fn nothing_is_written_while_nothing_is_logged_and_a_line_is_written_by_the_writing_thread() {
        let written = Written::default();
        let (lines, _guard) = start(written.clone());
        std::thread::sleep(GATHER * 3);
        assert!(lock(&written.0).is_empty());
        (&lines).write_all(b"one\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while written.text() != "one\n" {
            assert!(std::time::Instant::now() < deadline, "the line was never written");
            std::thread::sleep(GATHER);
        }
        assert_ne!(lock(&written.0)[0].0, std::thread::current().id());
    }

    #[test]
    fn lines_pending_are_written_by_the_time_the_guard_has_dropped_and_later_ones_as_they_come() {
        let written = Written::default();
        let (lines, guard) = start(written.clone());
        lock(&lines.shared.pending).extend_from_slice(b"pending\n");
        drop(guard);
        assert_eq!(written.text(), "pending\n");
        (&lines).write_all(b"after\n").unwrap();
        assert_eq!(written.text(), "pending\nafter\n");
        assert_eq!(lock(&written.0)[1].0, std::thread::current().id());
    }
}
