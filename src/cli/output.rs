//! Standard output for every command: buffered, and a reader that went
//! away (`parapply status | head`) ends the command quietly instead of
//! with an error or a panic.

use std::fmt;
use std::io::{self, BufWriter, Write};

/// Buffered standard output whose writes, once the reader has closed it,
/// fail with an error [`is_closed`] recognises.
pub struct Output {
    inner: BufWriter<io::Stdout>,
}

/// The error a write returns once the reader has closed standard output:
/// an `io::Error` of kind `BrokenPipe` carrying this, so that the binary
/// tells it from any other broken pipe (a server connection's).
#[derive(Debug)]
struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for Closed {}

impl Output {
    /// Standard output, written in blocks of 64 KiB (not held locked, so
    /// that nothing else printing to it can block on it).
    pub fn stdout() -> Self {
        Output {
            inner: BufWriter::with_capacity(1 << 16, io::stdout()),
        }
    }
}

/// A write's result, with a broken pipe marked as [`Closed`].
fn marked<T>(r: io::Result<T>) -> io::Result<T> {
    r.map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            io::Error::new(io::ErrorKind::BrokenPipe, Closed)
        } else {
            e
        }
    })
}

/// Whether `e` is (or was caused by) a write to a closed [`Output`]: then
/// nobody is left to tell anything, and the command ends quietly.
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Closed>()
            || c.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<Closed>())
    })
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        marked(self.inner.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        marked(self.inner.flush())
    }
}
