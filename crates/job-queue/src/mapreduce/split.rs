//! Inputs and input splits: byte ranges of one input, cut on word
//! boundaries. An input is either bytes in memory or a file read on demand.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::source::{read_exact_at, FileRange};
use super::words::is_word_byte;

/// One named input. The bytes need not be UTF-8.
///
/// Either bytes in memory ([`Input::new`], [`Input::read`]) or a file
/// whose byte ranges are read when they are needed ([`Input::open`]): a
/// [`ClusterMapReduce`](super::ClusterMapReduce) run over opened files
/// never holds the whole input; each map task's split is read from the
/// file when the task fetches it. Files must not change during a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The name reported in results (the file path, for files).
    pub name: String,
    source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Memory(Bytes),
    File { path: Arc<PathBuf>, len: u64 },
}

impl Input {
    /// An input named `name` holding `data` in memory.
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Input {
            name: name.into(),
            source: Source::Memory(data.into()),
        }
    }

    /// Reads a whole file into memory; the input is named by its path as
    /// given.
    ///
    /// # Errors
    ///
    /// The I/O error of reading the file.
    pub fn read(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path)?;
        Ok(Input::new(path.display().to_string(), data))
    }

    /// A file read on demand (only its length is read now); the input is
    /// named by its path as given.
    ///
    /// # Errors
    ///
    /// The I/O error of reading the file's metadata, or
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if it is not a file.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a file", path.display()),
            ));
        }
        Ok(Input {
            name: path.display().to_string(),
            source: Source::File {
                path: Arc::new(path.to_path_buf()),
                len: meta.len(),
            },
        })
    }

    /// The input's size in bytes.
    pub fn len(&self) -> u64 {
        match &self.source {
            Source::Memory(data) => data.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    /// Whether the input is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, for an input in memory (`None` for a file read on
    /// demand).
    pub fn data(&self) -> Option<&Bytes> {
        match &self.source {
            Source::Memory(data) => Some(data),
            Source::File { .. } => None,
        }
    }

    /// The file, for an input read on demand.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::Memory(_) => None,
            Source::File { path, .. } => Some(path),
        }
    }

    /// The bytes `start..end`: a zero-copy slice in memory, a read
    /// (blocking) for a file.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if the range does not
    /// fit the input, or the I/O error of reading the file.
    pub fn range(&self, start: u64, end: u64) -> io::Result<Bytes> {
        if start > end || end > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {start}..{end} outside input {} of {} bytes",
                    self.name,
                    self.len()
                ),
            ));
        }
        match &self.source {
            Source::Memory(data) => Ok(data.slice(start as usize..end as usize)),
            Source::File { path, .. } => {
                let mut out = BytesMut::new();
                read_exact_at(path, start, end - start, &mut out)?;
                Ok(out.freeze())
            }
        }
    }

    /// All the bytes (a read of the whole file, for a file).
    ///
    /// # Errors
    ///
    /// The I/O error of reading the file.
    pub fn load(&self) -> io::Result<Bytes> {
        self.range(0, self.len())
    }

    /// Where the bytes of `split` are, without reading them: a slice in
    /// memory or a range of the file.
    pub(crate) fn locate(&self, split: &SplitSpec) -> Option<Located> {
        if split.start > split.end || split.end > self.len() {
            return None;
        }
        Some(match &self.source {
            Source::Memory(data) => {
                Located::Memory(data.slice(split.start as usize..split.end as usize))
            }
            Source::File { path, .. } => Located::File(FileRange {
                path: path.clone(),
                start: split.start,
                len: split.len(),
            }),
        })
    }

    /// The first position at or after `at` that does not cut a word.
    fn cut_at(&self, at: u64) -> io::Result<u64> {
        let len = self.len();
        if at == 0 || at >= len {
            return Ok(at.min(len));
        }
        match &self.source {
            Source::Memory(data) => {
                let mut end = at as usize;
                while end < data.len() && is_word_byte(data[end - 1]) && is_word_byte(data[end]) {
                    end += 1;
                }
                Ok(end as u64)
            }
            Source::File { path, .. } => {
                // Read windows from the byte before the cut until a
                // non-letter (or the end of the file) is found.
                const WINDOW: u64 = 4096;
                let mut pos = at - 1;
                loop {
                    let n = WINDOW.min(len - pos);
                    let mut buf = BytesMut::new();
                    read_exact_at(path, pos, n, &mut buf)?;
                    if let Some(i) = buf
                        .windows(2)
                        .position(|w| !(is_word_byte(w[0]) && is_word_byte(w[1])))
                    {
                        return Ok(pos + i as u64 + 1);
                    }
                    if pos + n >= len {
                        return Ok(len);
                    }
                    pos += n - 1;
                }
            }
        }
    }
}

/// Where a split's bytes are.
pub(crate) enum Located {
    Memory(Bytes),
    File(FileRange),
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
/// treated as 1. For a file read on demand, only a few bytes around each
/// cut are read.
///
/// # Errors
///
/// The I/O error of reading around a cut of a file (never for inputs in
/// memory).
///
/// ```
/// use job_queue::mapreduce::{plan_splits, Input};
///
/// let inputs = [Input::new("a", "one two three four"), Input::new("b", "")];
/// let splits = plan_splits(&inputs, 2).unwrap();
/// assert_eq!(splits.len(), 2);
/// assert_eq!((splits[0].start, splits[0].end), (0, 13)); // cut moved to the end of "three"
/// assert_eq!((splits[1].start, splits[1].end), (13, 18));
/// ```
pub fn plan_splits(inputs: &[Input], target: usize) -> io::Result<Vec<SplitSpec>> {
    let total: u64 = inputs.iter().map(Input::len).sum();
    if total == 0 {
        return Ok(Vec::new());
    }
    let target = target.max(1) as u64;
    let chunk = total.div_ceil(target).max(1);
    let mut splits = Vec::new();
    for (file, input) in inputs.iter().enumerate() {
        let len = input.len();
        let mut start = 0;
        while start < len {
            let end = input.cut_at(start.saturating_add(chunk).min(len))?;
            splits.push(SplitSpec {
                index: splits.len() as u32,
                file: file as u32,
                start,
                end,
            });
            start = end;
        }
    }
    Ok(splits)
}

/// [`plan_splits`] off the async runtime when a file has to be read.
pub(crate) async fn plan_splits_async(
    inputs: &[Input],
    target: usize,
) -> io::Result<Vec<SplitSpec>> {
    if inputs.iter().all(|i| i.data().is_some()) {
        return plan_splits(inputs, target);
    }
    let inputs = inputs.to_vec();
    tokio::task::spawn_blocking(move || plan_splits(&inputs, target))
        .await
        .map_err(io::Error::other)?
}

/// The bytes of `split` in `inputs` (a zero-copy slice for an input in
/// memory, a read for a file).
///
/// # Errors
///
/// [`InvalidInput`](io::ErrorKind::InvalidInput) if the split does not fit
/// `inputs`, or the I/O error of reading a file.
#[cfg(test)]
pub(crate) fn split_bytes(inputs: &[Input], split: &SplitSpec) -> io::Result<Bytes> {
    let input = inputs.get(split.file as usize).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "split {} names input {} of {}",
                split.index,
                split.file,
                inputs.len()
            ),
        )
    })?;
    input.range(split.start, split.end)
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
        assert!(plan_splits(&[], 4).unwrap().is_empty());
        assert!(plan_splits(&[Input::new("a", ""), Input::new("b", "")], 4)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn one_long_word_is_one_split() {
        let inputs = [Input::new("a", "x".repeat(1000))];
        let splits = plan_splits(&inputs, 10).unwrap();
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
        let splits = plan_splits(&inputs, 1).unwrap();
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
        assert!(split_bytes(&inputs, &bad).is_err());
        let other_file = SplitSpec { file: 3, ..bad };
        assert!(split_bytes(&inputs, &other_file).is_err());
    }

    #[test]
    fn files_split_like_the_same_bytes_in_memory() {
        let dir = std::env::temp_dir().join(format!("mr-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = b"short words, then a long one: ".to_vec();
        // A word longer than the window read around a cut.
        text.extend(std::iter::repeat_n(b'w', 10_000));
        text.extend_from_slice(b" and\xff some more words after it ".repeat(300).as_slice());
        let path = dir.join("in.txt");
        std::fs::write(&path, &text).unwrap();
        let file = Input::open(&path).unwrap();
        assert_eq!(
            (file.len(), file.data().is_none()),
            (text.len() as u64, true)
        );
        assert_eq!(file.path(), Some(path.as_path()));
        let memory = Input::new(file.name.clone(), text.clone());
        for target in [1, 3, 7, 40] {
            let from_file = plan_splits(std::slice::from_ref(&file), target).unwrap();
            let in_memory = plan_splits(std::slice::from_ref(&memory), target).unwrap();
            assert_eq!(from_file, in_memory, "target {target}");
            for split in &from_file {
                assert_eq!(
                    split_bytes(std::slice::from_ref(&file), split).unwrap(),
                    split_bytes(std::slice::from_ref(&memory), split).unwrap()
                );
            }
        }
        assert_eq!(file.load().unwrap(), text);
        assert!(Input::open(&dir).is_err(), "a directory is not an input");
        std::fs::remove_dir_all(&dir).unwrap();
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
            let splits = plan_splits(&inputs, target).unwrap();
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
                prop_assert_eq!(pos, input.len());
                // And the words of the splits are the words of the file.
                let joined: Vec<Vec<u8>> = mine.iter()
                    .flat_map(|s| all_words(&split_bytes(&inputs, s).unwrap()))
                    .collect();
                prop_assert_eq!(joined, all_words(input.data().unwrap()));
            }
            for (i, s) in splits.iter().enumerate() {
                prop_assert_eq!(s.index as usize, i);
            }
        }
    }
}
