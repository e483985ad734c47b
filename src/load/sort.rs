//! External sort: bounded-memory chunks sorted and spilled to temporary
//! run files, then a k-way merge that removes duplicates and produces the
//! final sorted run that `apply` merges against the database.
//!
//! Inside the sort every key is its sort bytes ([`SortKey::encode`]):
//! integers as 8 big-endian bytes with the sign bit flipped, text as its
//! UTF-8 bytes, so that comparing bytes orders keys as SQLite sorts the
//! `key` column (integers numerically, text by bytes), which is what lets
//! `apply` walk the file and the `member` table side by side. A chunk keeps
//! its keys in one byte arena and the merge reads runs into reused
//! buffers: no allocation per row.
//!
//! Runs are a compact binary format, not CSV. Intermediate runs: a 4-byte
//! length, the sort bytes, the partition index (4 bytes) and the line
//! number (8 bytes). The final run, which `apply` reads: the key (8 bytes
//! little-endian for integers; a 4-byte length and the bytes for text) and
//! the partition index.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::Path;

/// Buffer of each run reader and writer.
const RUN_BUFFER: usize = 64 * 1024;

/// A key type the sort can carry: `i64` for `user_id` and `mobile`,
/// `String` for `email` and `external_id`.
pub trait SortKey: Ord + Clone + rusqlite::ToSql + 'static {
    /// Usual length of the key's sort bytes, to size the sort chunk.
    const TYPICAL_LEN: usize;
    /// Appends the key's sort bytes: comparing them as bytes orders keys as
    /// SQLite orders the `key` column.
    fn encode(&self, out: &mut Vec<u8>);
    /// The key back from its sort bytes.
    fn decode(b: &[u8]) -> io::Result<Self>;
    /// Writes, in the final run's format, the key whose sort bytes are `b`.
    fn write_encoded(b: &[u8], w: &mut impl Write) -> io::Result<()>;
    fn write_to(&self, w: &mut impl Write) -> io::Result<()>;
    /// Reads one key; `Ok(None)` at a clean end of the run.
    fn read_from(r: &mut impl Read) -> io::Result<Option<Self>>;
    /// The key as stored in the `member.key` column.
    fn from_sql(v: rusqlite::types::ValueRef<'_>) -> anyhow::Result<Self>;
    /// The key as a person reads it (rejection messages).
    fn show(&self) -> String;
    /// [`Self::show`] of the key whose sort bytes are `b`.
    fn show_encoded(b: &[u8]) -> String {
        Self::decode(b)
            .map(|k| k.show())
            .unwrap_or_else(|_| String::from_utf8_lossy(b).into_owned())
    }
}

impl SortKey for i64 {
    const TYPICAL_LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        // Flipping the sign bit makes big-endian bytes order like numbers.
        out.extend_from_slice(&((*self as u64) ^ (1 << 63)).to_be_bytes());
    }

    fn decode(b: &[u8]) -> io::Result<Self> {
        let b: [u8; 8] = b
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "integer key of bad length"))?;
        Ok((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
    }

    fn write_encoded(b: &[u8], w: &mut impl Write) -> io::Result<()> {
        Self::decode(b)?.write_to(w)
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.to_le_bytes())
    }

    fn read_from(r: &mut impl Read) -> io::Result<Option<Self>> {
        let mut b = [0u8; 8];
        if !read_exact_or_end(r, &mut b)? {
            return Ok(None);
        }
        Ok(Some(i64::from_le_bytes(b)))
    }

    fn from_sql(v: rusqlite::types::ValueRef<'_>) -> anyhow::Result<Self> {
        match v {
            rusqlite::types::ValueRef::Integer(i) => Ok(i),
            other => anyhow::bail!(
                "the database holds a member key of type {:?} in an integer segment",
                other.data_type()
            ),
        }
    }

    fn show(&self) -> String {
        self.to_string()
    }
}

impl SortKey for String {
    const TYPICAL_LEN: usize = 64;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(b: &[u8]) -> io::Result<Self> {
        String::from_utf8(b.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn write_encoded(b: &[u8], w: &mut impl Write) -> io::Result<()> {
        w.write_all(&(b.len() as u32).to_le_bytes())?;
        w.write_all(b)
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&(self.len() as u32).to_le_bytes())?;
        w.write_all(self.as_bytes())
    }

    fn read_from(r: &mut impl Read) -> io::Result<Option<Self>> {
        let mut b = [0u8; 4];
        if !read_exact_or_end(r, &mut b)? {
            return Ok(None);
        }
        let mut bytes = vec![0u8; u32::from_le_bytes(b) as usize];
        r.read_exact(&mut bytes)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn from_sql(v: rusqlite::types::ValueRef<'_>) -> anyhow::Result<Self> {
        match v {
            rusqlite::types::ValueRef::Text(t) => Ok(std::str::from_utf8(t)?.to_string()),
            other => anyhow::bail!(
                "the database holds a member key of type {:?} in a text segment",
                other.data_type()
            ),
        }
    }

    fn show(&self) -> String {
        self.clone()
    }
}

/// A text key with its first eight bytes held inline (big-endian, zero
/// padded), so that most comparisons in the sort and the merge never follow
/// the pointer: same order as comparing the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextKey {
    prefix: u64,
    text: Box<str>,
}

impl TextKey {
    pub fn new(text: String) -> Self {
        let mut head = [0u8; 8];
        let n = text.len().min(8);
        head[..n].copy_from_slice(&text.as_bytes()[..n]);
        TextKey {
            prefix: u64::from_be_bytes(head),
            text: text.into_boxed_str(),
        }
    }
}

impl Ord for TextKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.text.as_bytes().cmp(other.text.as_bytes()))
    }
}

impl PartialOrd for TextKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl rusqlite::ToSql for TextKey {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Text(self.text.as_bytes()),
        ))
    }
}

impl SortKey for TextKey {
    const TYPICAL_LEN: usize = 64;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.text.as_bytes());
    }

    fn decode(b: &[u8]) -> io::Result<Self> {
        String::decode(b).map(TextKey::new)
    }

    fn write_encoded(b: &[u8], w: &mut impl Write) -> io::Result<()> {
        String::write_encoded(b, w)
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&(self.text.len() as u32).to_le_bytes())?;
        w.write_all(self.text.as_bytes())
    }

    fn read_from(r: &mut impl Read) -> io::Result<Option<Self>> {
        Ok(String::read_from(r)?.map(TextKey::new))
    }

    fn from_sql(v: rusqlite::types::ValueRef<'_>) -> anyhow::Result<Self> {
        String::from_sql(v).map(TextKey::new)
    }

    fn show(&self) -> String {
        self.text.to_string()
    }
}

/// Reads exactly `buf.len()` bytes; `false` if the stream ended before the
/// first byte, an error if it ended in the middle.
fn read_exact_or_end(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) if n == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One valid row: its key, partition index and line in the file.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<K> {
    pub key: K,
    pub line: u64,
    pub part: u32,
}

/// A row of a sort chunk; its key bytes live in the chunk's arena, so a
/// chunk of a million text keys is two allocations, not a million.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The key's first sixteen bytes, big-endian and zero padded: most
    /// comparisons end here without touching the arena (eight were not
    /// enough: addresses such as `user1234567@...` share their first eight
    /// bytes by the thousand).
    prefix: Prefix,
    off: u32,
    len: u32,
    part: u32,
    line: u64,
}

/// The first sixteen bytes of a key as two numbers that order like the
/// bytes (ties broken by [`cmp_after_prefix`]).
type Prefix = (u64, u64);

fn prefix_of(key: &[u8]) -> Prefix {
    let mut head = [0u8; 16];
    let n = key.len().min(16);
    head[..n].copy_from_slice(&key[..n]);
    let (a, b) = head.split_at(8);
    (
        u64::from_be_bytes(a.try_into().expect("8 bytes")),
        u64::from_be_bytes(b.try_into().expect("8 bytes")),
    )
}

/// Orders two keys whose prefixes ([`prefix_of`]) are equal. If either is
/// at most sixteen bytes long, it lies wholly in the prefix (zero padding
/// matching the other's bytes), so it is the start of the other: the
/// shorter comes first. Otherwise the first sixteen bytes are equal.
fn cmp_after_prefix(a: &[u8], b: &[u8]) -> Ordering {
    if a.len() <= 16 || b.len() <= 16 {
        a.len().cmp(&b.len())
    } else {
        a[16..].cmp(&b[16..])
    }
}

/// Rows waiting to be sorted: their slots and one arena of key bytes.
struct Chunk {
    slots: Vec<Slot>,
    arena: Vec<u8>,
}

impl Chunk {
    /// Reserved once and never grown (a doubling vector briefly holds both
    /// copies); pages of the reservation never written cost no memory.
    fn with_capacity(slots: usize, arena: usize) -> Self {
        Chunk {
            slots: Vec::with_capacity(slots),
            arena: Vec::with_capacity(arena),
        }
    }

    fn key(&self, s: &Slot) -> &[u8] {
        &self.arena[s.off as usize..(s.off + s.len) as usize]
    }

    fn sort(&mut self) {
        let arena = &self.arena;
        let key = |s: &Slot| &arena[s.off as usize..(s.off + s.len) as usize];
        self.slots.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| cmp_after_prefix(key(a), key(b)))
                .then(a.line.cmp(&b.line))
        });
    }

    /// Sorts the chunk, writes it as a run and empties it.
    fn spill(&mut self, temp_dir: &Path) -> io::Result<File> {
        self.sort();
        let mut w = RunWriter::new(temp_dir)?;
        for s in &self.slots {
            w.write(self.key(s), s.part, s.line)?;
        }
        self.slots.clear();
        self.arena.clear();
        w.finish()
    }
}

/// Collects valid rows into chunks of at most `budget` bytes, sorting and
/// spilling each full chunk to an anonymous temporary file. Keys arrive
/// as their sort bytes ([`SortKey::encode`]).
///
/// Two chunks of half the budget each: while a thread sorts and writes a
/// full one, the reader fills the other (reading, validating and sorting
/// cost about the same, and the machine has a second core).
pub struct Sorter<K> {
    chunk: Chunk,
    /// The other chunk, empty, when no spill is under way.
    spare: Option<Chunk>,
    /// The spill under way, giving back its run and its emptied chunk.
    spilling: Option<std::thread::JoinHandle<io::Result<(File, Chunk)>>>,
    /// Capacities of a chunk (to rebuild one lost with a failed spill).
    capacity: (usize, usize),
    runs: Vec<File>,
    /// Chunks spilled so far (runs may have been folded since).
    spills: usize,
    temp_dir: std::path::PathBuf,
    #[cfg(test)]
    scratch: Vec<u8>,
    _k: PhantomData<K>,
}

impl<K: SortKey> Sorter<K> {
    pub fn new(temp_dir: &Path, budget: usize) -> Self {
        let half = budget / 2;
        let per_entry = std::mem::size_of::<Slot>() + K::TYPICAL_LEN;
        let slots = (half / per_entry).max(1);
        let arena = half
            .saturating_sub(slots * std::mem::size_of::<Slot>())
            .max(K::TYPICAL_LEN);
        Sorter {
            chunk: Chunk::with_capacity(slots, arena),
            spare: Some(Chunk::with_capacity(slots, arena)),
            spilling: None,
            capacity: (slots, arena),
            runs: Vec::new(),
            spills: 0,
            temp_dir: temp_dir.to_path_buf(),
            #[cfg(test)]
            scratch: Vec::new(),
            _k: PhantomData,
        }
    }

    #[cfg(test)]
    pub fn push(&mut self, e: Entry<K>) -> io::Result<()> {
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        e.key.encode(&mut key);
        let done = self.push_encoded(&key, e.line, e.part);
        self.scratch = key;
        done
    }

    /// Adds a row whose key is given by its sort bytes.
    pub fn push_encoded(&mut self, key: &[u8], line: u64, part: u32) -> io::Result<()> {
        let arena = &self.chunk.arena;
        if !arena.is_empty() && arena.len() + key.len() > arena.capacity() {
            self.spill()?;
        }
        let off = self.chunk.arena.len() as u32;
        self.chunk.arena.extend_from_slice(key);
        self.chunk.slots.push(Slot {
            prefix: prefix_of(key),
            off,
            len: key.len() as u32,
            part,
            line,
        });
        if self.chunk.slots.len() == self.chunk.slots.capacity() {
            self.spill()?;
        }
        Ok(())
    }

    /// How many chunks were spilled so far.
    pub fn spills(&self) -> usize {
        self.spills
    }

    /// Waits for the spill under way, if any, and keeps its run.
    fn collect(&mut self) -> io::Result<()> {
        if let Some(h) = self.spilling.take() {
            let (run, chunk) = h
                .join()
                .map_err(|_| io::Error::other("the sorting thread stopped"))??;
            self.runs.push(run);
            self.spare = Some(chunk);
        }
        if self.runs.len() >= MAX_RUNS {
            // Too many open runs would exhaust file descriptors and split
            // the merge's buffers too thin: fold them into one.
            let mut merged = merge::<K>(std::mem::take(&mut self.runs), None)?;
            let mut w = RunWriter::new(&self.temp_dir)?;
            while let Some((key, part, line)) = merged.next_raw()? {
                w.write(key, part, line)?;
            }
            self.runs.push(w.finish()?);
        }
        Ok(())
    }

    /// Hands the full chunk to a thread that sorts and writes it, and goes
    /// on with the other one.
    fn spill(&mut self) -> io::Result<()> {
        self.collect()?;
        let (slots, arena) = self.capacity;
        let empty = self
            .spare
            .take()
            .unwrap_or_else(|| Chunk::with_capacity(slots, arena));
        let mut full = std::mem::replace(&mut self.chunk, empty);
        let dir = self.temp_dir.clone();
        self.spilling = Some(std::thread::spawn(move || {
            let run = full.spill(&dir)?;
            Ok((run, full))
        }));
        self.spills += 1;
        Ok(())
    }

    /// Merges every run and the chunk still in memory, in key order, line
    /// order within a key.
    pub fn finish(mut self) -> io::Result<Merged<K>> {
        self.collect()?;
        self.spare = None;
        self.chunk.sort();
        let Chunk { slots, arena } = std::mem::replace(&mut self.chunk, Chunk::with_capacity(0, 0));
        merge(
            std::mem::take(&mut self.runs),
            Some((slots.into_iter(), arena)),
        )
    }
}

impl<K> Drop for Sorter<K> {
    /// A load given up halfway (a refused file) still waits for its spill,
    /// so that no thread goes on writing after the load returned.
    fn drop(&mut self) {
        if let Some(h) = self.spilling.take() {
            let _ = h.join();
        }
    }
}

/// Runs merged at once; more are folded into one first.
const MAX_RUNS: usize = if cfg!(test) { 4 } else { 64 };

fn merge<K: SortKey>(
    runs: Vec<File>,
    memory: Option<(std::vec::IntoIter<Slot>, Vec<u8>)>,
) -> io::Result<Merged<K>> {
    let mut sources: Vec<Source> = runs
        .into_iter()
        .map(|f| Source::new(Feed::Run(BufReader::with_capacity(RUN_BUFFER, f))))
        .collect();
    if let Some((slots, arena)) = memory {
        sources.push(Source::new(Feed::Memory(slots, arena)));
    }
    let mut heap = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter_mut().enumerate() {
        if s.advance()? {
            heap.push(i);
        }
    }
    let mut m = Merged {
        sources,
        heap,
        stale: false,
        _k: PhantomData,
    };
    for i in (0..m.heap.len() / 2).rev() {
        m.sift_down(i);
    }
    Ok(m)
}

/// Writes an intermediate run: key length and bytes, partition, line.
/// Buffers by hand: rows are appended to one vector, fixed-size fields
/// inline, instead of four small copies through a `BufWriter` per row.
struct RunWriter {
    file: File,
    buf: Vec<u8>,
}

impl RunWriter {
    fn new(temp_dir: &Path) -> io::Result<Self> {
        Ok(RunWriter {
            file: tempfile::tempfile_in(temp_dir)?,
            buf: Vec::with_capacity(RUN_BUFFER),
        })
    }

    fn write(&mut self, key: &[u8], part: u32, line: u64) -> io::Result<()> {
        if self.buf.len() + key.len() + 16 > RUN_BUFFER && !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.buf
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(&part.to_le_bytes());
        self.buf.extend_from_slice(&line.to_le_bytes());
        Ok(())
    }

    fn finish(mut self) -> io::Result<File> {
        self.file.write_all(&self.buf)?;
        self.file.seek(SeekFrom::Start(0))?;
        Ok(self.file)
    }
}

enum Feed {
    Run(BufReader<File>),
    Memory(std::vec::IntoIter<Slot>, Vec<u8>),
}

/// One input of the merge with its current row, read into buffers that
/// are reused from row to row.
struct Source {
    feed: Feed,
    prefix: Prefix,
    key: Vec<u8>,
    part: u32,
    line: u64,
}

impl Source {
    fn new(feed: Feed) -> Self {
        Source {
            feed,
            prefix: (0, 0),
            key: Vec::with_capacity(64),
            part: 0,
            line: 0,
        }
    }

    /// Loads the next row; `false` at the end.
    fn advance(&mut self) -> io::Result<bool> {
        match &mut self.feed {
            Feed::Memory(slots, arena) => {
                let Some(s) = slots.next() else {
                    return Ok(false);
                };
                self.key.clear();
                self.key
                    .extend_from_slice(&arena[s.off as usize..(s.off + s.len) as usize]);
                self.prefix = s.prefix;
                self.part = s.part;
                self.line = s.line;
            }
            Feed::Run(r) => {
                // Most rows lie whole in the read buffer: take them from it.
                let buf = r.fill_buf()?;
                if buf.len() >= 4 {
                    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
                    if buf.len() >= len + 16 {
                        self.key.clear();
                        self.key.extend_from_slice(&buf[4..4 + len]);
                        let rest = &buf[4 + len..len + 16];
                        self.part = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
                        self.line = u64::from_le_bytes(rest[4..].try_into().expect("8 bytes"));
                        r.consume(len + 16);
                        self.prefix = prefix_of(&self.key);
                        return Ok(true);
                    }
                }
                let mut len = [0u8; 4];
                if !read_exact_or_end(r, &mut len)? {
                    return Ok(false);
                }
                self.key.resize(u32::from_le_bytes(len) as usize, 0);
                r.read_exact(&mut self.key)?;
                let mut rest = [0u8; 12];
                r.read_exact(&mut rest)?;
                self.prefix = prefix_of(&self.key);
                self.part = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
                self.line = u64::from_le_bytes(rest[4..].try_into().expect("8 bytes"));
            }
        }
        Ok(true)
    }

    fn before(&self, other: &Source) -> bool {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| cmp_after_prefix(&self.key, &other.key))
            .then(self.line.cmp(&other.line))
            == Ordering::Less
    }
}

/// The k-way merge of all runs: every entry once, by key then line.
pub struct Merged<K> {
    sources: Vec<Source>,
    /// Indices of the sources that have a row, as a min-heap on that row.
    heap: Vec<usize>,
    /// The top source's row was handed out and must be replaced first.
    stale: bool,
    _k: PhantomData<K>,
}

impl<K: SortKey> Merged<K> {
    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let mut least = i;
            for c in [2 * i + 1, 2 * i + 2] {
                if c < n && self.sources[self.heap[c]].before(&self.sources[self.heap[least]]) {
                    least = c;
                }
            }
            if least == i {
                return;
            }
            self.heap.swap(i, least);
            i = least;
        }
    }

    /// The next row as sort bytes, partition and line, borrowed until the
    /// next call.
    pub fn next_raw(&mut self) -> io::Result<Option<(&[u8], u32, u64)>> {
        if self.stale {
            self.stale = false;
            if self.sources[self.heap[0]].advance()? {
                self.sift_down(0);
            } else {
                self.heap.swap_remove(0);
                if !self.heap.is_empty() {
                    self.sift_down(0);
                }
            }
        }
        let Some(&top) = self.heap.first() else {
            return Ok(None);
        };
        self.stale = true;
        let s = &self.sources[top];
        Ok(Some((&s.key, s.part, s.line)))
    }

    #[cfg(test)]
    pub fn next_entry(&mut self) -> io::Result<Option<Entry<K>>> {
        Ok(match self.next_raw()? {
            Some((key, part, line)) => Some(Entry {
                key: K::decode(key)?,
                line,
                part,
            }),
            None => None,
        })
    }
}

/// What the merge decided about an entry.
#[cfg(test)]
pub enum Verdict<K> {
    /// First row of its key: kept.
    Keep(Entry<K>),
    /// The key again with the same partition: counted once, not rejected.
    Duplicate,
    /// The key again with another partition: the later row is rejected.
    Conflict { later: Entry<K>, first_line: u64 },
}

/// What the merge decided about a row; keys are sort bytes borrowed until
/// the next call.
pub enum RawVerdict<'a> {
    /// First row of its key: kept.
    Keep {
        key: &'a [u8],
        part: u32,
        /// The kept row's line (the load needs only the key and partition).
        #[cfg_attr(not(test), allow(dead_code))]
        line: u64,
    },
    /// The key again with the same partition: counted once, not rejected.
    Duplicate,
    /// The key again with another partition: the later row is rejected.
    Conflict {
        key: &'a [u8],
        later_line: u64,
        later_part: u32,
        first_line: u64,
        first_part: u32,
    },
}

/// Walks a merge and judges each entry against the first row of its key.
pub struct Dedupe<K> {
    merged: Merged<K>,
    /// The first row of the key being walked, handed out as `Keep` once
    /// the next key shows up.
    first: Option<(u32, u64)>,
    first_key: Vec<u8>,
    /// The key handed out last (buffers swap instead of allocating).
    kept_key: Vec<u8>,
}

impl<K: SortKey> Dedupe<K> {
    pub fn new(merged: Merged<K>) -> Self {
        Dedupe {
            merged,
            first: None,
            first_key: Vec::with_capacity(64),
            kept_key: Vec::with_capacity(64),
        }
    }

    /// The next verdict. Keys come out in order; the later rows of a key
    /// are judged before its kept first row is handed out.
    pub fn next_raw(&mut self) -> io::Result<Option<RawVerdict<'_>>> {
        loop {
            let Some((key, part, line)) = self.merged.next_raw()? else {
                return Ok(self.first.take().map(|(part, line)| RawVerdict::Keep {
                    key: &self.first_key,
                    part,
                    line,
                }));
            };
            match self.first {
                Some((first_part, first_line)) if key == self.first_key.as_slice() => {
                    return Ok(Some(if first_part == part {
                        RawVerdict::Duplicate
                    } else {
                        RawVerdict::Conflict {
                            key: &self.first_key,
                            later_line: line,
                            later_part: part,
                            first_line,
                            first_part,
                        }
                    }));
                }
                Some((kept_part, kept_line)) => {
                    std::mem::swap(&mut self.first_key, &mut self.kept_key);
                    self.first_key.clear();
                    self.first_key.extend_from_slice(key);
                    self.first = Some((part, line));
                    return Ok(Some(RawVerdict::Keep {
                        key: &self.kept_key,
                        part: kept_part,
                        line: kept_line,
                    }));
                }
                None => {
                    self.first_key.clear();
                    self.first_key.extend_from_slice(key);
                    self.first = Some((part, line));
                }
            }
        }
    }

    /// [`Self::next_raw`] with keys decoded.
    #[cfg(test)]
    pub fn next_verdict(&mut self) -> io::Result<Option<Verdict<K>>> {
        Ok(match self.next_raw()? {
            None => None,
            Some(RawVerdict::Duplicate) => Some(Verdict::Duplicate),
            Some(RawVerdict::Keep { key, part, line }) => Some(Verdict::Keep(Entry {
                key: K::decode(key)?,
                line,
                part,
            })),
            Some(RawVerdict::Conflict {
                key,
                later_line,
                later_part,
                first_line,
                ..
            }) => Some(Verdict::Conflict {
                later: Entry {
                    key: K::decode(key)?,
                    line: later_line,
                    part: later_part,
                },
                first_line,
            }),
        })
    }
}

/// Writes the final run: key and partition index, sorted, one per key.
pub struct FinalWriter<K> {
    w: BufWriter<File>,
    _k: std::marker::PhantomData<K>,
}

impl<K: SortKey> FinalWriter<K> {
    pub fn new(temp_dir: &Path) -> io::Result<Self> {
        Ok(FinalWriter {
            w: BufWriter::with_capacity(RUN_BUFFER, tempfile::tempfile_in(temp_dir)?),
            _k: std::marker::PhantomData,
        })
    }

    /// Writes the key whose sort bytes are `key`.
    pub fn write_encoded(&mut self, key: &[u8], part: u32) -> io::Result<()> {
        K::write_encoded(key, &mut self.w)?;
        self.w.write_all(&part.to_le_bytes())
    }

    /// The finished run, rewound for reading.
    pub fn finish(self) -> io::Result<File> {
        let mut f = self.w.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    }
}

/// Reads a final run written by [`FinalWriter`].
pub struct FinalReader<K> {
    r: BufReader<File>,
    _k: std::marker::PhantomData<K>,
}

impl<K: SortKey> FinalReader<K> {
    pub fn new(f: File) -> Self {
        FinalReader {
            r: BufReader::with_capacity(RUN_BUFFER, f),
            _k: std::marker::PhantomData,
        }
    }

    pub fn next_row(&mut self) -> io::Result<Option<(K, u32)>> {
        let Some(key) = K::read_from(&mut self.r)? else {
            return Ok(None);
        };
        let mut p = [0u8; 4];
        self.r.read_exact(&mut p)?;
        Ok(Some((key, u32::from_le_bytes(p))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<K>(key: K, line: u64, part: u32) -> Entry<K> {
        Entry { key, line, part }
    }

    #[test]
    fn merges_spilled_chunks_in_key_then_line_order() {
        let dir = tempfile::tempdir().unwrap();
        // A budget of a few entries forces several runs.
        let mut s = Sorter::<String>::new(dir.path(), 200);
        let keys = ["d", "b", "a", "c", "b", "é", "B", "a"];
        for (i, k) in keys.iter().enumerate() {
            s.push(entry(k.to_string(), i as u64 + 2, 0)).unwrap();
        }
        assert!(
            s.spills() >= MAX_RUNS,
            "expected spills, got {}",
            s.spills()
        );
        assert!(s.runs.len() < MAX_RUNS, "runs should have been folded");
        let mut m = s.finish().unwrap();
        let mut out = Vec::new();
        while let Some(e) = m.next_entry().unwrap() {
            out.push((e.key, e.line));
        }
        let want: Vec<(String, u64)> = [
            ("B", 8),
            ("a", 4),
            ("a", 9),
            ("b", 3),
            ("b", 6),
            ("c", 5),
            ("d", 2),
            ("é", 7),
        ]
        .iter()
        .map(|(k, l)| (k.to_string(), *l))
        .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn text_keys_order_by_bytes() {
        let words = [
            "",
            "a",
            "a\u{0}",
            "ab",
            "abcdefgh",
            "abcdefgh\u{0}",
            "abcdefgi",
            "B",
            "é",
        ];
        for a in words {
            for b in words {
                let (ka, kb) = (TextKey::new(a.into()), TextKey::new(b.into()));
                assert_eq!(
                    ka.cmp(&kb),
                    a.as_bytes().cmp(b.as_bytes()),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    /// Runs bigger than the read buffer, so that rows straddle its end,
    /// folded and merged: every row comes back once, in order.
    #[test]
    fn large_runs_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::<String>::new(dir.path(), 3000 * 96);
        let mut x = 12345u64;
        let mut want = Vec::new();
        for line in 0..40_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 59) as usize;
            let key = format!("{:0len$}", x >> 40, len = len);
            want.push((key.clone(), line));
            s.push(entry(key, line, (x % 3) as u32)).unwrap();
        }
        assert!(s.spills() > MAX_RUNS);
        want.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
        let mut m = s.finish().unwrap();
        let mut got = Vec::new();
        while let Some(e) = m.next_entry().unwrap() {
            got.push((e.key, e.line));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn sort_bytes_order_like_the_keys() {
        let words = [
            "",
            "a",
            "a\u{0}",
            "a\u{0}\u{0}",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefgh\u{0}",
            "abcdefghi",
            "abcdefgi",
            "abcdefgi\u{0}x",
            "B",
            "é",
            "éé",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnop\u{0}",
            "abcdefghijklmnopq",
            "abcdefghijklmnoq",
            "abcdefghijklmnoq\u{0}\u{0}z",
            "user1234567@example.com",
            "user1234567@example.co",
            "user1234568@example.com",
        ];
        let key = |w: &str| {
            let mut b = Vec::new();
            w.to_string().encode(&mut b);
            b
        };
        for a in words {
            for b in words {
                let (ka, kb) = (key(a), key(b));
                let got = prefix_of(&ka)
                    .cmp(&prefix_of(&kb))
                    .then_with(|| cmp_after_prefix(&ka, &kb));
                assert_eq!(got, a.as_bytes().cmp(b.as_bytes()), "{a:?} vs {b:?}");
            }
        }
        let ints = [i64::MIN, -10, -1, 0, 1, 9, 10, 255, 256, i64::MAX];
        for a in ints {
            for b in ints {
                let (mut ka, mut kb) = (Vec::new(), Vec::new());
                a.encode(&mut ka);
                b.encode(&mut kb);
                assert_eq!(ka.cmp(&kb), a.cmp(&b), "{a} vs {b}");
                assert_eq!(i64::decode(&ka).unwrap(), a);
            }
        }
    }

    #[test]
    fn dedupe_keeps_first_line_and_flags_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::<i64>::new(dir.path(), 1 << 20);
        s.push(entry(5, 4, 1)).unwrap();
        s.push(entry(5, 2, 0)).unwrap();
        s.push(entry(5, 3, 0)).unwrap();
        s.push(entry(-1, 5, 0)).unwrap();
        let mut d = Dedupe::new(s.finish().unwrap());
        let mut got = Vec::new();
        while let Some(v) = d.next_verdict().unwrap() {
            got.push(match v {
                Verdict::Keep(e) => format!("keep {} line {}", e.key, e.line),
                Verdict::Duplicate => "dup".to_string(),
                Verdict::Conflict {
                    later, first_line, ..
                } => format!("conflict line {} vs {}", later.line, first_line),
            });
        }
        assert_eq!(
            got,
            [
                "keep -1 line 5",
                "dup",
                "conflict line 4 vs 2",
                "keep 5 line 2"
            ]
        );
    }
}
