//! Word splitting over bytes and the stable partition hash.
//!
//! A *word* is a maximal run of ASCII letters after ASCII lowercasing, i.e. a
//! maximal run of `[a-z]` in the lowercased text. Every other byte (digits,
//! punctuation, whitespace, and every byte >= 0x80, so every non-ASCII UTF-8
//! sequence and every invalid byte) separates words. Input is therefore
//! treated as plain bytes and never has to be valid UTF-8: `café` yields the
//! word `caf`, `naïve` yields `na` and `ve`.

/// Whether `byte` is part of a word (an ASCII letter of either case).
#[inline]
pub(crate) fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphabetic()
}

/// Writes the normalized form of `text` into `out` (cleared first): a copy
/// with ASCII letters lowercased and every other byte unchanged. It has the
/// same length (byte offsets are preserved) and the same words as `text`,
/// and its words are exactly its maximal runs of `[a-z]` (see [`words`]).
pub(crate) fn normalize_into(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(text);
    // Vectorizes well, unlike a per-byte table lookup.
    out.make_ascii_lowercase();
}

/// The normalized form of `text`: a copy with ASCII letters lowercased and
/// every other byte unchanged. It has the same length (byte offsets are
/// preserved) and the same words as `text`, and its words are exactly its
/// maximal runs of `[a-z]` (see [`words`]).
pub fn normalize(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    normalize_into(text, &mut out);
    out
}

/// An iterator over the maximal runs of `[a-z]` in `text`.
///
/// Run it over [`normalize`]d text to get the words of the original; over
/// raw text it treats uppercase letters as separators, which is rarely what
/// you want.
///
/// It classifies 64 bytes at a time into a bit mask and walks the mask's
/// transitions, so the per-byte work is branch-free and only word
/// boundaries cost a branch.
#[derive(Clone, Debug)]
pub struct Words<'a> {
    text: &'a [u8],
    /// Offset of the next block to classify.
    next_block: usize,
    /// Offset of the block whose transitions are in `transitions`.
    base: usize,
    /// Unvisited boundaries of the current block (bit j: a word starts or
    /// ends at `base + j`).
    transitions: u64,
    /// Whether the last byte of the previous block was a letter.
    carry: u64,
    /// The start of the word being scanned, if inside one.
    open: Option<usize>,
}

/// The maximal runs of `[a-z]` in `text` (see [`Words`]).
///
/// ```
/// use job_queue::mapreduce::{normalize, words};
///
/// let text = normalize("Hello, WORLD! caf\u{e9}-42x".as_bytes());
/// let found: Vec<&[u8]> = words(&text).collect();
/// assert_eq!(found, [&b"hello"[..], b"world", b"caf", b"x"]);
/// ```
pub fn words(text: &[u8]) -> Words<'_> {
    Words {
        text,
        next_block: 0,
        base: 0,
        transitions: 0,
        carry: 0,
        open: None,
    }
}

/// Bit j set iff `block[j]` is in `[a-z]`: a fixed-size loop the compiler
/// turns into vector compares.
#[inline]
fn lowercase_mask64(block: &[u8; 64]) -> u64 {
    let mut mask = 0u64;
    for (j, &b) in block.iter().enumerate() {
        mask |= u64::from(b.wrapping_sub(b'a') < 26) << j;
    }
    mask
}

/// Bit j set iff `block[j]` is in `[a-z]` (`block` shorter than 64 bytes).
#[inline]
fn lowercase_mask(block: &[u8]) -> u64 {
    let mut mask = 0u64;
    for (j, &b) in block.iter().enumerate() {
        mask |= u64::from(b.wrapping_sub(b'a') < 26) << j;
    }
    mask
}

impl Words<'_> {
    /// Classifies the next block; returns false at the end of the text.
    #[inline]
    fn load_block(&mut self) -> bool {
        let len = self.text.len();
        if self.next_block >= len {
            return false;
        }
        let end = (self.next_block + 64).min(len);
        let block = &self.text[self.next_block..end];
        let mask = match <&[u8; 64]>::try_from(block) {
            Ok(full) => lowercase_mask64(full),
            Err(_) => lowercase_mask(block),
        };
        // A boundary wherever a byte's class differs from its predecessor's;
        // past the end of a short block the class is "separator".
        self.transitions = mask ^ ((mask << 1) | self.carry);
        self.carry = mask >> 63;
        self.base = self.next_block;
        self.next_block = end;
        true
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            while self.transitions != 0 {
                let at = self.base + self.transitions.trailing_zeros() as usize;
                self.transitions &= self.transitions - 1;
                match self.open.take() {
                    None => self.open = Some(at),
                    Some(start) => return Some(&self.text[start..at]),
                }
            }
            if !self.load_block() {
                return self.open.take().map(|start| &self.text[start..]);
            }
        }
    }
}

/// FNV-1a offset basis (64-bit).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a prime (64-bit).
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable 64-bit hash of a key's bytes: FNV-1a 64, then MurmurHash3's
/// `fmix64` finalizer (FNV-1a alone spreads short, similar keys unevenly
/// over partitions).
///
/// Both steps are fixed by their specifications, so the hash is the same in
/// every process, on every node and in every future build: partitioning
/// must agree across nodes, which rules out std's randomly keyed
/// `RandomState` and any hasher whose output may change between crate
/// versions.
#[inline]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(bytes))
}

/// FNV-1a, 64-bit.
#[inline]
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// MurmurHash3's 64-bit finalizer: a bijection that mixes every input bit
/// into every output bit.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The partition (`0..reducers`) of a key with stable hash `hash`.
///
/// Maps the hash onto the range by its high bits (`hash * reducers >> 64`,
/// no division). `reducers == 0` is treated as 1.
#[inline]
pub(crate) fn partition_of(hash: u64, reducers: u32) -> u32 {
    let reducers = u128::from(reducers.max(1));
    ((u128::from(hash) * reducers) >> 64) as u32
}

/// A shuffle key: ordered, serializable, and hashable the same way on every
/// node (see [`stable_hash`]).
pub trait ShuffleKey:
    serde::Serialize
    + serde::de::DeserializeOwned
    + Ord
    + Eq
    + std::hash::Hash
    + Clone
    + Send
    + Sync
    + 'static
{
    /// A hash of the key that is identical in every process.
    fn stable_hash(&self) -> u64;
}

impl ShuffleKey for String {
    fn stable_hash(&self) -> u64 {
        stable_hash(self.as_bytes())
    }
}

impl ShuffleKey for Vec<u8> {
    fn stable_hash(&self) -> u64 {
        stable_hash(self)
    }
}

impl ShuffleKey for u64 {
    fn stable_hash(&self) -> u64 {
        stable_hash(&self.to_le_bytes())
    }
}

impl ShuffleKey for u32 {
    fn stable_hash(&self) -> u64 {
        stable_hash(&self.to_le_bytes())
    }
}

impl ShuffleKey for i64 {
    fn stable_hash(&self) -> u64 {
        stable_hash(&self.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(text: &str) -> Vec<String> {
        let norm = normalize(text.as_bytes());
        words(&norm)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn words_are_lowercased_letter_runs() {
        assert_eq!(words_of("Hello, world"), ["hello", "world"]);
        assert_eq!(words_of("don't stop"), ["don", "t", "stop"]);
        assert_eq!(words_of("abc123DEF_ghi"), ["abc", "def", "ghi"]);
        assert_eq!(words_of("  \n\t"), Vec::<String>::new());
        assert_eq!(words_of(""), Vec::<String>::new());
        assert_eq!(words_of("x"), ["x"]);
        assert_eq!(words_of("naïve Ärger"), ["na", "ve", "rger"]);
    }

    #[test]
    fn invalid_utf8_bytes_separate_words() {
        let text = b"ab\xffcd\x80\xc3EF";
        let norm = normalize(text);
        assert_eq!(norm.len(), text.len());
        let found: Vec<&[u8]> = words(&norm).collect();
        assert_eq!(found, [&b"ab"[..], b"cd", b"ef"]);
    }

    #[test]
    fn words_across_block_boundaries() {
        // Words of every length at every offset around 64-byte blocks.
        for len in 1..140 {
            for offset in [0, 1, 62, 63, 64, 65, 127, 128] {
                let mut text = vec![b' '; offset];
                text.extend(std::iter::repeat_n(b'q', len));
                text.extend_from_slice(b" ab");
                for tail in [0, 1, 70] {
                    let mut t = text.clone();
                    t.extend(std::iter::repeat_n(b'.', tail));
                    let found: Vec<usize> = words(&t).map(<[u8]>::len).collect();
                    assert_eq!(found, [len, 2], "len {len} offset {offset} tail {tail}");
                }
            }
        }
        let all = vec![b'z'; 200];
        assert_eq!(words(&all).collect::<Vec<_>>(), [&all[..]]);
        assert_eq!(words(b"").count(), 0);
        assert_eq!(words(&[b'-'; 64]).count(), 0);
    }

    proptest::proptest! {
        #[test]
        fn words_match_a_plain_scan(text in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'a'), proptest::strategy::Just(b'z'),
                                  proptest::strategy::Just(b' '), proptest::strategy::Just(b'A'),
                                  proptest::strategy::Just(0xe9u8)], 0..400)) {
            let plain: Vec<&[u8]> = text
                .split(|b| !b.is_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect();
            let found: Vec<&[u8]> = words(&text).collect();
            proptest::prop_assert_eq!(found, plain);
        }
    }

    #[test]
    fn word_bytes() {
        assert!(is_word_byte(b'a') && is_word_byte(b'Z'));
        assert!(!is_word_byte(b'0') && !is_word_byte(b'_') && !is_word_byte(0xe9));
    }

    #[test]
    fn stable_hash_is_pinned() {
        // FNV-1a 64 reference values, then the pinned stable hashes: these
        // must never change, since nodes built at different times must
        // agree on partitions.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(stable_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(stable_hash(b"a"), 0x82a2_a958_a9be_ce5b);
        assert_eq!(stable_hash(b"foobar"), 0x2c22_1949_22d1_672b);
        assert_eq!("the".to_owned().stable_hash(), stable_hash(b"the"));
        assert_eq!(partition_of(stable_hash(b"the"), 1), 0);
        let pinned: Vec<u32> = ["the", "of", "and", "mapreduce", "zebra"]
            .iter()
            .map(|w| partition_of(stable_hash(w.as_bytes()), 7))
            .collect();
        assert_eq!(pinned, PINNED_PARTITIONS_OF_7);
    }

    const PINNED_PARTITIONS_OF_7: [u32; 5] = [5, 5, 0, 2, 6];

    #[test]
    fn partitions_are_in_range_and_spread() {
        let mut counts = [0u32; 8];
        for i in 0..8000u32 {
            let p = partition_of(stable_hash(format!("w{i}").as_bytes()), 8);
            counts[p as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 900 && c < 1100), "{counts:?}");
        assert_eq!(partition_of(u64::MAX, 3), 2);
        assert_eq!(partition_of(0, 3), 0);
        assert_eq!(partition_of(u64::MAX, 0), 0);
    }
}
