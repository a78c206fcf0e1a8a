//! The finished records' ring: a double-ended queue in fixed-size chunks.
//!
//! A `VecDeque` of hundreds of thousands of 56-byte slots grows by
//! doubling, and each doubling copies every slot into a fresh allocation
//! (and faults its pages in) while the coordinator waits: ~1.6 % of the
//! coordinator's samples at 300,000 jobs, and a stall of milliseconds at a
//! million records (docs/performance.md, "Tenth round"). Here the entries
//! sit in chunks of [`CHUNK`] that never move: growing takes one chunk,
//! and only the small queue of chunk pointers is ever copied.

use std::collections::VecDeque;

/// Entries per chunk by default (a chunk of 56-byte slots is 224 KiB).
const CHUNK: usize = 4096;

/// A queue with pushes at the back, pops at the front and indexed access,
/// in chunks of `C` entries.
///
/// Every chunk holds at least one entry; every chunk but the first and the
/// last is full (entries leave only at the front and arrive only at the
/// back), so entry `i` is found by arithmetic.
#[derive(Debug)]
pub(crate) struct ChunkRing<T, const C: usize = CHUNK> {
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T, const C: usize> Default for ChunkRing<T, C> {
    fn default() -> Self {
        ChunkRing {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T, const C: usize> ChunkRing<T, C> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The chunk and the offset in it of entry `i` (`i < len`).
    fn locate(&self, i: usize) -> (usize, usize) {
        let first = self.chunks.front().map_or(0, VecDeque::len);
        if i < first {
            (0, i)
        } else {
            let rest = i - first;
            (1 + rest / C, rest % C)
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let (chunk, at) = self.locate(i);
        self.chunks.get(chunk)?.get(at)
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let (chunk, at) = self.locate(i);
        self.chunks.get_mut(chunk)?.get_mut(at)
    }

    pub(crate) fn front(&self) -> Option<&T> {
        self.chunks.front()?.front()
    }

    pub(crate) fn push_back(&mut self, value: T) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < C => last.push_back(value),
            _ => {
                let mut chunk = VecDeque::with_capacity(C);
                chunk.push_back(value);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let value = first.pop_front()?;
        if first.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= 1;
        Some(value)
    }

    /// Keeps the entries `keep` is true of, in order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let old = std::mem::take(self);
        for value in old.chunks.into_iter().flatten() {
            if keep(&value) {
                self.push_back(value);
            }
        }
    }

    /// The entries, front first (reversible).
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SMALL: usize = 4;

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        Pop,
        /// Keeps the values not divisible by this.
        Retain(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u32>().prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => (2..5u32).prop_map(Op::Retain),
        ]
    }

    proptest! {
        /// Against a `VecDeque`, across many chunk boundaries (chunks of
        /// 4; operations come in runs so that chunks fill and empty).
        #[test]
        fn agrees_with_a_vecdeque(ops in proptest::collection::vec((op(), 1..12usize), 1..60)) {
            let mut ring: ChunkRing<u32, SMALL> = ChunkRing::default();
            let mut model = VecDeque::new();
            for (op, times) in ops {
                for _ in 0..times {
                    match op {
                        Op::Push(v) => {
                            ring.push_back(v);
                            model.push_back(v);
                        }
                        Op::Pop => prop_assert_eq!(ring.pop_front(), model.pop_front()),
                        Op::Retain(d) => {
                            ring.retain(|v| v % d != 0);
                            model.retain(|v| v % d != 0);
                        }
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert_eq!(ring.front(), model.front());
                for i in 0..=model.len() {
                    prop_assert_eq!(ring.get(i), model.get(i));
                }
                prop_assert!(ring.iter().eq(model.iter()));
                prop_assert!(ring.iter().rev().eq(model.iter().rev()));
            }
        }
    }

    #[test]
    fn every_entry_is_found_and_changed_in_place() {
        let mut ring: ChunkRing<usize> = ChunkRing::default();
        for n in 0..3 * CHUNK + 17 {
            ring.push_back(n);
        }
        for _ in 0..CHUNK + 5 {
            ring.pop_front();
        }
        for (i, n) in (CHUNK + 5..3 * CHUNK + 17).enumerate() {
            assert_eq!(ring.get(i), Some(&n));
            *ring.get_mut(i).unwrap() += 1;
        }
        assert!(ring.iter().copied().eq(CHUNK + 6..3 * CHUNK + 18));
        for v in ring.iter_mut() {
            *v -= 1;
        }
        assert_eq!(ring.front(), Some(&(CHUNK + 5)));
        assert_eq!(ring.get(ring.len()), None);
        while ring.pop_front().is_some() {}
        assert_eq!((ring.len(), ring.chunks.len()), (0, 0));
    }
}
