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
            // Without the line end, so a cut-off line reads `EOF ... at line
            // 1 column N`, not `line 2 column 0`. Serde would take an array
            // as the struct's fields in order: say what a line must be.
            let text = self.buf.trim();
            let parsed = if text.starts_with('{') {
                serde_json::from_str(text)
            } else {
                Err(<serde_json::Error as serde::de::Error>::custom(
                    "a line must be one JSON object, {\"kind\": ...}",
                ))
            };
            return Some(parsed.map_err(|source| JobsFileError::Line {
                path: self.path.clone(),
                line: self.line,
                source,
            }));
        }
    }
}

/// How many bad lines [`check_jobs`] lists one by one (the rest are
/// counted).
pub(crate) const BAD_LINES_LISTED: usize = 100;

/// What [`check_jobs`] found in a jobs file.
#[derive(Debug, Default)]
pub(crate) struct FileCheck {
    /// Lines that are valid jobs.
    pub(crate) jobs: usize,
    /// The first [`BAD_LINES_LISTED`] bad lines: line number and reason.
    pub(crate) bad: Vec<(usize, String)>,
    /// How many lines are bad in all.
    pub(crate) bad_total: usize,
}

/// Reads a whole jobs file once and checks every line: JSON of a job
/// object, and whatever `check` says of the job (its id, limits, ...).
/// `submit --file` does this before sending anything, so a file with bad
/// lines is refused whole and every bad line is reported.
///
/// # Errors
///
/// [`JobsFileError::Read`] if the file cannot be read; bad lines are not
/// errors here but listed in the [`FileCheck`].
pub(crate) fn check_jobs(
    path: &Path,
    mut check: impl FnMut(JobSubmission) -> Result<(), String>,
) -> Result<FileCheck, JobsFileError> {
    let mut found = FileCheck::default();
    let mut lines = JobLines::open(path)?;
    // Not a `for` loop: the line number is read between items.
    #[allow(clippy::while_let_on_iterator)]
    while let Some(item) = lines.next() {
        match item {
            Ok(job) => match check(job) {
                Ok(()) => found.jobs += 1,
                Err(reason) => found.note_bad(lines.line, reason),
            },
            Err(JobsFileError::Line { line, source, .. }) => {
                found.note_bad(line, format!("invalid job: {source}"));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(found)
}

impl FileCheck {
    fn note_bad(&mut self, line: usize, reason: String) {
        self.bad_total += 1;
        if self.bad.len() < BAD_LINES_LISTED {
            self.bad.push((line, reason));
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

    #[test]
    fn every_bad_line_is_listed() {
        let dir = TempDir::new();
        let mut text =
            String::from("{\"kind\":\"echo\"}\n\n{\"kind\":\n{\"kind\":\"echo\",\"id\":\"a b\"}\n");
        for _ in 0..150 {
            text.push_str("[]\n");
        }
        let path = dir.write("mixed.jsonl", &text);
        let found = check_jobs(&path, |job| match job.id.as_deref() {
            Some(id) if id.contains(' ') => Err(format!("bad id {id:?}")),
            _ => Ok(()),
        })
        .unwrap();
        assert_eq!(found.jobs, 1);
        assert_eq!(found.bad_total, 152);
        assert_eq!(found.bad.len(), BAD_LINES_LISTED);
        assert_eq!(found.bad[0].0, 3);
        assert!(
            found.bad[0].1.starts_with("invalid job: "),
            "{:?}",
            found.bad[0]
        );
        assert_eq!(found.bad[1], (4, "bad id \"a b\"".to_owned()));
        assert_eq!(found.bad[2].0, 5);
    }
}
