//! The byte stream a CSV file is read from: plain or gzip (decompressed
//! while streaming, under a size cap) with a leading UTF-8 BOM removed.
//!
//! Trap: a BOM can arrive split across reads (a decompressor or a pipe may
//! hand out one byte at a time), so [`SkipBom`] keeps reading until it has
//! three bytes or the end before deciding.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
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

/// What [`open`] gives: the bytes to parse, the flag that turns true when
/// the decompressed size went over the cap (the read then fails), and the
/// line index of what was read.
pub type Opened = (
    CountLines<SkipBom<Box<dyn Read>>>,
    Rc<Cell<bool>>,
    Rc<RefCell<LineIndex>>,
);

/// A reader over the file's decompressed bytes, BOM removed.
pub fn open(file: File, gzip: bool, cap: u64) -> Opened {
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
    let lines = Rc::new(RefCell::new(LineIndex::default()));
    let reader = CountLines {
        inner: SkipBom::new(inner),
        index: lines.clone(),
    };
    (reader, over, lines)
}

/// Line numbers of records, counted by segsync itself.
///
/// Why: the csv crate's record positions count lines wrongly after CRLF
/// terminators and blank lines (a record's position is where the previous
/// terminator began). Its byte offsets are exact in the same way, so this
/// index keeps the bytes from the last record asked about to the read head
/// (at most the parser's read-ahead) and counts the newlines itself.
#[derive(Default)]
pub struct LineIndex {
    window: VecDeque<u8>,
    /// Byte offset of `window[0]`.
    base: u64,
    /// Newlines before `base`.
    newlines: u64,
}

impl LineIndex {
    /// The 1-based line on which the record whose csv position is `byte`
    /// starts. Calls must come in record order.
    pub fn record_line(&mut self, byte: u64) -> u64 {
        let k = (byte.saturating_sub(self.base) as usize).min(self.window.len());
        let (a, b) = self.window.as_slices();
        let count = |s: &[u8]| s.iter().filter(|&&c| c == b'\n').count() as u64;
        self.newlines += if k <= a.len() {
            count(&a[..k])
        } else {
            count(a) + count(&b[..k - a.len()])
        };
        self.window.drain(..k);
        self.base += k as u64;
        // The position points at the rest of the previous terminator and
        // any blank lines: the record starts after them.
        let skipped = self
            .window
            .iter()
            .take_while(|&&c| c == b'\n' || c == b'\r')
            .filter(|&&c| c == b'\n')
            .count() as u64;
        self.newlines + skipped + 1
    }
}

/// Feeds every byte read to a [`LineIndex`].
pub struct CountLines<R> {
    inner: R,
    index: Rc<RefCell<LineIndex>>,
}

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.index.borrow_mut().window.extend(&buf[..n]);
        Ok(n)
    }
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

    /// Line of each record as the csv parser reports it through the index.
    fn lines(input: &str) -> Vec<u64> {
        let index = Rc::new(RefCell::new(LineIndex::default()));
        let reader = CountLines {
            inner: Trickle(input.as_bytes()),
            index: index.clone(),
        };
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while csv.read_byte_record(&mut rec).unwrap() {
            out.push(
                index
                    .borrow_mut()
                    .record_line(rec.position().unwrap().byte()),
            );
        }
        out
    }

    #[test]
    fn record_lines_survive_crlf_blank_lines_and_quoted_newlines() {
        assert_eq!(lines("h\n1\nx\n"), [1, 2, 3]);
        assert_eq!(lines("h\r\n1\r\nx\r\n"), [1, 2, 3]);
        assert_eq!(lines("h\n\n1\n\r\nx"), [1, 3, 5]);
        assert_eq!(lines("h\r\n\r\n\r\n1\r\n"), [1, 4]);
        assert_eq!(lines("h\n\"a\nb\",c\nx\n"), [1, 2, 4]);
        assert_eq!(lines("h\r\n\"a\r\nb\"\r\nx\r\n"), [1, 2, 4]);
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
