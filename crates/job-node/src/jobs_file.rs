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
    /// The file has no jobs.
    #[error("jobs file {} has no jobs", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a JSON-lines jobs file: one [`JobSubmission`] object per line,
/// blank lines skipped.
///
/// # Errors
///
/// [`JobsFileError`] naming the file and line.
pub(crate) fn read_jobs_file(path: &Path) -> Result<Vec<JobSubmission>, JobsFileError> {
    let file = std::fs::File::open(path).map_err(|source| JobsFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_jobs(std::io::BufReader::new(file), path)
}

fn read_jobs(reader: impl BufRead, path: &Path) -> Result<Vec<JobSubmission>, JobsFileError> {
    let mut jobs = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| JobsFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let job = serde_json::from_str(&line).map_err(|source| JobsFileError::Line {
            path: path.to_owned(),
            line: index + 1,
            source,
        })?;
        jobs.push(job);
    }
    if jobs.is_empty() {
        return Err(JobsFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(jobs)
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
        assert!(matches!(
            read_jobs_file(&empty),
            Err(JobsFileError::Empty { .. })
        ));
        assert!(matches!(
            read_jobs_file(&dir.path().join("none")),
            Err(JobsFileError::Read { .. })
        ));
    }
}
