//! The built-in jobs: [`WordCount`] and [`InvertedIndex`].

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::counter::count_words;
use super::spec::{MapInput, MapOutput, MapReduce, ReduceContext};
use super::words::{normalize, words};

// Counting maps use FxHash although their keys come from user input: the
// hasher is internal to one map task, the input is the submitting user's own
// data, and the worst a crafted input can do is slow down that user's own
// task (which has a timeout). Partitioning, which must agree across nodes,
// uses the fixed FNV-1a hash instead (see `words::stable_hash`).

/// An ASCII word (lowercase letters) as a `String`.
fn word_string(word: &[u8]) -> String {
    String::from_utf8_lossy(word).into_owned()
}

/// Word count: `word -> occurrences`, words as defined in
/// [`words`](super::words()) (lowercased runs of ASCII letters).
#[derive(Clone, Copy, Debug, Default)]
pub struct WordCount;

impl WordCount {
    /// The name it is registered under.
    pub const NAME: &'static str = "wordcount";
}

impl MapReduce for WordCount {
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn map(&self, input: &MapInput<'_>) -> MapOutput<String, u64> {
        // One pass over the raw text, no lowercased copy (see counter.rs).
        let counts = count_words(input.text);
        let records = counts.total();
        MapOutput {
            pairs: counts.into_pairs(),
            records,
        }
    }

    // Counts can come from other nodes' map outputs (fetched over the
    // network): a count that cannot grow further stays at `u64::MAX`
    // instead of wrapping (release) or panicking (debug).
    fn combine(&self, acc: &mut u64, value: u64) {
        *acc = acc.saturating_add(value);
    }

    fn reduce(&self, _key: &String, values: Vec<u64>, _ctx: &ReduceContext<'_>) -> u64 {
        values.into_iter().fold(0, u64::saturating_add)
    }
}

/// One occurrence of a word: input number and word position.
///
/// `position` is the 0-based index of the word among all words of that
/// input (the first word of a file is at position 0, the next at 1, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Posting {
    /// The index of the input in the job's input list.
    pub file: u32,
    /// The 0-based word index within that input.
    pub position: u64,
}

/// The positions of a word within one split, split-local (0-based).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPositions {
    /// The split.
    pub split: u32,
    /// Word indexes within the split, ascending.
    pub positions: Vec<u64>,
}

/// Inverted index: `word -> [(input, position)]`, postings sorted by input
/// then position. Positions are word indexes within the input, 0-based (see
/// [`Posting`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct InvertedIndex;

impl InvertedIndex {
    /// The name it is registered under.
    pub const NAME: &'static str = "index";
}

impl MapReduce for InvertedIndex {
    type Key = String;
    type Value = Vec<SplitPositions>;
    type Output = Vec<Posting>;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn map(&self, input: &MapInput<'_>) -> MapOutput<String, Vec<SplitPositions>> {
        let text = normalize(input.text);
        let mut positions: FxHashMap<&[u8], Vec<u64>> = FxHashMap::default();
        let mut records = 0;
        for word in words(&text) {
            positions.entry(word).or_default().push(records);
            records += 1;
        }
        let split = input.split.index;
        let pairs = positions
            .into_iter()
            .map(|(word, positions)| (word_string(word), vec![SplitPositions { split, positions }]))
            .collect();
        MapOutput { pairs, records }
    }

    fn combine(&self, acc: &mut Vec<SplitPositions>, value: Vec<SplitPositions>) {
        acc.extend(value);
    }

    fn reduce(
        &self,
        _key: &String,
        values: Vec<Vec<SplitPositions>>,
        ctx: &ReduceContext<'_>,
    ) -> Vec<Posting> {
        let mut postings: Vec<Posting> = Vec::new();
        for group in values.into_iter().flatten() {
            let file = ctx.file(group.split).unwrap_or(u32::MAX);
            let offset = ctx.record_offset(group.split).unwrap_or(0);
            postings.extend(group.positions.into_iter().map(|p| Posting {
                file,
                // Positions come from other nodes' map outputs: one past
                // the end stays at the end instead of wrapping.
                position: offset.saturating_add(p),
            }));
        }
        postings.sort_unstable();
        postings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapreduce::spec::SplitInfo;
    use crate::mapreduce::split::SplitSpec;

    fn split(index: u32, file: u32) -> SplitSpec {
        SplitSpec {
            index,
            file,
            start: 0,
            end: 0,
        }
    }

    #[test]
    fn word_count_map_counts_and_reduce_sums() {
        let s = split(0, 0);
        let out = WordCount.map(&MapInput {
            split: &s,
            text: b"The cat, the HAT; the end.",
        });
        let mut pairs = out.pairs;
        pairs.sort();
        assert_eq!(out.records, 6);
        assert_eq!(
            pairs,
            [
                ("cat".to_owned(), 1),
                ("end".to_owned(), 1),
                ("hat".to_owned(), 1),
                ("the".to_owned(), 3)
            ]
        );
        let ctx = ReduceContext { splits: &[] };
        assert_eq!(WordCount.reduce(&"the".into(), vec![3, 4], &ctx), 7);
    }

    #[test]
    fn reduce_saturates_instead_of_overflowing() {
        let ctx = ReduceContext { splits: &[] };
        let huge = WordCount.reduce(&"w".into(), vec![u64::MAX, 2, 3], &ctx);
        assert_eq!(huge, u64::MAX);
        let mut acc = u64::MAX - 1;
        WordCount.combine(&mut acc, 5);
        assert_eq!(acc, u64::MAX);
        let infos = [SplitInfo {
            file: 0,
            record_offset: u64::MAX - 1,
        }];
        let ctx = ReduceContext { splits: &infos };
        let group = vec![SplitPositions {
            split: 0,
            positions: vec![0, 7],
        }];
        let postings = InvertedIndex.reduce(&"w".into(), vec![group], &ctx);
        let positions: Vec<u64> = postings.iter().map(|p| p.position).collect();
        assert_eq!(positions, [u64::MAX - 1, u64::MAX]);
    }

    #[test]
    fn index_positions_become_input_wide() {
        let s = split(1, 0);
        let out = InvertedIndex.map(&MapInput {
            split: &s,
            text: b"b a b",
        });
        assert_eq!(out.records, 3);
        let b = out.pairs.iter().find(|(k, _)| k == "b").unwrap();
        assert_eq!(b.1[0].positions, [0, 2]);
        let infos = [
            SplitInfo {
                file: 0,
                record_offset: 0,
            },
            SplitInfo {
                file: 0,
                record_offset: 10,
            },
        ];
        let ctx = ReduceContext { splits: &infos };
        let early = vec![SplitPositions {
            split: 0,
            positions: vec![4],
        }];
        let postings = InvertedIndex.reduce(&"b".into(), vec![b.1.clone(), early], &ctx);
        let positions: Vec<u64> = postings.iter().map(|p| p.position).collect();
        assert_eq!(positions, [4, 10, 12]);
    }
}
