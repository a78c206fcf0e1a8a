//! Straightforward single-process word count and inverted index: the
//! references the distributed results are checked against, and the
//! benchmark's baseline. Written independently of the engine's tokenizer.

use bytes::Bytes;
use job_queue::mapreduce::{Input, Posting};
use rustc_hash::FxHashMap;

/// Calls `f` for every word of `data` (lowercased ASCII-letter runs), with
/// a reused buffer.
fn scan_words(data: &[u8], mut f: impl FnMut(&[u8])) {
    let mut word: Vec<u8> = Vec::with_capacity(32);
    for &b in data {
        if b.is_ascii_alphabetic() {
            word.push(b.to_ascii_lowercase());
        } else if !word.is_empty() {
            f(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        f(&word);
    }
}

/// The bytes of `input`: its own in memory, read whole for a file.
///
/// # Panics
///
/// If the file cannot be read (these functions are test and benchmark
/// oracles; a run over files reports read errors instead).
fn contents(input: &Input) -> Bytes {
    match input.data() {
        Some(data) => data.clone(),
        None => input
            .load()
            .unwrap_or_else(|err| panic!("cannot read input {}: {err}", input.name)),
    }
}

fn to_string(word: Vec<u8>) -> String {
    String::from_utf8_lossy(&word).into_owned()
}

/// Word count of `inputs` in one pass on one thread, sorted by word. A
/// file read on demand is read whole (one input at a time).
///
/// # Panics
///
/// If an input file cannot be read.
pub fn reference_word_count(inputs: &[Input]) -> Vec<(String, u64)> {
    let mut counts: FxHashMap<Vec<u8>, u64> = FxHashMap::default();
    for input in inputs {
        scan_words(&contents(input), |word| match counts.get_mut(word) {
            Some(count) => *count += 1,
            None => {
                counts.insert(word.to_vec(), 1);
            }
        });
    }
    let mut out: Vec<(String, u64)> = counts.into_iter().map(|(w, c)| (to_string(w), c)).collect();
    out.sort_unstable();
    out
}

/// Inverted index of `inputs` in one pass on one thread, sorted by word;
/// postings sorted by input then position. A file read on demand is read
/// whole (one input at a time).
///
/// # Panics
///
/// If an input file cannot be read.
pub fn reference_inverted_index(inputs: &[Input]) -> Vec<(String, Vec<Posting>)> {
    let mut index: FxHashMap<Vec<u8>, Vec<Posting>> = FxHashMap::default();
    for (file, input) in inputs.iter().enumerate() {
        let mut position = 0;
        scan_words(&contents(input), |word| {
            let posting = Posting {
                file: file as u32,
                position,
            };
            position += 1;
            match index.get_mut(word) {
                Some(list) => list.push(posting),
                None => {
                    index.insert(word.to_vec(), vec![posting]);
                }
            }
        });
    }
    let mut out: Vec<(String, Vec<Posting>)> =
        index.into_iter().map(|(w, p)| (to_string(w), p)).collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `k` most frequent words, most frequent first, ties by word.
///
/// ```
/// use test_kit::top_words;
///
/// let counts = [("a".to_owned(), 2), ("b".to_owned(), 5), ("c".to_owned(), 2)];
/// assert_eq!(top_words(&counts, 2), [("b".to_owned(), 5), ("a".to_owned(), 2)]);
/// ```
pub fn top_words(counts: &[(String, u64)], k: usize) -> Vec<(String, u64)> {
    let mut sorted: Vec<&(String, u64)> = counts.iter().collect();
    sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.into_iter().take(k).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_counts_and_positions() {
        let inputs = [
            Input::new("a", &b"The the\xffTHE x"[..]),
            Input::new("b", &b"x, y"[..]),
        ];
        assert_eq!(
            reference_word_count(&inputs),
            [
                ("the".to_owned(), 3),
                ("x".to_owned(), 2),
                ("y".to_owned(), 1)
            ]
        );
        let index = reference_inverted_index(&inputs);
        assert_eq!(index[1].0, "x");
        assert_eq!(
            index[1].1,
            [
                Posting {
                    file: 0,
                    position: 3
                },
                Posting {
                    file: 1,
                    position: 0
                }
            ]
        );
    }
}
