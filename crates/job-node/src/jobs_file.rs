//! `job-node submit --file`: reading a JSON-lines jobs file.

use std::io::BufRead;

use std::path::{Path, PathBuf};

use crate::http::JobSubmission;

/// A jobs file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum JobsFileError {
    /// The file could not be read.
    #[error("cannot read jobs file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a job object.
    #[error("{}:{line}: invalid job: {source}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Reads a JSON-lines jobs file: one [`JobSubmission`] object per line,
/// blank lines skipped. (The whole file in memory: for small files; `submit
/// --file` streams with [`JobLines`].)
///
/// # Errors
///
/// [`JobsFileError`] naming the file and line.
#[cfg(test)]
pub(crate) fn read_jobs_file(path: &Path) -> Result<Vec<JobSubmission>, JobsFileError> {
    JobLines::open(path)?.collect()
}

/// The jobs of a JSON-lines file, one line at a time (bounded memory
/// whatever the file's size).
pub(crate) struct JobLines {
    reader: std::io::BufReader<std::fs::File>,
    path: PathBuf,
    line: usize,
    buf: String,
}

impl JobLines {
    /// Opens `path`.
    ///
    /// # Errors
    ///
    /// [`JobsFileError::Read`].
    pub(crate) fn open(path: &Path) -> Result<Self, JobsFileError> {
        let file = std::fs::File::open(path).map_err(|source| JobsFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(JobLines {
            reader: std::io::BufReader::with_capacity(256 * 1024, file),
            path: path.to_owned(),
            line: 0,
            buf: String::new(),
        })
    }
}

impl std::fmt::Debug for JobLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLines")
            .field("path", &self.path)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl Iterator for JobLines {
    type Item = Result<JobSubmission, JobsFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(JobsFileError::Read {
                        path: self.path.clone(),
                        source,
                    }))
                }
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(&self.buf).map_err(|source| JobsFileError::Line {
                    path: self.path.clone(),
                    line: self.line,
                    source,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    #[test]
    fn jobs_file_lines() {
        let dir = TempDir::new();
        let path = dir.write(
            "jobs.jsonl",
            "{\"kind\":\"echo\",\"data\":\"a\"}\n\n{\"kind\":\"sha256\",\"data\":{\"input\":\"x\",\"rounds\":2},\"tags\":[\"gpu\"]}\n",
        );
        let jobs = read_jobs_file(&path).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].data, r#"{"input":"x","rounds":2}"#);
        assert_eq!(jobs[1].tags, ["gpu"]);
        let bad = dir.write("bad.jsonl", "{\"kind\":\"echo\"}\n{\"kind\":\n");
        let err = read_jobs_file(&bad).unwrap_err();
        assert!(matches!(err, JobsFileError::Line { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("bad.jsonl:2"), "{err}");
        let empty = dir.write("empty.jsonl", "\n  \n");
        assert!(read_jobs_file(&empty).unwrap().is_empty());
        assert!(matches!(
            read_jobs_file(&dir.path().join("none")),
            Err(JobsFileError::Read { .. })
        ));
    }
}
