//! Inputs and input splits: byte ranges of one file, cut on word boundaries.

use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::words::is_word_byte;

/// One named input (a file's contents). The bytes need not be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The name reported in results (the file path, for files).
    pub name: String,
    /// The contents.
    pub data: Bytes,
}

impl Input {
    /// An input named `name` holding `data`.
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Input {
            name: name.into(),
            data: data.into(),
        }
    }

    /// Reads a file; the input is named by its path as given.
    ///
    /// # Errors
    ///
    /// The I/O error of reading the file.
    pub fn read(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path)?;
        Ok(Input::new(path.display().to_string(), data))
    }
}

/// A split: the byte range `start..end` of input number `file`.
///
/// Splits never cut a word: `start` and `end` are each at the start or end
/// of the file or between a non-letter and a letter (or two non-letters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// The split's number, `0..splits` (also its map task's number).
    pub index: u32,
    /// The index of its input in the job's input list.
    pub file: u32,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl SplitSpec {
    /// The split's length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the split is empty (never produced by [`plan_splits`]).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Cuts `inputs` into about `target` splits of similar size.
///
/// The total size is divided by `target` to get a chunk size; every
/// non-empty input is cut into chunks of that size, each cut moved forward
/// to the end of the word it falls in. Splits never span two inputs, so an
/// input smaller than a chunk is one split: there are at most
/// `target + inputs.len()` splits. Empty inputs get no split; if every input
/// is empty there are none (an empty job, not an error). `target == 0` is
/// treated as 1.
///
/// ```
/// use job_queue::mapreduce::{plan_splits, Input};
///
/// let inputs = [Input::new("a", "one two three four"), Input::new("b", "")];
/// let splits = plan_splits(&inputs, 2);
/// assert_eq!(splits.len(), 2);
/// assert_eq!((splits[0].start, splits[0].end), (0, 13)); // cut moved to the end of "three"
/// assert_eq!((splits[1].start, splits[1].end), (13, 18));
/// ```
pub fn plan_splits(inputs: &[Input], target: usize) -> Vec<SplitSpec> {
    let total: u64 = inputs.iter().map(|i| i.data.len() as u64).sum();
    if total == 0 {
        return Vec::new();
    }
    let target = target.max(1) as u64;
    let chunk = total.div_ceil(target).max(1) as usize;
    let mut splits = Vec::new();
    for (file, input) in inputs.iter().enumerate() {
        let data = &input.data[..];
        let mut start = 0;
        while start < data.len() {
            let mut end = start.saturating_add(chunk).min(data.len());
            while end < data.len() && is_word_byte(data[end - 1]) && is_word_byte(data[end]) {
                end += 1;
            }
            splits.push(SplitSpec {
                index: splits.len() as u32,
                file: file as u32,
                start: start as u64,
                end: end as u64,
            });
            start = end;
        }
    }
    splits
}

/// The bytes of `split` in `inputs`, or `None` if the split does not fit
/// them.
pub fn split_bytes(inputs: &[Input], split: &SplitSpec) -> Option<Bytes> {
    let input = inputs.get(split.file as usize)?;
    let (start, end) = (
        usize::try_from(split.start).ok()?,
        usize::try_from(split.end).ok()?,
    );
    (start <= end && end <= input.data.len()).then(|| input.data.slice(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapreduce::words::{normalize, words};
    use proptest::prelude::*;

    fn all_words(data: &[u8]) -> Vec<Vec<u8>> {
        words(&normalize(data)).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn empty_inputs_give_no_splits() {
        assert!(plan_splits(&[], 4).is_empty());
        assert!(plan_splits(&[Input::new("a", ""), Input::new("b", "")], 4).is_empty());
    }

    #[test]
    fn one_long_word_is_one_split() {
        let inputs = [Input::new("a", "x".repeat(1000))];
        let splits = plan_splits(&inputs, 10);
        assert_eq!(splits.len(), 1);
        assert_eq!(splits[0].len(), 1000);
    }

    #[test]
    fn small_files_are_one_split_each() {
        let inputs = [
            Input::new("a", "alpha"),
            Input::new("b", ""),
            Input::new("c", "gamma delta"),
        ];
        let splits = plan_splits(&inputs, 1);
        assert_eq!(splits.len(), 2);
        assert_eq!((splits[0].file, splits[1].file), (0, 2));
        assert_eq!(splits[1].index, 1);
    }

    #[test]
    fn split_bytes_checks_ranges() {
        let inputs = [Input::new("a", "hello")];
        let bad = SplitSpec {
            index: 0,
            file: 0,
            start: 2,
            end: 9,
        };
        assert!(split_bytes(&inputs, &bad).is_none());
        let other_file = SplitSpec { file: 3, ..bad };
        assert!(split_bytes(&inputs, &other_file).is_none());
    }

    proptest! {
        #[test]
        fn splitting_never_cuts_a_word(
            files in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'Z'), Just(b' '), Just(0xc3u8), Just(b'.')], 0..300),
                1..4),
            target in 1usize..20,
        ) {
            let inputs: Vec<Input> = files.iter().enumerate()
                .map(|(i, f)| Input::new(format!("f{i}"), f.clone())).collect();
            let splits = plan_splits(&inputs, target);
            prop_assert!(splits.len() <= target + inputs.len());
            for (file, input) in inputs.iter().enumerate() {
                let mine: Vec<&SplitSpec> = splits.iter().filter(|s| s.file as usize == file).collect();
                // The splits tile the file exactly, in order.
                let mut pos = 0;
                for s in &mine {
                    prop_assert_eq!(s.start, pos);
                    prop_assert!(s.end > s.start);
                    pos = s.end;
                }
                prop_assert_eq!(pos, input.data.len() as u64);
                // And the words of the splits are the words of the file.
                let joined: Vec<Vec<u8>> = mine.iter()
                    .flat_map(|s| all_words(&split_bytes(&inputs, s).unwrap()))
                    .collect();
                prop_assert_eq!(joined, all_words(&input.data));
            }
            for (i, s) in splits.iter().enumerate() {
                prop_assert_eq!(s.index as usize, i);
            }
        }
    }
}
