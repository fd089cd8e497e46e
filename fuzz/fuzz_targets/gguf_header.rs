//! Fuzz the GGUF header/metadata parser: any bytes must give a parsed header or an error, never a
//! panic, a stack overflow, or an allocation the bytes cannot justify. A parsed header is then
//! read the way the loaders read it (config keys, the token array, tensor extents).
#![no_main]

use libfuzzer_sys::fuzz_target;
use syne_data::gguf::{parse_header, GgufValue};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_header(data, std::path::Path::new("fuzz.gguf")) {
        let _ = h.metadata.get("general.architecture").and_then(GgufValue::as_str);
        if let Some(tokens) = h.metadata.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array) {
            let _ = tokens.iter().filter_map(GgufValue::as_str).map(str::len).sum::<usize>();
        }
        for t in &h.tensors {
            let elements = t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let _ = elements.and_then(|n| h.data_offset.checked_add(t.offset)?.checked_add(n));
        }
    }
});
