//! Streaming corpus readers and atomic writers: JSONL, JSONL.gz, JSONL.zst and Parquet.
//!
//! Readers yield one [`Document`] per record with its [`Position`] (file and 1-based line, or
//! 0-based Parquet row) so every later error can point at the exact input. A bad record comes
//! back as [`DataError::BadRecord`] and reading continues; a damaged file (truncated gzip or
//! zstd stream, unreadable Parquet footer, I/O error) comes back as [`DataError::Corrupt`] or
//! [`DataError::Io`] and ends that file's stream.
//!
//! Writers write to `NAME.partial` and rename on [`JsonlWriter::finish`], so a killed process
//! never leaves a file that looks complete.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::Field;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::error::{BadRecordKind, DataError, Result};

pub use crate::error::Position;

/// One input document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The record's text.
    pub text: String,
    /// The record's id field, when the source has one.
    pub id: Option<String>,
    /// The record's topic label, when a topic field is configured and present.
    pub topic: Option<String>,
    /// The record's perplexity score, when a perplexity field is configured and present.
    pub perplexity: Option<f64>,
    /// Where the record is (file and line or row).
    pub pos: Position,
}

/// Corpus file formats, recognised by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines.
    Jsonl,
    /// Gzip-compressed JSON lines.
    JsonlGz,
    /// Zstandard-compressed JSON lines.
    JsonlZst,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format a file name implies (`.jsonl`/`.json`/`.ndjson`, `+.gz`, `+.zst`, `.parquet`).
    pub fn from_path(path: &Path) -> Result<Format> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
        let plain = |stem: &str| stem.ends_with(".jsonl") || stem.ends_with(".json") || stem.ends_with(".ndjson");
        if let Some(stem) = name.strip_suffix(".gz") {
            if plain(stem) {
                return Ok(Format::JsonlGz);
            }
        } else if let Some(stem) = name.strip_suffix(".zst") {
            if plain(stem) {
                return Ok(Format::JsonlZst);
            }
        } else if name.ends_with(".parquet") {
            return Ok(Format::Parquet);
        } else if plain(&name) {
            return Ok(Format::Jsonl);
        }
        Err(DataError::UnknownFormat { path: path.to_path_buf() })
    }
}

/// Which fields of a record to read.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// The text field.
    pub text: String,
    /// The id field (none: documents are known by their position).
    pub id: Option<String>,
    /// Optional topic-label field (a string).
    pub topic: Option<String>,
    /// Optional perplexity field (a number).
    pub perplexity: Option<String>,
}

impl Default for FieldSpec {
    fn default() -> Self {
        FieldSpec { text: "text".into(), id: Some("id".into()), topic: None, perplexity: None }
    }
}

/// A reader that hashes (sha256) and counts every byte that passes through it, so the manifest
/// can record exactly what was consumed without reading the file twice.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Streaming reader over one corpus file.
pub struct CorpusReader {
    path: Arc<PathBuf>,
    inner: Inner,
    done: bool,
    raw_bytes: Arc<std::sync::atomic::AtomicU64>,
}

enum Inner {
    Lines { reader: Box<dyn BufRead + Send>, fields: FieldSpec, line: u64, buf: Vec<u8>, hash: HashSlot },
    Parquet { rows: RowIter<'static>, fields: FieldSpec, row: u64 },
}

/// Where the sha256 of a line-oriented file ends up once it is read to the end.
type HashSlot = Arc<std::sync::Mutex<Option<Sha256>>>;

impl CorpusReader {
    /// Open `path`; the format follows from the file name.
    pub fn open(path: &Path, fields: &FieldSpec) -> Result<CorpusReader> {
        let format = Format::from_path(path)?;
        let file = File::open(path).map_err(|e| DataError::io(path, "cannot open corpus file", e))?;
        let shared = Arc::new(path.to_path_buf());
        let raw_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let inner = match format {
            Format::Parquet => {
                let reader = SerializedFileReader::new(file).map_err(|e| DataError::Corrupt {
                    pos: Position { file: shared.clone(), index: 0, is_row: true },
                    detail: format!("cannot read Parquet metadata: {e}"),
                })?;
                let schema = reader.metadata().file_metadata().schema_descr().root_schema_ptr();
                let mut wanted = Vec::new();
                for name in std::iter::once(&fields.text).chain(fields.id.iter()).chain(fields.topic.iter()).chain(fields.perplexity.iter()) {
                    if let Some(f) = schema.get_fields().iter().find(|f| f.name() == name) {
                        wanted.push(f.clone());
                    } else if name == &fields.text {
                        return Err(DataError::Corrupt {
                            pos: Position { file: shared.clone(), index: 0, is_row: true },
                            detail: format!(
                                "Parquet schema has no column `{name}` (columns: {})",
                                schema.get_fields().iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
                            ),
                        });
                    }
                }
                let projection = parquet::schema::types::Type::group_type_builder("schema").with_fields(wanted).build().map_err(|e| DataError::Corrupt {
                    pos: Position { file: shared.clone(), index: 0, is_row: true },
                    detail: format!("cannot project Parquet schema: {e}"),
                })?;
                let rows = RowIter::from_file_into(Box::new(reader) as Box<dyn FileReader>).project(Some(projection)).map_err(|e| DataError::Corrupt {
                    pos: Position { file: shared.clone(), index: 0, is_row: true },
                    detail: format!("cannot project Parquet schema: {e}"),
                })?;
                raw_bytes.store(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
                Inner::Parquet { rows, fields: fields.clone(), row: 0 }
            }
            _ => {
                let hashing = HashingReader { inner: file, hasher: Sha256::new(), bytes: raw_bytes.clone() };
                let slot: HashSlot = Arc::new(std::sync::Mutex::new(None));
                let decoded: Box<dyn Read + Send> = match format {
                    Format::Jsonl => Box::new(HashDone { inner: Some(hashing), slot: slot.clone() }),
                    Format::JsonlGz => Box::new(flate2::read::MultiGzDecoder::new(HashDone { inner: Some(hashing), slot: slot.clone() })),
                    Format::JsonlZst => Box::new(
                        zstd::stream::read::Decoder::new(HashDone { inner: Some(hashing), slot: slot.clone() })
                            .map_err(|e| DataError::io(path, "cannot start zstd decoder", e))?,
                    ),
                    Format::Parquet => unreachable!(),
                };
                Inner::Lines { reader: Box::new(BufReader::with_capacity(1 << 20, decoded)), fields: fields.clone(), line: 0, buf: Vec::new(), hash: slot }
            }
        };
        Ok(CorpusReader { path: shared, inner, done: false, raw_bytes })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw (compressed, on-disk) bytes consumed so far; for Parquet, the file size.
    pub fn raw_bytes_read(&self) -> u64 {
        self.raw_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A counter shared with the reader, for progress bars on another thread.
    pub fn raw_bytes_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.raw_bytes.clone()
    }

    /// The sha256 of the file's bytes, available once a line-oriented file was read to its end.
    /// Parquet files (read by random access) are hashed separately with [`sha256_file`].
    pub fn content_sha256(&self) -> Option<String> {
        match &self.inner {
            Inner::Lines { hash, .. } => hash.lock().ok()?.as_ref().map(|h| hex::encode(h.clone().finalize())),
            Inner::Parquet { .. } => None,
        }
    }

    fn next_line_record(&mut self) -> Option<Result<Document>> {
        let Inner::Lines { reader, fields, line, buf, .. } = &mut self.inner else { unreachable!() };
        loop {
            buf.clear();
            *line += 1;
            let pos = Position { file: self.path.clone(), index: *line, is_row: false };
            match reader.read_until(b'\n', buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(DataError::Corrupt { pos, detail: e.to_string() }));
                }
            }
            // A blank line (e.g. a trailing newline) is not a record.
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Some(parse_json_record(buf, fields, pos));
        }
    }

    fn next_parquet_record(&mut self) -> Option<Result<Document>> {
        let Inner::Parquet { rows, fields, row } = &mut self.inner else { unreachable!() };
        let pos = Position { file: self.path.clone(), index: *row, is_row: true };
        let item = rows.next()?;
        *row += 1;
        let r = match item {
            Ok(r) => r,
            Err(e) => {
                self.done = true;
                return Some(Err(DataError::Corrupt { pos, detail: e.to_string() }));
            }
        };
        let mut text = None;
        let mut extracted = Extracted::default();
        for (name, value) in r.get_column_iter() {
            if *name == fields.text {
                text = Some(value.clone());
            } else if Some(name) == fields.id.as_ref() {
                extracted.id = match value {
                    Field::Str(s) => Some(s.clone()),
                    Field::Null => None,
                    other => Some(other.to_string()),
                };
            } else if Some(name) == fields.topic.as_ref() {
                extracted.topic = match value {
                    Field::Str(s) => Some(s.clone()),
                    _ => None,
                };
            } else if Some(name) == fields.perplexity.as_ref() {
                extracted.perplexity = match *value {
                    Field::Double(v) => Some(v),
                    Field::Float(v) => Some(v.into()),
                    _ => None,
                };
            }
        }
        Some(match text {
            Some(Field::Str(s)) => finish_record(s, extracted, pos),
            None | Some(Field::Null) => Err(bad(pos, BadRecordKind::MissingText, format!("field `{}` is null", fields.text))),
            Some(other) => Err(bad(pos, BadRecordKind::NonStringText, format!("field `{}` is {other}, not a string", fields.text))),
        })
    }
}

/// Passes reads through and, at end of stream, stores the final hasher in `slot`.
struct HashDone<R: Read> {
    inner: Option<HashingReader<R>>,
    slot: HashSlot,
}

impl<R: Read> Read for HashDone<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else { return Ok(0) };
        let n = inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let done = self.inner.take().expect("checked above");
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Some(done.hasher);
            }
        }
        Ok(n)
    }
}

impl Iterator for CorpusReader {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.inner {
            Inner::Lines { .. } => self.next_line_record(),
            Inner::Parquet { .. } => self.next_parquet_record(),
        };
        if item.is_none() {
            self.done = true;
        }
        item
    }
}

fn bad(pos: Position, kind: BadRecordKind, detail: String) -> DataError {
    DataError::BadRecord { pos, kind, detail }
}

fn finish_record(text: String, x: Extracted, pos: Position) -> Result<Document> {
    if text.trim().is_empty() {
        return Err(bad(pos, BadRecordKind::EmptyText, "text is empty".into()));
    }
    Ok(Document { text, id: x.id, topic: x.topic, perplexity: x.perplexity, pos })
}

/// What the configured fields of one record held.
#[derive(Default)]
struct Extracted {
    text: Option<std::result::Result<String, String>>,
    id: Option<String>,
    topic: Option<String>,
    perplexity: Option<f64>,
}

/// Deserialises a JSON object keeping only the two wanted fields; everything else is skipped
/// without being materialised (much faster than building a `serde_json::Value`).
struct ExtractSeed<'f>(&'f FieldSpec);

impl<'de> DeserializeSeed<'de> for ExtractSeed<'_> {
    type Value = Extracted;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Extracted, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ExtractSeed<'_> {
    type Value = Extracted;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Extracted, A::Error> {
        let mut out = Extracted::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0.text.as_str() {
                let v: serde_json::Value = map.next_value()?;
                out.text = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(Ok(s)),
                    other => Some(Err(json_kind(&other).to_string())),
                };
            } else if self.0.id.as_deref() == Some(key.as_ref()) {
                let v: serde_json::Value = map.next_value()?;
                out.id = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                };
            } else if self.0.topic.as_deref() == Some(key.as_ref()) {
                out.topic = map.next_value::<serde_json::Value>()?.as_str().map(str::to_owned);
            } else if self.0.perplexity.as_deref() == Some(key.as_ref()) {
                out.perplexity = map.next_value::<serde_json::Value>()?.as_f64();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn parse_json_record(line: &[u8], fields: &FieldSpec, pos: Position) -> Result<Document> {
    let line = match std::str::from_utf8(line) {
        Ok(s) => s,
        Err(e) => return Err(bad(pos, BadRecordKind::InvalidUtf8, format!("invalid UTF-8 at byte {}", e.valid_up_to()))),
    };
    let mut de = serde_json::Deserializer::from_str(line);
    let mut extracted = ExtractSeed(fields)
        .deserialize(&mut de)
        .and_then(|x| de.end().map(|_| x))
        .map_err(|e| bad(pos.clone(), BadRecordKind::MalformedJson, e.to_string()))?;
    match extracted.text.take() {
        None => Err(bad(pos, BadRecordKind::MissingText, format!("no string field `{}`", fields.text))),
        Some(Err(kind)) => Err(bad(pos, BadRecordKind::NonStringText, format!("field `{}` is {kind}, not a string", fields.text))),
        Some(Ok(text)) => finish_record(text, extracted, pos),
    }
}

/// sha256 of a whole file, hex-encoded.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| DataError::io(path, "cannot open for hashing", e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| DataError::io(path, "cannot read for hashing", e))?;
    Ok(hex::encode(h.finalize()))
}

/// The temporary name a file is written under before it is renamed into place.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Write `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = partial_path(path);
    let mut f = File::create(&tmp).map_err(|e| DataError::io(&tmp, "cannot create", e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| DataError::io(&tmp, "cannot write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, "cannot rename into place", e))
}

enum Sink {
    Plain(BufWriter<File>),
    Gz(flate2::write::GzEncoder<BufWriter<File>>),
    Zst(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

/// Atomic JSONL writer (plain, `.gz` or `.zst` by file name). Nothing appears under the final
/// name until [`JsonlWriter::finish`]; dropping an unfinished writer removes the temporary file.
pub struct JsonlWriter {
    path: PathBuf,
    tmp: PathBuf,
    sink: Option<Sink>,
    records: u64,
}

impl JsonlWriter {
    /// Create a writer for `path` (compression chosen by its extension).
    pub fn create(path: &Path) -> Result<JsonlWriter> {
        Self::create_with_level(path, 3)
    }

    /// Like [`JsonlWriter::create`] with an explicit compression level (gzip 0-9, zstd 1-22).
    pub fn create_with_level(path: &Path, level: i32) -> Result<JsonlWriter> {
        let format = Format::from_path(path)?;
        let tmp = partial_path(path);
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, "cannot create", e))?;
        let buf = BufWriter::with_capacity(1 << 20, file);
        let sink = match format {
            Format::Jsonl => Sink::Plain(buf),
            Format::JsonlGz => Sink::Gz(flate2::write::GzEncoder::new(buf, flate2::Compression::new(level.clamp(0, 9) as u32))),
            Format::JsonlZst => Sink::Zst(zstd::stream::write::Encoder::new(buf, level).map_err(|e| DataError::io(&tmp, "cannot start zstd", e))?),
            Format::Parquet => {
                return Err(DataError::UnknownFormat { path: path.to_path_buf() });
            }
        };
        Ok(JsonlWriter { path: path.to_path_buf(), tmp, sink: Some(sink), records: 0 })
    }

    fn out(&mut self) -> &mut dyn Write {
        match self.sink.as_mut().expect("writer used after finish") {
            Sink::Plain(w) => w,
            Sink::Gz(w) => w,
            Sink::Zst(w) => w,
        }
    }

    /// Append one record (serialised as a single JSON line).
    pub fn write<T: serde::Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| DataError::Aborted(format!("cannot serialise record: {e}")))?;
        line.push(b'\n');
        let tmp = self.tmp.clone();
        self.out().write_all(&line).map_err(|e| DataError::io(tmp, "cannot write", e))?;
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flush, sync and rename into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        let sink = self.sink.take().expect("finish called once");
        let tmp = self.tmp.clone();
        let err = |e| DataError::io(tmp.clone(), "cannot finish", e);
        let buf = match sink {
            Sink::Plain(w) => w,
            Sink::Gz(w) => w.finish().map_err(err)?,
            Sink::Zst(w) => w.finish().map_err(err)?,
        };
        let file = buf.into_inner().map_err(|e| DataError::io(tmp.clone(), "cannot flush", e.into_error()))?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| DataError::io(&self.path, "cannot rename into place", e))?;
        Ok(self.path.clone())
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        if self.sink.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write documents to a Parquet file with a required UTF-8 `text` column and an optional `id`
/// column (the layout of the released Llama-3-SynE data set), atomically.
pub fn write_parquet(path: &Path, docs: &[(Option<String>, String)], row_group_size: usize) -> Result<()> {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;

    let schema = Arc::new(
        parquet::schema::parser::parse_message_type("message schema { OPTIONAL BYTE_ARRAY id (UTF8); REQUIRED BYTE_ARRAY text (UTF8); }")
            .expect("static schema parses"),
    );
    let tmp = partial_path(path);
    let perr = |e: parquet::errors::ParquetError| DataError::Shard { path: tmp.clone(), detail: format!("Parquet write: {e}") };
    let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, "cannot create", e))?;
    let props = Arc::new(WriterProperties::builder().set_compression(parquet::basic::Compression::ZSTD(Default::default())).build());
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(perr)?;
    for chunk in docs.chunks(row_group_size.max(1)) {
        let mut rg = writer.next_row_group().map_err(perr)?;
        // Column 1: id (optional).
        let mut col = rg.next_column().map_err(perr)?.expect("id column");
        let ids: Vec<ByteArray> = chunk.iter().filter_map(|(id, _)| id.as_deref().map(ByteArray::from)).collect();
        let defs: Vec<i16> = chunk.iter().map(|(id, _)| i16::from(id.is_some())).collect();
        col.typed::<ByteArrayType>().write_batch(&ids, Some(&defs), None).map_err(perr)?;
        col.close().map_err(perr)?;
        // Column 2: text (required).
        let mut col = rg.next_column().map_err(perr)?.expect("text column");
        let texts: Vec<ByteArray> = chunk.iter().map(|(_, t)| ByteArray::from(t.as_str())).collect();
        col.typed::<ByteArrayType>().write_batch(&texts, None, None).map_err(perr)?;
        col.close().map_err(perr)?;
        rg.close().map_err(perr)?;
    }
    writer.close().map_err(perr)?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, "cannot rename into place", e))
}

/// Expand a list of files and directories into the sorted list of corpus files they hold
/// (directories are walked recursively; files of unknown format inside them are ignored, but a
/// file named explicitly must have a known format).
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| DataError::io(p, "cannot access input", e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            Format::from_path(p)?;
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "cannot list directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "cannot list directory", e))?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if Format::from_path(&path).is_ok() {
            out.push(path);
        }
    }
    Ok(())
}

/// A JSON-lines output built up resumably: records are appended to `PATH.partial` as they are
/// made (flushed per call), a restarted run keeps the complete records of the earlier partial
/// file (a torn last line, from a kill mid-write, is cut off) and continues after them, and
/// [`ResumableJsonl::finish`] syncs and renames the file into place. The one implementation of
/// this pattern in syne (annotation notes, LLM labels, ...).
pub struct ResumableJsonl {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
}

impl ResumableJsonl {
    /// Open the partial output of `path`, keeping the complete lines that parse as `T`; returns
    /// the writer and those records (what an earlier run already made).
    pub fn open<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(ResumableJsonl, Vec<T>)> {
        let tmp = partial_path(path);
        let mut kept = Vec::new();
        let mut keep_bytes = 0u64;
        if let Ok(f) = File::open(&tmp) {
            for line in BufReader::new(f).split(b'\n') {
                let line = line.map_err(|e| DataError::io(&tmp, "cannot read", e))?;
                match serde_json::from_slice::<T>(&line) {
                    Ok(r) => kept.push(r),
                    Err(_) => break,
                }
                keep_bytes += line.len() as u64 + 1;
            }
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&tmp).map_err(|e| DataError::io(&tmp, "cannot open", e))?;
        // Cut what follows the last complete record (a torn line, or a line of another kind).
        file.set_len(keep_bytes).map_err(|e| DataError::io(&tmp, "cannot truncate", e))?;
        Ok((ResumableJsonl { path: path.to_path_buf(), tmp, file }, kept))
    }

    /// Append `records`, one line each, and flush.
    pub fn append<T: serde::Serialize>(&mut self, records: &[T]) -> Result<()> {
        let mut bytes = Vec::new();
        for r in records {
            serde_json::to_writer(&mut bytes, r).map_err(|e| DataError::io(&self.tmp, "cannot serialise a record", std::io::Error::other(e)))?;
            bytes.push(b'\n');
        }
        self.file.write_all(&bytes).and_then(|_| self.file.flush()).map_err(|e| DataError::io(&self.tmp, "cannot write", e))
    }

    /// Sync the file and rename it to its final name.
    pub fn finish(self) -> Result<PathBuf> {
        self.file.sync_all().map_err(|e| DataError::io(&self.tmp, "cannot sync", e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| DataError::io(&self.path, "cannot rename", e))?;
        Ok(self.path)
    }
}
