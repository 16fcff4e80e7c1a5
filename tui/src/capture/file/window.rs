//! A capture read front to back through a window of about a MiB: one reused buffer, refilled by
//! `read(2)` when a record runs past its end.

use std::{fs::File, io::Read};

/// Bytes read at a time. The buffer is refilled only when a record runs past its end, so what
/// moves to its front each time is less than one record.
pub(super) const WINDOW: usize = 1 << 20;

/// Largest record accepted: a corrupt length must not make the window grow to the file's size.
pub(super) const MAX_RECORD: usize = 64 << 20;

/// The input seen through a window: `buf` holds its bytes from offset `base` on.
pub(super) struct Input {
    /// `None` for a capture given in memory, and once the input has ended.
    pub(super) file: Option<File>,
    pub(super) buf: Vec<u8>,
    pub(super) base: usize,
    /// Size of the whole input when known (a regular file, or bytes in memory), for progress.
    pub(super) len: Option<u64>,
}

impl Input {
    /// Bytes in the buffer from offset `pos` on.
    pub(super) fn from(&self, pos: usize) -> &[u8] {
        &self.buf[pos - self.base..]
    }

    pub(super) fn ended(&self) -> bool {
        self.file.is_none()
    }

    /// Drops what is before `pos` and reads until `want` bytes from `pos` on are buffered or the
    /// input ends.
    pub(super) fn fill(&mut self, pos: usize, want: usize) -> std::io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        // What is left of the buffer is less than a record: moving it is cheap.
        self.buf.drain(..pos - self.base);
        self.base = pos;
        while self.buf.len() < want {
            let room = (want - self.buf.len()).max(WINDOW);
            // Exactly: doubling would reserve twice a big record.
            self.buf.reserve_exact(room);
            // read_to_end reads into spare capacity without zeroing it first.
            if file.take(room as u64).read_to_end(&mut self.buf)? == 0 {
                self.file = None;
                break;
            }
        }
        Ok(())
    }
}
