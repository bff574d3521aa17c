//! Standard output for every command: buffered, and a reader that went
//! away (`parapply status | head`) ends the command quietly instead of
//! with an error or a panic.

use std::io::{self, BufWriter, Write};

/// Buffered standard output that remembers whether the reader closed it.
pub struct Output {
    inner: BufWriter<io::Stdout>,
    closed: bool,
}

impl Output {
    /// Standard output, written in blocks of 64 KiB (not held locked, so
    /// that nothing else printing to it can block on it).
    pub fn stdout() -> Self {
        Output {
            inner: BufWriter::with_capacity(1 << 16, io::stdout()),
            closed: false,
        }
    }

    /// Whether a write failed because the reading end was closed: whatever
    /// error the command then returned, nothing is left to say.
    pub fn closed(&self) -> bool {
        self.closed
    }

    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.closed = true;
            }
        }
        r
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}
