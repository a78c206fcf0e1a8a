//! File-backed inputs: a byte range of a file, read on demand with
//! positioned reads instead of being held in memory.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

/// The byte range `start..start + len` of the file at `path`.
///
/// Cheap to clone (the path is shared). Reading assumes the file does not
/// change while a job runs: a file that became shorter is an
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileRange {
    pub(crate) path: Arc<PathBuf>,
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl FileRange {
    /// The whole range in a new buffer (blocking). Reads straight into
    /// the buffer's spare capacity (`read_to_end` does not zero it first):
    /// one copy, from the page cache.
    pub(crate) fn read_all(&self) -> io::Result<Bytes> {
        let len = usize::try_from(self.len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
        let mut file = File::open(&*self.path)?;
        file.seek(SeekFrom::Start(self.start))?;
        let mut out = Vec::with_capacity(len);
        file.take(self.len).read_to_end(&mut out)?;
        if out.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} is shorter than expected (changed during the job?)",
                    self.path.display()
                ),
            ));
        }
        Ok(Bytes::from(out))
    }

    /// Appends up to `max_len` bytes of the range from `offset` (relative
    /// to the range) to `out`, reading straight into its spare capacity;
    /// returns the bytes appended (blocking).
    pub(crate) fn read_into(
        &self,
        out: &mut BytesMut,
        offset: u64,
        max_len: u64,
    ) -> io::Result<u64> {
        let len = max_len.min(self.len.saturating_sub(offset));
        let at = self
            .start
            .checked_add(offset)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file offset overflows"))?;
        read_exact_at(&self.path, at, len, out)?;
        Ok(len)
    }
}

/// Appends exactly `len` bytes of the file at `path` from `offset` to
/// `out` (blocking).
pub(crate) fn read_exact_at(
    path: &Path,
    offset: u64,
    len: u64,
    out: &mut BytesMut,
) -> io::Result<()> {
    let len = usize::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
    if len == 0 {
        return Ok(());
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    out.reserve(len);
    let mut filled = 0;
    let mut reader = file.take(len as u64);
    // `BytesMut` spare capacity is uninitialised; zero it once (cheap next
    // to the read itself) and read into it without a second buffer.
    let base = out.len();
    out.put_bytes(0, len);
    while filled < len {
        match reader.read(&mut out[base + filled..]) {
            Ok(0) => {
                out.truncate(base);
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} is shorter than expected (changed during the job?)",
                        path.display()
                    ),
                ));
            }
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                out.truncate(base);
                return Err(err);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_their_bytes_and_refuse_a_shorter_file() {
        let dir = std::env::temp_dir().join(format!("mr-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt");
        std::fs::write(&path, b"0123456789").unwrap();
        let range = FileRange {
            path: Arc::new(path.clone()),
            start: 2,
            len: 5,
        };
        assert_eq!(&range.read_all().unwrap()[..], b"23456");
        let mut out = BytesMut::from(&b"hdr"[..]);
        assert_eq!(range.read_into(&mut out, 3, 100).unwrap(), 2);
        assert_eq!(&out[..], b"hdr56");
        std::fs::write(&path, b"0123").unwrap();
        let err = range.read_all().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
