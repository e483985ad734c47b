//! External sort: bounded-memory chunks sorted and spilled to temporary
//! run files, then a k-way merge that removes duplicates and produces the
//! final sorted run that `apply` merges against the database.
//!
//! Runs are a compact binary format, not CSV: per entry the key (8 bytes
//! little-endian for integers; a 4-byte length and the bytes for text), the
//! partition index (4 bytes) and, in intermediate runs only, the line
//! number (8 bytes). Keys sort as SQLite sorts the `key` column (integers
//! numerically, text by bytes), which is what lets `apply` walk the file
//! and the `member` table side by side.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Buffer of each run reader and writer.
const RUN_BUFFER: usize = 64 * 1024;

/// A key type the sort can carry: `i64` for `user_id` and `mobile`,
/// `String` for `email` and `external_id`.
pub trait SortKey: Ord + Clone + rusqlite::ToSql + 'static {
    /// Whether the key holds nothing outside its struct.
    const FIXED: bool;
    /// Bytes this key holds outside its own struct, for the memory budget.
    fn heap_bytes(&self) -> usize;
    fn write_to(&self, w: &mut impl Write) -> io::Result<()>;
    /// Reads one key; `Ok(None)` at a clean end of the run.
    fn read_from(r: &mut impl Read) -> io::Result<Option<Self>>;
    /// The key as stored in the `member.key` column.
    fn from_sql(v: rusqlite::types::ValueRef<'_>) -> anyhow::Result<Self>;
    /// The key as a person reads it (rejection messages).
    fn show(&self) -> String;
}

impl SortKey for i64 {
    const FIXED: bool = true;

    fn heap_bytes(&self) -> usize {
        0
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
    const FIXED: bool = false;

    fn heap_bytes(&self) -> usize {
        self.capacity()
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
    const FIXED: bool = false;

    fn heap_bytes(&self) -> usize {
        self.text.len()
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<K> {
    pub key: K,
    pub line: u64,
    pub part: u32,
}

impl<K: Ord> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key).then(self.line.cmp(&other.line))
    }
}

impl<K: Ord> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Collects valid rows into chunks of at most `budget` bytes, sorting and
/// spilling each full chunk to an anonymous temporary file.
pub struct Sorter<K> {
    chunk: Vec<Entry<K>>,
    chunk_bytes: usize,
    budget: usize,
    runs: Vec<File>,
    /// Chunks spilled so far (runs may have been folded since).
    spills: usize,
    temp_dir: std::path::PathBuf,
}

impl<K: SortKey> Sorter<K> {
    pub fn new(temp_dir: &Path, budget: usize) -> Self {
        // Reserve the chunk once so that it never reallocates (a doubling
        // vector briefly holds both copies): text keys get room for as many
        // entries as short keys could fill.
        let per_entry = std::mem::size_of::<Entry<K>>() + if K::FIXED { 0 } else { 32 };
        Sorter {
            chunk: Vec::with_capacity((budget / per_entry).max(1)),
            chunk_bytes: 0,
            budget,
            runs: Vec::new(),
            spills: 0,
            temp_dir: temp_dir.to_path_buf(),
        }
    }

    pub fn push(&mut self, e: Entry<K>) -> io::Result<()> {
        // 16 bytes of allocator overhead per heap-held key.
        let heap = e.key.heap_bytes();
        self.chunk_bytes += if heap > 0 { heap + 16 } else { 0 };
        self.chunk.push(e);
        // The reserved vector counts in full: its pages fill as it grows.
        let reserved = self.chunk.capacity() * std::mem::size_of::<Entry<K>>();
        if self.chunk.len() == self.chunk.capacity()
            || (!K::FIXED && reserved + self.chunk_bytes >= self.budget)
        {
            self.spill()?;
        }
        Ok(())
    }

    /// How many chunks were spilled to disk so far.
    pub fn spills(&self) -> usize {
        self.spills
    }

    fn spill(&mut self) -> io::Result<()> {
        self.chunk.sort_unstable();
        let mut w = RunWriter::new(&self.temp_dir)?;
        for e in self.chunk.drain(..) {
            w.write(&e)?;
        }
        self.runs.push(w.finish()?);
        self.spills += 1;
        self.chunk_bytes = 0;
        if self.runs.len() >= MAX_RUNS {
            // Too many open runs would exhaust file descriptors and split
            // the merge's buffers too thin: fold them into one.
            let mut merged = merge::<K>(std::mem::take(&mut self.runs), Vec::new())?;
            let mut w = RunWriter::new(&self.temp_dir)?;
            while let Some(e) = merged.next_entry()? {
                w.write(&e)?;
            }
            self.runs.push(w.finish()?);
        }
        Ok(())
    }

    /// Merges every run and the chunk still in memory, in key order, line
    /// order within a key.
    pub fn finish(mut self) -> io::Result<Merged<K>> {
        self.chunk.sort_unstable();
        merge(self.runs, std::mem::take(&mut self.chunk))
    }
}

/// Runs merged at once; more are folded into one first.
const MAX_RUNS: usize = if cfg!(test) { 4 } else { 64 };

fn merge<K: SortKey>(runs: Vec<File>, memory: Vec<Entry<K>>) -> io::Result<Merged<K>> {
    let mut sources: Vec<Source<K>> = runs
        .into_iter()
        .map(|f| Source::Run(BufReader::with_capacity(RUN_BUFFER, f)))
        .collect();
    sources.push(Source::Memory(memory.into_iter()));
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(e) = s.next_entry()? {
            heap.push(Reverse((e, i)));
        }
    }
    Ok(Merged { sources, heap })
}

/// Writes an intermediate run: key, partition index, line.
struct RunWriter {
    w: BufWriter<File>,
}

impl RunWriter {
    fn new(temp_dir: &Path) -> io::Result<Self> {
        Ok(RunWriter {
            w: BufWriter::with_capacity(RUN_BUFFER, tempfile::tempfile_in(temp_dir)?),
        })
    }

    fn write<K: SortKey>(&mut self, e: &Entry<K>) -> io::Result<()> {
        e.key.write_to(&mut self.w)?;
        self.w.write_all(&e.part.to_le_bytes())?;
        self.w.write_all(&e.line.to_le_bytes())
    }

    fn finish(self) -> io::Result<File> {
        let mut file = self.w.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }
}

enum Source<K> {
    Run(BufReader<File>),
    Memory(std::vec::IntoIter<Entry<K>>),
}

impl<K: SortKey> Source<K> {
    fn next_entry(&mut self) -> io::Result<Option<Entry<K>>> {
        match self {
            Source::Memory(it) => Ok(it.next()),
            Source::Run(r) => {
                let Some(key) = K::read_from(r)? else {
                    return Ok(None);
                };
                let mut p = [0u8; 4];
                r.read_exact(&mut p)?;
                let mut l = [0u8; 8];
                r.read_exact(&mut l)?;
                Ok(Some(Entry {
                    key,
                    part: u32::from_le_bytes(p),
                    line: u64::from_le_bytes(l),
                }))
            }
        }
    }
}

/// The k-way merge of all runs: every entry once, by key then line.
pub struct Merged<K> {
    sources: Vec<Source<K>>,
    heap: BinaryHeap<Reverse<(Entry<K>, usize)>>,
}

impl<K: SortKey> Merged<K> {
    pub fn next_entry(&mut self) -> io::Result<Option<Entry<K>>> {
        let Some(Reverse((e, i))) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.sources[i].next_entry()? {
            self.heap.push(Reverse((next, i)));
        }
        Ok(Some(e))
    }
}

/// What the merge decided about an entry.
pub enum Verdict<K> {
    /// First row of its key: kept.
    Keep(Entry<K>),
    /// The key again with the same partition: counted once, not rejected.
    Duplicate,
    /// The key again with another partition: the later row is rejected.
    Conflict {
        later: Entry<K>,
        first_line: u64,
        first_part: u32,
    },
}

/// Walks a merge and judges each entry against the first row of its key.
pub struct Dedupe<K> {
    merged: Merged<K>,
    /// The first row of the key being walked, handed out as `Keep` once
    /// the next key shows up (holding it saves cloning every key).
    first: Option<Entry<K>>,
}

impl<K: SortKey> Dedupe<K> {
    pub fn new(merged: Merged<K>) -> Self {
        Dedupe {
            merged,
            first: None,
        }
    }

    /// The next verdict. Keys come out in order; the later rows of a key
    /// are judged before its kept first row is handed out.
    pub fn next_verdict(&mut self) -> io::Result<Option<Verdict<K>>> {
        loop {
            let Some(e) = self.merged.next_entry()? else {
                return Ok(self.first.take().map(Verdict::Keep));
            };
            match &self.first {
                Some(first) if first.key == e.key => {
                    return Ok(Some(if first.part == e.part {
                        Verdict::Duplicate
                    } else {
                        Verdict::Conflict {
                            first_line: first.line,
                            first_part: first.part,
                            later: e,
                        }
                    }));
                }
                Some(_) => return Ok(self.first.replace(e).map(Verdict::Keep)),
                None => self.first = Some(e),
            }
        }
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

    pub fn write(&mut self, key: &K, part: u32) -> io::Result<()> {
        key.write_to(&mut self.w)?;
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
