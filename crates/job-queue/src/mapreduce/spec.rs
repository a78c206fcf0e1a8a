//! The map-reduce job definition ([`MapReduce`]), its registry, and the
//! type-erased map and reduce steps the task handlers run.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::split::SplitSpec;
use super::words::{partition_of, ShuffleKey};

/// What a map function gets: one split of one input.
#[derive(Clone, Copy, Debug)]
pub struct MapInput<'a> {
    /// Which split this is (its input, byte range and number).
    pub split: &'a SplitSpec,
    /// The split's bytes (any bytes; not necessarily UTF-8).
    pub text: &'a [u8],
}

/// What a map function returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapOutput<K, V> {
    /// The emitted pairs; duplicate keys are fine (they are combined).
    pub pairs: Vec<(K, V)>,
    /// How many records (words, lines, ...) the split held. The engine sums
    /// them per input so reduce functions can turn split-local record numbers
    /// into input-wide ones (see [`ReduceContext::record_offset`]).
    pub records: u64,
}

/// Where each split sits in its input, in records: what a reduce function
/// needs to turn split-local positions into input-wide positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// The split's input.
    pub file: u32,
    /// Records in the earlier splits of the same input.
    pub record_offset: u64,
}

/// What a reduce function gets besides its key and values.
#[derive(Clone, Copy, Debug)]
pub struct ReduceContext<'a> {
    /// Per split (indexed by split number): its input and record offset.
    pub splits: &'a [SplitInfo],
}

impl ReduceContext<'_> {
    /// The input of split `split` (`None` if there is no such split).
    pub fn file(&self, split: u32) -> Option<u32> {
        self.splits.get(split as usize).map(|s| s.file)
    }

    /// The records before split `split` in its input (`None` if there is no
    /// such split).
    pub fn record_offset(&self, split: u32) -> Option<u64> {
        self.splits.get(split as usize).map(|s| s.record_offset)
    }
}

/// A map-shuffle-reduce job definition, registered by [`name`](Self::name)
/// like a job kind.
///
/// `map` turns a split into `(key, value)` pairs; `combine` folds two values
/// of one key (it must be associative: it runs on the map side, per split,
/// and its results are then reduced). The engine combines by sorting each
/// partition's pairs, so a map that would emit one pair per record should
/// rather pre-aggregate in a hash map, as the built-ins do. `reduce` turns
/// all combined values of a key into the output for that key. The output is
/// sorted by key.
///
/// All three must be deterministic: a task may run more than once (retries,
/// lost map outputs) and any run's output may be used.
pub trait MapReduce: Send + Sync + 'static {
    /// The shuffle key.
    type Key: ShuffleKey;
    /// The value the map emits and the combiner folds.
    type Value: Serialize + DeserializeOwned + Send + 'static;
    /// The per-key output of the reduce.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// The name the job is registered and requested under (`wordcount`).
    fn name(&self) -> &str;

    /// Maps one split.
    fn map(&self, input: &MapInput<'_>) -> MapOutput<Self::Key, Self::Value>;

    /// Folds `value` into `acc` (both for the same key).
    fn combine(&self, acc: &mut Self::Value, value: Self::Value);

    /// Reduces every combined value of `key` (one per map task that saw it).
    fn reduce(
        &self,
        key: &Self::Key,
        values: Vec<Self::Value>,
        ctx: &ReduceContext<'_>,
    ) -> Self::Output;
}

/// Compact binary encoding (bincode, varint integers) of shuffle data.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    use bincode::Options;
    bincode::DefaultOptions::new().serialize(value)
}

/// Decodes [`encode`]d bytes; never reads or allocates past `bytes.len()`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
}

/// One map task's encoded partitions.
#[derive(Debug, Default)]
pub(crate) struct MapPartitions {
    /// Per partition: the encoded sorted pairs and their count (`None` if
    /// the partition is empty).
    pub(crate) partitions: Vec<Option<(Vec<u8>, u64)>>,
    /// The records of the split.
    pub(crate) records: u64,
}

/// A reduce task's encoded output.
#[derive(Debug)]
pub(crate) struct ReducedPartition {
    /// The encoded sorted `(key, output)` pairs.
    pub(crate) data: Vec<u8>,
    /// How many keys.
    pub(crate) keys: u64,
}

/// [`MapReduce`] with the types erased, as the task handlers run it.
pub(crate) trait ErasedJob: Send + Sync {
    /// Maps, combines and partitions one split; `text` is dropped as soon
    /// as the map function returns.
    fn map_partitions(
        &self,
        split: &SplitSpec,
        text: Bytes,
        reducers: u32,
    ) -> Result<MapPartitions, bincode::Error>;

    /// Merges the map outputs of one partition and reduces every key; each
    /// blob is dropped once decoded.
    fn reduce_partition(
        &self,
        blobs: Vec<Bytes>,
        ctx: &ReduceContext<'_>,
    ) -> Result<ReducedPartition, bincode::Error>;
}

impl<J: MapReduce> ErasedJob for J {
    fn map_partitions(
        &self,
        split: &SplitSpec,
        text: Bytes,
        reducers: u32,
    ) -> Result<MapPartitions, bincode::Error> {
        let reducers = reducers.max(1);
        let output = self.map(&MapInput { split, text: &text });
        // The split is no longer needed: free it before partitioning.
        drop(text);
        let mut parts: Vec<Vec<(J::Key, J::Value)>> = (0..reducers).map(|_| Vec::new()).collect();
        for (key, value) in output.pairs {
            parts[partition_of(key.stable_hash(), reducers) as usize].push((key, value));
        }
        let mut partitions = Vec::with_capacity(parts.len());
        for mut pairs in parts {
            if pairs.is_empty() {
                partitions.push(None);
                continue;
            }
            // Sorting brings equal keys together: combine neighbours.
            pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let pairs = combine_sorted(self, pairs);
            partitions.push(Some((encode(&pairs)?, pairs.len() as u64)));
        }
        Ok(MapPartitions {
            partitions,
            records: output.records,
        })
    }

    fn reduce_partition(
        &self,
        blobs: Vec<Bytes>,
        ctx: &ReduceContext<'_>,
    ) -> Result<ReducedPartition, bincode::Error> {
        let mut groups: FxHashMap<J::Key, Vec<J::Value>> = FxHashMap::default();
        for blob in blobs {
            let pairs: Vec<(J::Key, J::Value)> = decode(&blob)?;
            drop(blob);
            for (key, value) in pairs {
                groups.entry(key).or_default().push(value);
            }
        }
        let mut grouped: Vec<(J::Key, Vec<J::Value>)> = groups.into_iter().collect();
        grouped.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let reduced: Vec<(J::Key, J::Output)> = grouped
            .into_iter()
            .map(|(key, values)| {
                let out = self.reduce(&key, values, ctx);
                (key, out)
            })
            .collect();
        Ok(ReducedPartition {
            data: encode(&reduced)?,
            keys: reduced.len() as u64,
        })
    }
}

/// Folds the values of equal neighbouring keys of key-sorted `pairs`.
fn combine_sorted<J: MapReduce>(
    job: &J,
    pairs: Vec<(J::Key, J::Value)>,
) -> Vec<(J::Key, J::Value)> {
    let mut combined: Vec<(J::Key, J::Value)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match combined.last_mut() {
            Some((last, acc)) if *last == key => job.combine(acc, value),
            _ => combined.push((key, value)),
        }
    }
    combined
}

/// Merges the sorted, key-disjoint outputs of the reduce tasks into one list
/// sorted by key.
pub(crate) fn merge_reduced<K, O>(blobs: Vec<Bytes>) -> Result<Vec<(K, O)>, bincode::Error>
where
    K: Ord + DeserializeOwned,
    O: DeserializeOwned,
{
    let mut merged: Vec<(K, O)> = Vec::new();
    for blob in blobs {
        let run: Vec<(K, O)> = decode(&blob)?;
        drop(blob);
        merged.extend(run);
    }
    // A stable sort over concatenated sorted runs merges them in O(n log R).
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(merged)
}

/// Map-reduce job definitions by name.
///
/// ```
/// use job_queue::mapreduce::MapReduceRegistry;
///
/// let registry = MapReduceRegistry::with_builtins();
/// assert_eq!(registry.names(), ["index", "wordcount"]);
/// ```
#[derive(Clone, Default)]
pub struct MapReduceRegistry {
    jobs: FxHashMap<String, Arc<dyn ErasedJob>>,
}

impl fmt::Debug for MapReduceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapReduceRegistry")
            .field("jobs", &self.names())
            .finish()
    }
}

impl MapReduceRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        MapReduceRegistry::default()
    }

    /// A registry with the built-in jobs: [`WordCount`](super::WordCount)
    /// (`wordcount`) and [`InvertedIndex`](super::InvertedIndex) (`index`).
    pub fn with_builtins() -> Self {
        let mut registry = MapReduceRegistry::new();
        registry
            .register(super::builtins::WordCount)
            .register(super::builtins::InvertedIndex);
        registry
    }

    /// Registers `job` under its name, replacing any previous one.
    pub fn register<J: MapReduce>(&mut self, job: J) -> &mut Self {
        self.jobs.insert(job.name().to_owned(), Arc::new(job));
        self
    }

    /// Whether a job named `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.jobs.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn ErasedJob>> {
        self.jobs.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_is_bounded_and_round_trips() {
        let pairs = vec![("a".to_owned(), 1u64), ("b".to_owned(), 300)];
        let bytes = encode(&pairs).unwrap();
        // Varint encoding: 1 (len) + 2 + 1 + 2 + 3 bytes.
        assert_eq!(bytes.len(), 9);
        assert_eq!(decode::<Vec<(String, u64)>>(&bytes).unwrap(), pairs);
        // A length prefix claiming far more than the input is refused.
        let bogus = encode(&u64::MAX).unwrap();
        assert!(decode::<Vec<u8>>(&bogus).is_err());
        assert!(decode::<Vec<(String, u64)>>(&bytes[..5]).is_err());
    }
}
