//! Word splitting over bytes and the stable partition hash.
//!
//! A *word* is a maximal run of ASCII letters after ASCII lowercasing, i.e. a
//! maximal run of `[a-z]` in the lowercased text. Every other byte (digits,
//! punctuation, whitespace, and every byte >= 0x80, so every non-ASCII UTF-8
//! sequence and every invalid byte) separates words. Input is therefore
//! treated as plain bytes and never has to be valid UTF-8: `café` yields the
//! word `caf`, `naïve` yields `na` and `ve`.

/// Maps every byte to its lowercase ASCII letter, or 0 if it is not a letter.
const LETTER: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_lowercase() {
            table[b] = byte;
        } else if byte.is_ascii_uppercase() {
            table[b] = byte + 32;
        }
        b += 1;
    }
    table
};

/// Whether `byte` is part of a word (an ASCII letter of either case).
#[inline]
pub fn is_word_byte(byte: u8) -> bool {
    LETTER[byte as usize] != 0
}

/// Writes the normalized form of `text` into `out` (cleared first): ASCII
/// letters lowercased, every other byte replaced by a space. The result is
/// ASCII, has the same length (so byte offsets are preserved) and the same
/// words as `text`.
pub fn normalize_into(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(text.len());
    out.extend(text.iter().map(|&b| match LETTER[b as usize] {
        0 => b' ',
        letter => letter,
    }));
}

/// The normalized form of `text` (see [`normalize_into`]).
pub fn normalize(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    normalize_into(text, &mut out);
    out
}

/// An iterator over the maximal runs of `[a-z]` in `text`.
///
/// Run it over [`normalize`]d text to get the words of the original; over
/// raw text it skips uppercase letters, which is rarely what you want.
#[derive(Clone, Debug)]
pub struct Words<'a> {
    text: &'a [u8],
    pos: usize,
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
    Words { text, pos: 0 }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let text = self.text;
        let mut i = self.pos;
        while i < text.len() && !text[i].is_ascii_lowercase() {
            i += 1;
        }
        if i == text.len() {
            self.pos = i;
            return None;
        }
        let start = i;
        while i < text.len() && text[i].is_ascii_lowercase() {
            i += 1;
        }
        self.pos = i;
        Some(&text[start..i])
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
pub fn partition_of(hash: u64, reducers: u32) -> u32 {
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
