//! A capture read front to back through a window of about a MiB: `read(2)` into a buffer, refilled
//! when a record runs past its end. Windows are [`Shared`]: the parallel engine's workers read
//! payloads where they lie, so a refill goes into a buffer no one holds any more (the previous
//! windows are kept to be reused, a few at most).

use std::{fs::File, io::Read};

use crate::packet::Shared;

/// Bytes read at a time. The buffer is refilled only when a record runs past its end, so what
/// moves to the next buffer's front each time is less than one record.
pub(super) const WINDOW: usize = 1 << 20;

/// A window's buffer: a window and what is left of the previous one (less than a record, which
/// a 64 KiB GSO frame can be), so a reused buffer need not grow.
const BUFFER: usize = WINDOW + (128 << 10);

/// Largest record accepted: a corrupt length must not make the window grow to the file's size.
pub(super) const MAX_RECORD: usize = 64 << 20;

/// Earlier windows kept for reuse: as many as workers may still be reading (batches in flight
/// span a few windows each); beyond, a refill takes a fresh buffer and the oldest is let go.
const KEPT: usize = 8;

/// The input seen through a window: `buf[..valid]` holds its bytes from offset `base` on.
pub(super) struct Input {
    /// `None` for a capture given in memory, and once the input has ended.
    pub(super) file: Option<File>,
    pub(super) buf: Shared,
    pub(super) base: usize,
    /// Bytes of `buf` that hold input; the rest is room a refill of a reused buffer overwrites.
    valid: usize,
    /// Size of the whole input when known (a regular file, or bytes in memory), for progress.
    pub(super) len: Option<u64>,
    /// Earlier windows, perhaps still read by workers, oldest first.
    kept: Vec<Shared>,
    /// Buffers taken new because none was free, for tests of reuse.
    #[cfg(test)]
    pub(super) fresh: usize,
}

impl Input {
    /// A file read from its start.
    pub(super) fn file(file: File, len: Option<u64>) -> Self {
        Self {
            file: Some(file),
            buf: Shared::new(Vec::new()),
            base: 0,
            valid: 0,
            len,
            kept: Vec::new(),
            #[cfg(test)]
            fresh: 0,
        }
    }

    /// A capture held in memory.
    pub(super) fn memory(data: Vec<u8>) -> Self {
        Self {
            file: None,
            len: Some(data.len() as u64),
            valid: data.len(),
            buf: Shared::new(data),
            base: 0,
            kept: Vec::new(),
            #[cfg(test)]
            fresh: 0,
        }
    }

    /// Bytes in the buffer from offset `pos` on.
    pub(super) fn from(&self, pos: usize) -> &[u8] {
        &self.buf[pos - self.base..self.valid]
    }

    pub(super) fn ended(&self) -> bool {
        self.file.is_none()
    }

    /// Bytes of the window's buffer and of those kept, for tests of its bounds.
    #[cfg(test)]
    pub(super) fn allocated(&self) -> usize {
        self.buf.len() + self.kept.iter().map(|k| k.len()).sum::<usize>()
    }

    /// Moves the window to start at `pos` and reads until `want` bytes from `pos` on are buffered
    /// or the input ends.
    pub(super) fn fill(&mut self, pos: usize, want: usize) -> std::io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        // What is left of the window is less than a record: moving it is cheap.
        let from = pos - self.base;
        let left = self.valid - from;
        // Zeroed once, when new or grown (a record longer than a window): a reused buffer is
        // overwritten.
        let size = want.max(left + WINDOW);
        let grow = |v: &mut Vec<u8>| {
            if v.len() < size {
                let len = size.max(BUFFER);
                // Exactly: doubling would reserve twice a big record.
                v.reserve_exact(len - v.len());
                v.resize(len, 0);
            }
        };
        let current = std::mem::replace(&mut self.buf, Shared::new(Vec::new()));
        let mut next = match current.into_unshared() {
            // No one else reads the window (one thread, or the workers are done with it): what
            // is left moves to its front, as in a single reused buffer.
            Ok(mut v) => {
                v.copy_within(from..from + left, 0);
                grow(&mut v);
                v
            }
            Err(current) => {
                let mut v = self.unshared_buffer();
                grow(&mut v);
                v[..left].copy_from_slice(&current[from..from + left]);
                self.keep(current);
                v
            }
        };
        let mut valid = left;
        let mut result = Ok(());
        // One read a window: `read_to_end` began at 8 KiB and doubled, eight reads a window.
        while valid < want {
            let Some(file) = &mut self.file else { break };
            match file.read(&mut next[valid..size]) {
                Ok(0) => {
                    self.file = None;
                    break;
                }
                Ok(n) => valid += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.base = pos;
        self.valid = valid;
        self.buf = Shared::new(next);
        result
    }

    /// Keeps a window someone else still reads, to fill again once they are done; not one grown
    /// for a long record (it would stay for the rest of the file), and a few at most.
    fn keep(&mut self, old: Shared) {
        if old.len() > BUFFER {
            return;
        }
        self.kept.push(old);
        if self.kept.len() > KEPT {
            self.kept.remove(0);
        }
    }

    /// A buffer to fill: a kept window no one reads any more (the latest), or a new one.
    fn unshared_buffer(&mut self) -> Vec<u8> {
        if let Some(i) = self.kept.iter().rposition(Shared::is_unshared)
            && let Ok(v) = self.kept.remove(i).into_unshared()
        {
            return v;
        }
        #[cfg(test)]
        {
            self.fresh += 1;
        }
        Vec::new()
    }
}
