//! Counting the words of raw text in one pass: the word count's map.
//!
//! Same words as [`normalize`](super::normalize) + [`words`](super::words)
//! (maximal runs of ASCII letters, lowercased), without the lowercased copy
//! of the text: the scan classifies letters of either case, and the table
//! compares and hashes words case-insensitively. A word is made only of
//! ASCII letters, so lowercasing it is setting bit 5 of every byte, eight
//! bytes at a time.
//!
//! The table is a [`hashbrown::HashTable`] of slots that borrow the first
//! occurrence of each word from the text, with a hash computed in the scan
//! from the word's first (up to) eight bytes loaded as one `u64`. Most words
//! are at most eight bytes long: for them a lookup is one hash and one
//! integer compare, never a byte loop. The hash is not keyed: the text is
//! the submitting user's own input and the table is private to one task,
//! so a crafted input can only slow down its own task (which has a
//! timeout); see docs/mapreduce.md, "Hashers".

use hashbrown::HashTable;

/// Bit 5 of every byte: OR-ing it into ASCII letters lowercases them.
const LOWER: u64 = 0x2020_2020_2020_2020;
/// Odd constants of the hash (from the fractional digits of pi).
const K1: u64 = 0x243f_6a88_85a3_08d3;
const K2: u64 = 0x1319_8a2e_0370_7344;
const K3: u64 = 0xa409_3822_299f_31d0;
/// Initial table capacity: a split of a few MB of prose has thousands of
/// distinct words; this avoids the first rounds of growth.
const INITIAL_CAPACITY: usize = 4096;

/// One distinct word of the text.
#[derive(Debug)]
struct Slot<'a> {
    hash: u64,
    /// The word's first (up to) eight bytes, lowercased, zero-padded.
    prefix: u64,
    /// The word's first occurrence (case as in the text).
    word: &'a [u8],
    count: u64,
}

/// The distinct words of a text with their counts (see [`count_words`]).
#[derive(Debug)]
pub(crate) struct WordCounts<'a> {
    table: HashTable<Slot<'a>>,
    /// Words in the text (with repetitions).
    total: u64,
}

impl WordCounts<'_> {
    /// Words in the text, with repetitions.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Distinct words.
    #[cfg(test)]
    pub(crate) fn distinct(&self) -> usize {
        self.table.len()
    }

    /// `(word, count)` for every distinct word, words lowercased, in no
    /// particular order.
    pub(crate) fn into_pairs(self) -> Vec<(String, u64)> {
        self.table
            .into_iter()
            .map(|slot| (lowercase(slot.word), slot.count))
            .collect()
    }
}

/// A word (ASCII letters only) as a lowercase `String`.
fn lowercase(word: &[u8]) -> String {
    let lower = word.to_ascii_lowercase();
    // ASCII is valid UTF-8: the error arm is never taken.
    String::from_utf8(lower)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// Counts the words of `text` (maximal runs of ASCII letters, compared
/// case-insensitively).
pub(crate) fn count_words(text: &[u8]) -> WordCounts<'_> {
    let mut counts = WordCounts {
        table: HashTable::with_capacity(INITIAL_CAPACITY),
        total: 0,
    };
    for_each_word(text, |start, end| counts.add(text, start, end));
    counts
}

impl<'a> WordCounts<'a> {
    #[inline]
    fn add(&mut self, text: &'a [u8], start: usize, end: usize) {
        self.total += 1;
        let len = end - start;
        let prefix = lowered_chunk(text, start, len);
        let word = &text[start..end];
        let hash = if len <= 8 {
            fold(prefix ^ K1, len as u64 ^ K2)
        } else {
            long_hash(text, start, len, prefix)
        };
        let found = self.table.find_mut(hash, |slot| {
            slot.prefix == prefix
                && slot.word.len() == len
                && (len <= 8 || same_letters(&slot.word[8..], &word[8..]))
        });
        match found {
            Some(slot) => slot.count += 1,
            None => {
                self.table.insert_unique(
                    hash,
                    Slot {
                        hash,
                        prefix,
                        word,
                        count: 1,
                    },
                    |slot| slot.hash,
                );
            }
        }
    }
}

/// Multiplies as 128 bits and folds the halves: a cheap, well-mixing step.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The hash of a word longer than eight bytes: its prefix, then every
/// further chunk of eight (the last one zero-padded).
#[cold]
fn long_hash(text: &[u8], start: usize, len: usize, prefix: u64) -> u64 {
    let mut hash = fold(prefix ^ K1, len as u64 ^ K2);
    let mut at = 8;
    while at < len {
        let chunk = lowered_chunk(text, start + at, len - at);
        hash = fold(hash ^ chunk, K3);
        at += 8;
    }
    hash
}

/// Whether two runs of ASCII letters of equal length are the same word.
fn same_letters(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x | 0x20 == y | 0x20)
}

/// The `min(len, 8)` letters of `text` at `at`, lowercased, as a
/// little-endian `u64` with the bytes past the word zeroed.
#[inline]
fn lowered_chunk(text: &[u8], at: usize, len: usize) -> u64 {
    let raw = match text.get(at..at + 8) {
        Some(bytes) => {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(bytes);
            u64::from_le_bytes(chunk)
        }
        None => {
            // Fewer than eight bytes left in the text.
            let mut chunk = [0u8; 8];
            let rest = text.get(at..).unwrap_or_default();
            chunk[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(chunk)
        }
    };
    let keep = if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (len * 8)) - 1
    };
    (raw | LOWER) & keep
}

/// Bit j set iff `block[j]` is an ASCII letter: a fixed-size loop the
/// compiler turns into vector compares.
#[inline]
fn letter_mask64(block: &[u8; 64]) -> u64 {
    let mut mask = 0u64;
    for (j, &b) in block.iter().enumerate() {
        mask |= u64::from((b | 0x20).wrapping_sub(b'a') < 26) << j;
    }
    mask
}

/// Bit j set iff `block[j]` is an ASCII letter (`block` shorter than 64).
fn letter_mask(block: &[u8]) -> u64 {
    let mut mask = 0u64;
    for (j, &b) in block.iter().enumerate() {
        mask |= u64::from((b | 0x20).wrapping_sub(b'a') < 26) << j;
    }
    mask
}

/// Calls `f(start, end)` for every maximal run of ASCII letters (either
/// case) in `text`, in order. Classifies 64 bytes at a time into a bit
/// mask and walks its transitions: only word boundaries cost a branch.
#[inline]
pub(crate) fn for_each_word(text: &[u8], mut f: impl FnMut(usize, usize)) {
    const NONE: usize = usize::MAX;
    let mut open = NONE;
    let mut carry = 0u64;
    let mut blocks = text.chunks_exact(64);
    let mut base = 0;
    let mut walk = |mask: u64, carry: &mut u64, base: usize| {
        let mut transitions = mask ^ ((mask << 1) | *carry);
        *carry = mask >> 63;
        while transitions != 0 {
            let at = base + transitions.trailing_zeros() as usize;
            transitions &= transitions - 1;
            if open == NONE {
                open = at;
            } else {
                f(open, at);
                open = NONE;
            }
        }
    };
    for block in &mut blocks {
        let block: &[u8; 64] = block.try_into().unwrap_or(&[0; 64]);
        walk(letter_mask64(block), &mut carry, base);
        base += 64;
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // Bits past the end are separators: a word running to the end of
        // the text closes at `text.len()` here.
        walk(letter_mask(rest), &mut carry, base);
    } else if carry != 0 {
        walk(0, &mut carry, base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapreduce::{normalize, words};

    /// The counts through the reference path: a lowercased copy, then
    /// `words`, then a plain map.
    fn expected(text: &[u8]) -> Vec<(String, u64)> {
        let norm = normalize(text);
        let mut map = std::collections::BTreeMap::<String, u64>::new();
        for w in words(&norm) {
            *map.entry(String::from_utf8(w.to_vec()).unwrap())
                .or_default() += 1;
        }
        map.into_iter().collect()
    }

    fn counted(text: &[u8]) -> Vec<(String, u64)> {
        let mut pairs = count_words(text).into_pairs();
        pairs.sort();
        pairs
    }

    #[test]
    fn counts_words_case_insensitively() {
        let text = b"The cat, the HAT; tHe end. Extraordinarily EXTRAORDINARILY extraordinary";
        let counts = count_words(text);
        assert_eq!(counts.total(), 9);
        assert_eq!(counts.distinct(), 6);
        assert_eq!(counted(text), expected(text));
        assert_eq!(
            counted(b"don't caf\xc3\xa9 abc123DEF_ghi \xffx"),
            [
                ("abc".to_owned(), 1),
                ("caf".to_owned(), 1),
                ("def".to_owned(), 1),
                ("don".to_owned(), 1),
                ("ghi".to_owned(), 1),
                ("t".to_owned(), 1),
                ("x".to_owned(), 1)
            ]
        );
        assert!(counted(b"").is_empty());
        assert!(counted(b" 12 -- \n").is_empty());
    }

    #[test]
    fn words_at_every_length_and_offset() {
        // Words of every length at every offset around 64-byte blocks and
        // the end of the text (where eight-byte loads fall short).
        for len in 1..140 {
            for offset in [0, 1, 7, 62, 63, 64, 65, 127, 128] {
                for tail in [0, 1, 3, 70] {
                    let mut text = vec![b' '; offset];
                    text.extend((0..len).map(|i| b"aBcDeFgHiJ"[i % 10]));
                    text.extend_from_slice(b" ab");
                    text.extend(std::iter::repeat_n(b'.', tail));
                    let mut spans = Vec::new();
                    for_each_word(&text, |s, e| spans.push((s, e)));
                    assert_eq!(
                        spans,
                        [(offset, offset + len), (offset + len + 1, offset + len + 3)],
                        "len {len} offset {offset} tail {tail}"
                    );
                    assert_eq!(counted(&text), expected(&text));
                }
            }
        }
        let all = vec![b'Z'; 200];
        assert_eq!(counted(&all), [("z".repeat(200), 1)]);
        let mut spans = 0;
        for_each_word(&[b'x'; 64], |_, _| spans += 1);
        assert_eq!(spans, 1);
    }

    #[test]
    fn long_words_that_share_a_prefix_stay_apart() {
        let text = b"abcdefghij abcdefghik ABCDEFGHIJ abcdefgh abcdefghijklmnopq abcdefghijklmnopr";
        assert_eq!(counted(text), expected(text));
        assert_eq!(count_words(text).distinct(), 5);
    }

    proptest::proptest! {
        #[test]
        fn counts_match_the_reference_path(text in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(b'a'), proptest::strategy::Just(b'b'),
                proptest::strategy::Just(b'B'), proptest::strategy::Just(b' '),
                proptest::strategy::Just(b'Z'), proptest::strategy::Just(0xe9u8),
                proptest::strategy::Just(b'1')], 0..600)) {
            proptest::prop_assert_eq!(counted(&text), expected(&text));
        }
    }
}
