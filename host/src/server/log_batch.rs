//! Log lines written in batches by the server's busy threads.
//!
//! Under load every request writes an access line, and one `write` a line
//! costs a request a system call and the log file's lock. A thread that
//! opts in ([`flush_and_batch`]) gathers its lines and writes them out
//! together ([`flush`]): a tokio worker whenever it is about to sleep, a
//! call thread before each call's answer is sent (a call's console lines
//! then precede its access line) and after the call; any of them once its
//! lines reach [`BATCH_BYTES`], with a line once the oldest has waited
//! [`MAX_WAIT`], and when the thread ends. Every other thread writes each
//! line at once.
//!
//! Invariants: a write carries whole lines; one thread's lines keep their
//! order (lines of different threads may be written out of order, each
//! with its own timestamp); a batched line waits at most until its thread
//! next idles, fills a batch or writes a line after [`MAX_WAIT`].

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// A batch this size is written at once.
const BATCH_BYTES: usize = 8 << 10;

/// A batch whose oldest line has waited this long is written with the
/// thread's next line.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// This thread's lines not yet written, if it batches them.
struct Batch {
    lines: Vec<u8>,
    since: Option<Instant>,
}

impl Batch {
    fn write_out(&mut self) {
        if !self.lines.is_empty() {
            // As with a line written at once, a failed write is not
            // reported: there is nowhere left to report it.
            let _ = io::stderr().write_all(&self.lines);
            self.lines.clear();
        }
        self.since = None;
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.write_out();
    }
}

thread_local! {
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's batch slot; `None` while the thread ends or
/// the slot is in use.
fn with_batch<R>(f: impl FnOnce(&mut Option<Batch>) -> R) -> Option<R> {
    BATCH
        .try_with(|batch| batch.try_borrow_mut().ok().map(|mut b| f(&mut b)))
        .ok()
        .flatten()
}

/// Writes out this thread's batched lines, and batches its lines from now
/// on.
pub(crate) fn flush_and_batch() {
    with_batch(|batch| {
        batch
            .get_or_insert_with(|| Batch {
                lines: Vec::with_capacity(BATCH_BYTES),
                since: None,
            })
            .write_out()
    });
}

/// Writes out this thread's batched lines (it goes on batching).
pub(crate) fn flush() {
    with_batch(|batch| batch.as_mut().map(Batch::write_out));
}

/// The log's writer: stderr, a line at a time or in this thread's batch.
pub(crate) struct Lines;

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// One log line being written (`tracing-subscriber` writes each line with
/// one `write_all`).
pub(crate) struct Line;

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let batched = with_batch(|batch| {
            let Some(batch) = batch.as_mut() else {
                return false;
            };
            batch.lines.extend_from_slice(buf);
            let since = *batch.since.get_or_insert_with(Instant::now);
            if batch.lines.len() >= BATCH_BYTES || since.elapsed() >= MAX_WAIT {
                batch.write_out();
            }
            true
        });
        match batched {
            Some(true) => Ok(buf.len()),
            _ => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
