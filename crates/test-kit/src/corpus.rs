//! A deterministic text generator for tests and benchmarks: words drawn
//! from a fixed vocabulary with a Zipf-like distribution, mixed case,
//! punctuation, digits, line breaks and a little non-ASCII UTF-8.

use job_queue::mapreduce::Input;

/// Settings of the generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorpusConfig {
    /// The seed: equal configs give byte-identical output, on every
    /// platform and in every build (the generator is SplitMix64).
    pub seed: u64,
    /// The exact output size in bytes.
    pub bytes: usize,
    /// Distinct vocabulary entries (>= 1).
    pub vocabulary: usize,
    /// The Zipf exponent `s`: rank `r` is drawn with weight `1 / r^s`.
    pub exponent: f64,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            seed: 42,
            bytes: 1 << 20,
            vocabulary: 20_000,
            exponent: 1.0,
        }
    }
}

/// SplitMix64: tiny, fast, and fixed forever by its definition.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n >= 1).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The vocabulary: frequent (low-rank) words are shorter.
fn vocabulary(rng: &mut SplitMix64, size: usize) -> Vec<Vec<u8>> {
    (0..size.max(1))
        .map(|rank| {
            let spread = 3 + u64::from((rank as u64 + 1).ilog2());
            let len = (1 + rng.below(spread)).min(14) as usize;
            (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
        })
        .collect()
}

/// Cumulative Zipf weights of ranks 1..=n.
fn cumulative_weights(n: usize, exponent: f64) -> Vec<f64> {
    let mut total = 0.0;
    (1..=n)
        .map(|rank| {
            total += 1.0 / (rank as f64).powf(exponent);
            total
        })
        .collect()
}

/// Appends one word, sometimes capitalized, uppercased or with a non-ASCII
/// letter in it.
fn push_word(out: &mut Vec<u8>, word: &[u8], rng: &mut SplitMix64) {
    let style = rng.below(1000);
    let start = out.len();
    out.extend_from_slice(word);
    match style {
        0..=99 => out[start].make_ascii_uppercase(),
        100..=109 => out[start..].make_ascii_uppercase(),
        110..=114 => {
            // "é" (UTF-8 C3 A9) in the middle: a separator for our words.
            let at = start + word.len() / 2;
            out.splice(at..at, [0xc3, 0xa9]);
        }
        _ => {}
    }
}

/// Appends a separator: mostly a space, sometimes punctuation, a line break
/// or a number.
fn push_separator(out: &mut Vec<u8>, rng: &mut SplitMix64) {
    match rng.below(1000) {
        0..=59 => out.extend_from_slice(b", "),
        60..=99 => out.extend_from_slice(b".\n"),
        100..=129 => out.extend_from_slice(b". "),
        130..=139 => {
            let n = rng.below(10_000);
            out.extend_from_slice(format!(" {n} ").as_bytes());
        }
        140..=144 => out.extend_from_slice(b" -- "),
        _ => out.push(b' '),
    }
}

/// Generates `config.bytes` bytes of text.
///
/// ```
/// use test_kit::{generate_corpus, CorpusConfig};
///
/// let config = CorpusConfig { bytes: 1000, ..CorpusConfig::default() };
/// let text = generate_corpus(&config);
/// assert_eq!(text.len(), 1000);
/// assert_eq!(text, generate_corpus(&config));
/// ```
pub fn generate_corpus(config: &CorpusConfig) -> Vec<u8> {
    let mut rng = SplitMix64(config.seed);
    let vocab = vocabulary(&mut rng, config.vocabulary);
    let weights = cumulative_weights(vocab.len(), config.exponent);
    let total = weights.last().copied().unwrap_or(1.0);
    let mut out = Vec::with_capacity(config.bytes + 32);
    while out.len() < config.bytes {
        let target = rng.unit() * total;
        let rank = weights
            .partition_point(|&w| w <= target)
            .min(vocab.len() - 1);
        push_word(&mut out, &vocab[rank], &mut rng);
        push_separator(&mut out, &mut rng);
    }
    out.truncate(config.bytes);
    out
}

/// `files` inputs (`corpus-0.txt`, ...) of about `config.bytes / files`
/// bytes each, generated with seeds `seed, seed + 1, ...` (same vocabulary
/// size and exponent, so they share frequent words).
pub fn generate_inputs(config: &CorpusConfig, files: usize) -> Vec<Input> {
    let files = files.max(1);
    (0..files)
        .map(|i| {
            let part = CorpusConfig {
                seed: config.seed.wrapping_add(i as u64),
                bytes: config.bytes / files + usize::from(i < config.bytes % files),
                ..*config
            };
            Input::new(format!("corpus-{i}.txt"), generate_corpus(&part))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::reference_word_count;

    #[test]
    fn splitmix_is_pinned() {
        // Reference outputs of SplitMix64 seeded with 1234567.
        let mut rng = SplitMix64(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn corpus_is_deterministic_sized_and_zipf_like() {
        let config = CorpusConfig {
            bytes: 200_000,
            vocabulary: 5_000,
            ..CorpusConfig::default()
        };
        let text = generate_corpus(&config);
        assert_eq!(text.len(), 200_000);
        assert_eq!(text, generate_corpus(&config));
        let other = generate_corpus(&CorpusConfig { seed: 7, ..config });
        assert_ne!(text, other);
        let mut counts = reference_word_count(&[Input::new("c", text)]);
        counts.sort_unstable_by_key(|c| std::cmp::Reverse(c.1));
        // Heavy head, long tail.
        assert!(counts[0].1 > 20 * counts[100].1, "{:?}", &counts[..3]);
        assert!(counts.len() > 2_000);
        let inputs = generate_inputs(&config, 3);
        let sizes: Vec<u64> = inputs.iter().map(Input::len).collect();
        assert_eq!(sizes.iter().sum::<u64>(), 200_000);
    }
}
