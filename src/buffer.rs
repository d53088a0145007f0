//! Bounded byte queues: where bytes wait between a protocol producing them and
//! the socket taking them.
//!
//! - [`ByteQueue`] holds one connection's echo backlog as a single contiguous
//!   buffer. It owns a buffer only while bytes are pending and borrows it from
//!   a [`BufferPool`], so an idle connection holds no memory and steady-state
//!   echo allocates nothing.
//! - [`ChunkQueue`] holds a chat connection's output as handles to shared,
//!   reference-counted lines ([`SharedLine`]): a line sent to a room of N
//!   members exists once in memory, with N handles to it, and several queued
//!   lines leave in one vectored write.
//!
//! - [`PageAligned`] is a fixed buffer that starts on a page boundary: the
//!   kernel copies socket bytes into and out of it at full speed (see its
//!   doc for the trap it avoids).
//!
//! Neither queue enforces a limit by itself; the owner checks
//! [`len`](ByteQueue::len) against its limit and applies its policy (echo
//! pauses reading, chat disconnects the slow client). Both expose their bytes
//! as [`IoSlice`]s so the reactor writes them with one `writev`.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;

use crate::config::{POOLED_BUF_MAX, POOL_MAX_BUFFERS};

/// What one queued line costs a [`ChunkQueue`] beyond its bytes: its handle
/// in the queue (the shared bytes themselves are counted in full for every
/// queue that holds them, which overstates memory and never understates it).
pub const QUEUED_LINE_COST: usize = std::mem::size_of::<SharedLine>();

/// Queue slots an emptied [`ChunkQueue`] keeps for reuse (1 KiB of
/// handles); it frees any beyond these.
const IDLE_QUEUE_SLOTS: usize = 64;

/// One complete line, shared by every connection it is queued on. Cloning is
/// a reference-count increment, never a copy.
pub type SharedLine = Rc<[u8]>;

/// Spare buffers kept for reuse. Taking from the pool and giving back is how
/// steady-state echo avoids one allocation per message.
#[derive(Debug, Default)]
pub struct BufferPool {
    spare: Vec<Vec<u8>>,
}

impl BufferPool {
    /// An empty pool.
    pub fn new() -> BufferPool {
        BufferPool::default()
    }

    /// A cleared buffer: a spare one when there is one, else a new one.
    pub fn take(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Give a buffer back. The pool keeps at most `POOL_MAX_BUFFERS` spares of
    /// at most `POOLED_BUF_MAX` bytes each, so its memory is bounded too.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < POOL_MAX_BUFFERS && buf.capacity() <= POOLED_BUF_MAX {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Spare buffers held now.
    pub fn spare_count(&self) -> usize {
        self.spare.len()
    }
}

/// A FIFO of bytes in one contiguous buffer, borrowed from a [`BufferPool`]
/// only while non-empty.
#[derive(Debug, Default)]
pub struct ByteQueue {
    buf: Option<Vec<u8>>,
    /// Bytes before `head` have been consumed.
    head: usize,
}

impl ByteQueue {
    /// An empty queue, holding no buffer.
    pub fn new() -> ByteQueue {
        ByteQueue::default()
    }

    /// Pending bytes.
    pub fn len(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len() - self.head)
    }

    /// No pending bytes (and then no buffer held).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a buffer is held (false whenever the queue is empty).
    pub fn holds_buffer(&self) -> bool {
        self.buf.is_some()
    }

    /// Append bytes at the back.
    pub fn push(&mut self, data: &[u8], pool: &mut BufferPool) {
        if data.is_empty() {
            return;
        }
        let buf = self.buf.get_or_insert_with(|| pool.take());
        // Reclaim consumed space before growing: the backlog is bounded by its
        // owner, so the buffer never needs to be larger than that bound.
        if self.head > 0 && buf.len() + data.len() > buf.capacity() {
            buf.drain(..self.head);
            self.head = 0;
        }
        buf.extend_from_slice(data);
    }

    /// The pending bytes, oldest first.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], |b| &b[self.head..])
    }

    /// The pending bytes as one I/O slice; returns how many slices were filled.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        if self.is_empty() || out.is_empty() {
            return 0;
        }
        out[0] = IoSlice::new(self.as_slice());
        1
    }

    /// Drop `n` bytes from the front (the socket took them). An emptied queue
    /// gives its buffer back to the pool.
    pub fn consume(&mut self, n: usize, pool: &mut BufferPool) {
        assert!(n <= self.len(), "consumed more than was pending");
        self.head += n;
        if self.is_empty() {
            if let Some(buf) = self.buf.take() {
                pool.give(buf);
            }
            self.head = 0;
        }
    }

    /// Drop everything (the connection is going away).
    pub fn clear(&mut self, pool: &mut BufferPool) {
        let n = self.len();
        self.consume(n, pool);
    }
}

/// A FIFO of shared lines with a byte count, written out with `writev`.
#[derive(Debug, Default)]
pub struct ChunkQueue {
    chunks: VecDeque<SharedLine>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Pending bytes over all chunks.
    len: usize,
}

impl ChunkQueue {
    /// An empty queue.
    pub fn new() -> ChunkQueue {
        ChunkQueue::default()
    }

    /// Pending bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No pending bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lines queued (the front one perhaps partly written).
    pub fn lines(&self) -> usize {
        self.chunks.len()
    }

    /// What the queue costs, as output limits count it: the pending bytes
    /// plus [`QUEUED_LINE_COST`] for each queued line. A thousand one-byte
    /// lines are not one kilobyte: each is a handle in the queue too, and
    /// counting only bytes let N² leave notices hold far more memory than
    /// the limit said.
    pub fn cost(&self) -> usize {
        self.len + self.chunks.len() * QUEUED_LINE_COST
    }

    /// Whether queueing `line` keeps the cost within `limit`. The one place
    /// the per-connection output policy is decided: at exactly `limit` the
    /// line still fits, one byte past it does not.
    pub fn fits(&self, line: &SharedLine, limit: usize) -> bool {
        self.cost() + line.len() + QUEUED_LINE_COST <= limit
    }

    /// Queue a handle to `line` (a reference-count increment, no copy).
    pub fn push(&mut self, line: &SharedLine) {
        if line.is_empty() {
            return;
        }
        self.len += line.len();
        self.chunks.push_back(Rc::clone(line));
    }

    /// Fill `out` with slices of the pending bytes, oldest first; returns how
    /// many were filled.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if n == out.len() {
                break;
            }
            let skip = if i == 0 { self.front_written } else { 0 };
            out[n] = IoSlice::new(&chunk[skip..]);
            n += 1;
        }
        n
    }

    /// Drop `n` bytes from the front (the socket took them).
    pub fn consume(&mut self, mut n: usize) {
        assert!(n <= self.len, "consumed more than was pending");
        self.len -= n;
        while n > 0 {
            let front_left = self.chunks[0].len() - self.front_written;
            if n >= front_left {
                n -= front_left;
                self.chunks.pop_front();
                self.front_written = 0;
            } else {
                self.front_written += n;
                n = 0;
            }
        }
        self.shrink_if_empty();
    }

    /// An emptied queue that once held a long backlog gives back all but
    /// [`IDLE_QUEUE_SLOTS`] slots, so that memory follows what is pending
    /// now, not what once was; the slots it keeps serve ordinary traffic
    /// without allocating.
    fn shrink_if_empty(&mut self) {
        if self.chunks.is_empty() && self.chunks.capacity() > IDLE_QUEUE_SLOTS {
            self.chunks.shrink_to(IDLE_QUEUE_SLOTS);
        }
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.front_written = 0;
        self.len = 0;
        self.shrink_if_empty();
    }
}

/// The page size [`PageAligned`] aligns to (4 KiB on every target we run on;
/// a larger page is a multiple of it, so nothing is lost there).
pub const PAGE: usize = 4096;

/// A fixed-size, zeroed byte buffer whose first byte is on a [`PAGE`]
/// boundary when it is at least a page long (a shorter one is allocated as
/// is: padding a 64-byte buffer to a page would cost more than it saves).
///
/// Why it exists: the kernel copies socket data to and from user memory with
/// `rep movsb`, and on some CPUs that copy is far slower when the destination
/// lies a few bytes past the source modulo 4 KiB. Socket buffers in the
/// kernel mostly start on page boundaries, while a heap buffer of 64 KiB or
/// more from `malloc` starts 16 bytes past one: on this project's machine (AMD
/// EPYC) `recv` into such a buffer cost the bench 0.65 s per GB echoed
/// against 0.37 s into a page-aligned one, and sending from a buffer 16 bytes
/// *before* a page boundary cost it 1.03 s against 0.55 s
/// (docs/benchmarks.md, "The load generator's own cost"). Over-allocating by
/// less than a page and starting at the boundary needs no `unsafe`.
#[derive(Debug)]
pub struct PageAligned {
    storage: Box<[u8]>,
    start: usize,
    len: usize,
}

impl PageAligned {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> PageAligned {
        if len < PAGE {
            return PageAligned {
                storage: vec![0u8; len].into_boxed_slice(),
                start: 0,
                len,
            };
        }
        let storage = vec![0u8; len + PAGE - 1].into_boxed_slice();
        // The heap block never moves while the box lives, so an offset
        // computed from its address now holds for the buffer's lifetime.
        let start = (PAGE - storage.as_ptr() as usize % PAGE) % PAGE;
        PageAligned {
            storage,
            start,
            len,
        }
    }
}

impl std::ops::Deref for PageAligned {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for PageAligned {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flatten(slices: &[IoSlice<'_>]) -> Vec<u8> {
        slices.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn byte_queue_holds_a_buffer_only_while_bytes_wait() {
        let mut pool = BufferPool::new();
        let mut q = ByteQueue::new();
        assert!(!q.holds_buffer());
        q.push(b"hello", &mut pool);
        assert!(q.holds_buffer());
        q.consume(2, &mut pool);
        assert_eq!(q.as_slice(), b"llo");
        q.consume(3, &mut pool);
        assert!(!q.holds_buffer());
        assert_eq!(pool.spare_count(), 1, "the buffer went back to the pool");
        q.push(b"again", &mut pool);
        assert_eq!(pool.spare_count(), 0, "and was reused");
    }

    #[test]
    fn chunk_queue_shares_lines_instead_of_copying() {
        let line: SharedLine = Rc::from(&b"<a> hi\n"[..]);
        let mut queues: Vec<ChunkQueue> = (0..3).map(|_| ChunkQueue::new()).collect();
        for q in &mut queues {
            q.push(&line);
        }
        assert_eq!(Rc::strong_count(&line), 4);
        queues[0].consume(7);
        assert_eq!(Rc::strong_count(&line), 3);
    }

    #[test]
    fn a_line_fits_up_to_exactly_the_limit() {
        let line: SharedLine = Rc::from(&b"0123456789"[..]);
        let one = line.len() + QUEUED_LINE_COST;
        let mut q = ChunkQueue::new();
        assert!(q.fits(&line, one), "exactly at the limit fits");
        assert!(!q.fits(&line, one - 1), "one byte over does not");
        q.push(&line);
        assert_eq!(q.cost(), one);
        assert!(q.fits(&line, 2 * one));
        assert!(!q.fits(&line, 2 * one - 1));
    }

    #[test]
    fn an_emptied_queue_frees_a_long_backlog() {
        let line: SharedLine = Rc::from(&b"x"[..]);
        let mut q = ChunkQueue::new();
        for _ in 0..10_000 {
            q.push(&line);
        }
        q.consume(10_000);
        assert!(
            q.chunks.capacity() <= IDLE_QUEUE_SLOTS,
            "the slots went back"
        );
        assert_eq!(q.cost(), 0);
    }

    proptest! {
        /// Whatever is pushed comes out in order, whatever the write sizes.
        #[test]
        fn byte_queue_is_a_fifo(
            pushes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..20),
            takes in proptest::collection::vec(1usize..40, 0..40),
        ) {
            let mut pool = BufferPool::new();
            let mut q = ByteQueue::new();
            let mut model = Vec::new();
            let mut out = Vec::new();
            let mut takes = takes.into_iter();
            for p in &pushes {
                q.push(p, &mut pool);
                model.extend_from_slice(p);
                if let Some(t) = takes.next() {
                    let t = t.min(q.len());
                    out.extend_from_slice(&q.as_slice()[..t]);
                    q.consume(t, &mut pool);
                }
            }
            out.extend_from_slice(q.as_slice());
            prop_assert_eq!(out, model);
        }

        #[test]
        fn chunk_queue_is_a_fifo(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..20),
            takes in proptest::collection::vec(1usize..50, 0..40),
            max_slices in 1usize..5,
        ) {
            let mut q = ChunkQueue::new();
            let mut model = Vec::new();
            let mut out = Vec::new();
            let mut takes = takes.into_iter();
            for l in &lines {
                q.push(&Rc::from(&l[..]));
                model.extend_from_slice(l);
                if let Some(t) = takes.next() {
                    let mut slices = vec![IoSlice::new(&[]); max_slices];
                    let n = q.io_slices(&mut slices);
                    let offered = flatten(&slices[..n]);
                    let t = t.min(offered.len());
                    out.extend_from_slice(&offered[..t]);
                    q.consume(t);
                }
            }
            let mut slices = vec![IoSlice::new(&[]); 64];
            let n = q.io_slices(&mut slices);
            out.extend(flatten(&slices[..n]));
            prop_assert_eq!(q.len(), model.len() - (out.len() - flatten(&slices[..n]).len()));
            prop_assert_eq!(out, model);
        }
    }

    #[test]
    fn page_aligned_starts_on_a_page_when_it_is_a_page_or_more() {
        for len in [PAGE, PAGE + 1, 65_536, 300_000] {
            let mut buf = PageAligned::new(len);
            assert_eq!((buf.len(), buf.as_ptr() as usize % PAGE), (len, 0), "{len}");
            assert!(buf.iter().all(|&b| b == 0));
            buf[len - 1] = 7;
            assert_eq!(buf[len - 1], 7);
        }
        for len in [0, 1, 64, PAGE - 1] {
            assert_eq!(PageAligned::new(len).len(), len);
        }
    }
}
