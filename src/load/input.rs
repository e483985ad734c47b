//! The byte stream a CSV file is read from: plain or gzip (decompressed
//! while streaming, under a size cap) with a leading UTF-8 BOM removed.
//!
//! Trap: a BOM can arrive split across reads (a decompressor or a pipe may
//! hand out one byte at a time), so [`SkipBom`] keeps reading until it has
//! three bytes or the end before deciding.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Buffer for reading the file (and the compressed stream).
const READ_BUFFER: usize = 256 * 1024;

/// Whether a file is gzip: its name ends with `.gz` or it starts with the
/// gzip magic bytes (a server may serve a compressed file under any name).
pub fn is_gzip(name: &str, file: &mut File) -> io::Result<bool> {
    if name.to_ascii_lowercase().ends_with(".gz") {
        return Ok(true);
    }
    let mut magic = [0u8; 2];
    let n = read_full(file, &mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(n == 2 && magic == GZIP_MAGIC)
}

/// A reader over the file's decompressed bytes, BOM removed, and a flag
/// that turns true when the decompressed size went over `cap` (the read
/// then fails).
pub fn open(file: File, gzip: bool, cap: u64) -> (SkipBom<Box<dyn Read>>, Rc<Cell<bool>>) {
    let over = Rc::new(Cell::new(false));
    let inner: Box<dyn Read> = if gzip {
        let dec = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, file));
        Box::new(Capped {
            inner: dec,
            left: cap,
            over: over.clone(),
        })
    } else {
        Box::new(file)
    };
    (SkipBom::new(inner), over)
}

/// Fails the read once more than `left` bytes went through.
struct Capped<R> {
    inner: R,
    left: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte more than allowed so that a stream of exactly
        // `cap` bytes passes and one byte more is caught.
        let want = buf
            .len()
            .min(self.left.saturating_add(1).min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.over.set(true);
            return Err(io::Error::other("decompressed size over the limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Removes a leading UTF-8 BOM, however the first bytes arrive.
pub struct SkipBom<R> {
    inner: R,
    /// Bytes read ahead while looking for the BOM, not yet handed out.
    head: [u8; 3],
    head_len: usize,
    head_pos: usize,
    checked: bool,
}

impl<R: Read> SkipBom<R> {
    pub fn new(inner: R) -> Self {
        SkipBom {
            inner,
            head: [0; 3],
            head_len: 0,
            head_pos: 0,
            checked: false,
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            self.head_len = read_full(&mut self.inner, &mut self.head)?;
            self.checked = true;
            if self.head_len == 3 && self.head == BOM {
                self.head_len = 0;
            }
        }
        if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// Reads until `buf` is full or the end; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens `path` for reading.
pub fn open_file(path: &Path) -> io::Result<File> {
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per read, as a slow decompressor may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    fn all(r: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        let mut r = r;
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn bom_split_across_reads_is_removed() {
        let data = b"\xEF\xBB\xBFuser_id,seg\n1,a\n";
        assert_eq!(all(SkipBom::new(Trickle(data))), b"user_id,seg\n1,a\n");
    }

    #[test]
    fn short_or_bomless_input_is_kept() {
        assert_eq!(all(SkipBom::new(Trickle(b"ab"))), b"ab");
        assert_eq!(all(SkipBom::new(Trickle(b""))), b"");
        assert_eq!(all(SkipBom::new(Trickle(b"\xEF\xBBx1"))), b"\xEF\xBBx1");
        assert_eq!(all(SkipBom::new(&b"abcdef"[..])), b"abcdef");
    }

    #[test]
    fn cap_allows_exactly_the_limit() {
        let over = Rc::new(Cell::new(false));
        let c = Capped {
            inner: Trickle(b"12345"),
            left: 5,
            over: over.clone(),
        };
        assert_eq!(all(c), b"12345");
        assert!(!over.get());
        let mut c = Capped {
            inner: &b"123456"[..],
            left: 5,
            over: over.clone(),
        };
        let mut out = Vec::new();
        assert!(c.read_to_end(&mut out).is_err());
        assert!(over.get());
    }
}
