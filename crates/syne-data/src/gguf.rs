//! GGUF (v2/v3) container reader: metadata key/values and tensor descriptors, memory-mapped.
//!
//! The tokenizer builder reads `tokenizer.ggml.*` keys from it; the model loader reads tensor
//! descriptors and the mapped data. Every length read from the file is checked against the file
//! size before use, so a truncated or hostile file gives an error naming the key or offset
//! instead of a huge allocation or a panic.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{DataError, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// uint8.
    U8(u8),
    /// int8.
    I8(i8),
    /// uint16.
    U16(u16),
    /// int16.
    I16(i16),
    /// uint32.
    U32(u32),
    /// int32.
    I32(i32),
    /// float32.
    F32(f32),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Array of values (nested arrays allowed up to `MAX_ARRAY_DEPTH`).
    Array(Vec<GgufValue>),
    /// uint64.
    U64(u64),
    /// int64.
    I64(i64),
    /// float64.
    F64(f64),
}

impl GgufValue {
    /// The value as an unsigned integer, when it is any non-negative integer type.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, when it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`, ...).
    pub name: String,
    /// Dimensions as GGUF stores them (innermost first, i.e. reversed from PyTorch order).
    pub dims: Vec<u64>,
    /// ggml type id (0 = F32, 1 = F16, 2 = Q4_0, 3 = Q4_1, 8 = Q8_0, ...).
    pub ggml_type: u32,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

/// An opened GGUF file.
pub struct GgufFile {
    path: PathBuf,
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// Key/value metadata (`general.architecture`, `llama.block_count`, the tokenizer, ...).
    pub metadata: BTreeMap<String, GgufValue>,
    /// The tensors' descriptors, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
    mmap: Mmap,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, at: &str, detail: impl Into<String>) -> DataError {
        DataError::Gguf { path: self.path.to_path_buf(), at: at.to_string(), detail: detail.into() }
    }

    fn take(&mut self, n: usize, at: &str) -> Result<&'a [u8]> {
        if self.buf.len().saturating_sub(self.pos) < n {
            return Err(self.err(at, format!("file ends at byte {} but {n} more bytes are needed at {}", self.buf.len(), self.pos)));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, at: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, at)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, at: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, at)?.try_into().expect("8 bytes")))
    }

    fn string(&mut self, at: &str) -> Result<String> {
        let len = self.u64(at)?;
        let len = usize::try_from(len).map_err(|_| self.err(at, "string length overflows"))?;
        let bytes = self.take(len, at)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| self.err(at, format!("string is not UTF-8: {e}")))
    }

    fn value(&mut self, ty: u32, at: &str, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U8(self.take(1, at)?[0]),
            1 => GgufValue::I8(self.take(1, at)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.take(2, at)?.try_into().expect("2"))),
            3 => GgufValue::I16(i16::from_le_bytes(self.take(2, at)?.try_into().expect("2"))),
            4 => GgufValue::U32(self.u32(at)?),
            5 => GgufValue::I32(self.u32(at)? as i32),
            6 => GgufValue::F32(f32::from_bits(self.u32(at)?)),
            7 => GgufValue::Bool(self.take(1, at)?[0] != 0),
            8 => GgufValue::String(self.string(at)?),
            9 => {
                // Real files nest arrays one level deep; a bound keeps hostile nesting from
                // exhausting the stack.
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.err(at, format!("arrays nested more than {MAX_ARRAY_DEPTH} deep")));
                }
                let elem = self.u32(at)?;
                let n = self.u64(at)?;
                // Every element takes at least one byte: reject counts the file cannot hold.
                if n > (self.buf.len() - self.pos) as u64 {
                    return Err(self.err(at, format!("array of {n} elements does not fit in the file")));
                }
                // Reserve for what the bytes can hold at the element's minimum size, not for the
                // claimed count: a 32-byte value per claimed byte would be a huge allocation.
                let min_size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    _ => 8,
                };
                let mut items = Vec::with_capacity((n as usize).min((self.buf.len() - self.pos) / min_size));
                for _ in 0..n {
                    items.push(self.value(elem, at, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(at)?),
            11 => GgufValue::I64(self.u64(at)? as i64),
            12 => GgufValue::F64(f64::from_bits(self.u64(at)?)),
            other => return Err(self.err(at, format!("unknown value type {other}"))),
        })
    }
}

/// Deepest nesting of arrays accepted in metadata.
pub const MAX_ARRAY_DEPTH: usize = 4;

/// The parsed header of a GGUF file: everything but the tensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// Key/value metadata.
    pub metadata: BTreeMap<String, GgufValue>,
    /// The tensors' descriptors, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
}

/// Parse the header, metadata and tensor descriptors at the start of `buf` (the bytes of a GGUF
/// file; `path` only names it in errors). Never panics and never allocates more than the bytes
/// can describe, whatever the input (the `gguf_header` fuzz target's contract). Tensor extents
/// are checked against the file when a tensor is read.
pub fn parse_header(buf: &[u8], path: &Path) -> Result<GgufHeader> {
    let mut c = Cursor { buf, pos: 0, path };
    let magic = c.take(4, "header")?;
    if magic != b"GGUF" {
        return Err(c.err("header", format!("bad magic {magic:?}, expected \"GGUF\"")));
    }
    let version = c.u32("header")?;
    if !(2..=3).contains(&version) {
        return Err(c.err("header", format!("unsupported version {version} (2 and 3 are supported)")));
    }
    let n_tensors = c.u64("header")?;
    let n_kv = c.u64("header")?;
    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}"))?;
        let ty = c.u32(&format!("metadata `{key}`"))?;
        let value = c.value(ty, &format!("metadata `{key}`"), 0)?;
        metadata.insert(key, value);
    }
    let mut tensors = Vec::new();
    for i in 0..n_tensors {
        let name = c.string(&format!("tensor #{i}"))?;
        let at = format!("tensor `{name}`");
        let n_dims = c.u32(&at)?;
        if n_dims > 8 {
            return Err(c.err(&at, format!("{n_dims} dimensions")));
        }
        let dims = (0..n_dims).map(|_| c.u64(&at)).collect::<Result<Vec<_>>>()?;
        let ggml_type = c.u32(&at)?;
        let offset = c.u64(&at)?;
        tensors.push(TensorInfo { name, dims, ggml_type, offset });
    }
    let alignment = metadata.get("general.alignment").and_then(GgufValue::as_u64).unwrap_or(32).max(1);
    let data_offset = (c.pos as u64).div_ceil(alignment).saturating_mul(alignment);
    Ok(GgufHeader { version, metadata, tensors, data_offset })
}

impl GgufFile {
    /// Open and parse the header, metadata and tensor descriptors of `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = File::open(path).map_err(|e| DataError::io(path, "cannot open GGUF file", e))?;
        // SAFETY: the file is opened read-only and we never hand out references that outlive
        // `GgufFile`; concurrent truncation by another process is the usual mmap caveat.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, "cannot map GGUF file", e))?;
        let h = parse_header(&mmap, path)?;
        Ok(GgufFile { path: path.to_path_buf(), version: h.version, metadata: h.metadata, tensors: h.tensors, data_offset: h.data_offset, mmap })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value, or an error naming the missing key.
    pub fn get(&self, key: &str) -> Result<&GgufValue> {
        self.metadata.get(key).ok_or_else(|| DataError::Gguf { path: self.path.clone(), at: format!("metadata `{key}`"), detail: "key is missing".into() })
    }

    /// A string array (e.g. `tokenizer.ggml.tokens`), or an error naming the key.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let arr = self.get(key)?.as_array().ok_or_else(|| self.type_err(key, "an array"))?;
        arr.iter().map(|v| v.as_str().ok_or_else(|| self.type_err(key, "an array of strings"))).collect()
    }

    fn type_err(&self, key: &str, expected: &str) -> DataError {
        DataError::Gguf { path: self.path.clone(), at: format!("metadata `{key}`"), detail: format!("expected {expected}") }
    }

    /// The raw bytes of the whole file (tensor data lives at `data_offset + tensor.offset`).
    pub fn bytes(&self) -> &[u8] {
        &self.mmap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A minimal GGUF v3 file: two metadata keys and one tensor descriptor.
    fn tiny() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        b.extend_from_slice(&2u64.to_le_bytes()); // kv
        string(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        string(&mut b, "llama");
        string(&mut b, "tokenizer.ggml.tokens");
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        string(&mut b, "a");
        string(&mut b, "b");
        string(&mut b, "token_embd.weight");
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&4u64.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // F32
        b.extend_from_slice(&0u64.to_le_bytes());
        b
    }

    #[test]
    fn parses_metadata_and_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        std::fs::write(&p, tiny()).unwrap();
        let g = GgufFile::open(&p).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.get("general.architecture").unwrap().as_str(), Some("llama"));
        assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap(), vec!["a", "b"]);
        assert_eq!(g.tensors[0].name, "token_embd.weight");
        assert_eq!(g.tensors[0].dims, vec![4, 2]);
        assert_eq!(g.data_offset % 32, 0);
        let missing = g.get("llama.block_count").unwrap_err().to_string();
        assert!(missing.contains("t.gguf") && missing.contains("llama.block_count"), "{missing}");
    }

    #[test]
    fn truncation_and_bad_magic_name_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        let full = tiny();
        // Cut inside the token array: the error names the key being read.
        let key_end = full.windows(21).position(|w| w == b"tokenizer.ggml.tokens").unwrap() + 21;
        std::fs::write(&p, &full[..key_end + 4 + 4 + 8 + 5]).unwrap();
        let e = GgufFile::open(&p).err().unwrap().to_string();
        assert!(e.contains("tokenizer.ggml.tokens") && e.contains("file ends"), "{e}");
        std::fs::write(&p, b"GGML....").unwrap();
        let e = GgufFile::open(&p).err().unwrap().to_string();
        assert!(e.contains("bad magic"), "{e}");
        // An absurd array length is rejected before allocating.
        let mut evil = full.clone();
        let at = key_end + 4 + 4;
        evil[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&p, &evil).unwrap();
        let e = GgufFile::open(&p).err().unwrap().to_string();
        assert!(e.contains("does not fit"), "{e}");
    }

    /// A v3 header with no tensors and one metadata key `k` of type array, up to its element type.
    fn one_array_header() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        string(&mut b, "k");
        b.extend_from_slice(&9u32.to_le_bytes());
        b
    }

    #[test]
    fn hostile_nesting_and_counts_are_errors_not_crashes() {
        // 100,000 arrays nested inside each other (12 bytes each): an error, not a stack overflow.
        let mut b = one_array_header();
        for _ in 0..100_000 {
            b.extend_from_slice(&9u32.to_le_bytes());
            b.extend_from_slice(&1u64.to_le_bytes());
        }
        let e = parse_header(&b, Path::new("n.gguf")).unwrap_err().to_string();
        assert!(e.contains("nested") && e.contains("`k`"), "{e}");
        // A u64 array claiming as many elements as there are bytes left: rejected when the data
        // runs out, with a reservation bounded by what the bytes can hold.
        let mut b = one_array_header();
        b.extend_from_slice(&10u32.to_le_bytes());
        b.extend_from_slice(&4096u64.to_le_bytes());
        b.extend(std::iter::repeat_n(0u8, 4096));
        let e = parse_header(&b, Path::new("n.gguf")).unwrap_err().to_string();
        assert!(e.contains("file ends"), "{e}");
    }
}
