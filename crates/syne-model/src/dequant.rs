//! Dequantisation of ggml tensor data to f32: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
//! Q4_K and Q6_K, following the block layouts of ggml (`ggml-quants.c`). Verified against the
//! reference implementation in gguf-py (`tests/fixtures/dequant.json`, made by
//! `scripts/make_dequant_fixtures.py`).

use half::{bf16, f16};

/// A ggml tensor type this crate can dequantise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats.
    F16,
    /// bfloat16.
    BF16,
    /// 4-bit blocks of 32 with one f16 scale.
    Q4_0,
    /// 4-bit blocks of 32 with an f16 scale and minimum.
    Q4_1,
    /// 5-bit blocks of 32 with one f16 scale.
    Q5_0,
    /// 5-bit blocks of 32 with an f16 scale and minimum.
    Q5_1,
    /// 8-bit blocks of 32 with one f16 scale.
    Q8_0,
    /// 4-bit k-quant super-blocks of 256 (6-bit sub-block scales and minimums).
    Q4K,
    /// 6-bit k-quant super-blocks of 256 (8-bit sub-block scales).
    Q6K,
}

impl GgmlType {
    /// The type for a ggml type id, or `None` when unsupported.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q6K => "Q6_K",
        }
    }

    /// (values per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q6K => (256, 210),
        }
    }

    /// Bytes taken by `n` values, or `None` when `n` is not a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        let (per, bytes) = self.block();
        n.is_multiple_of(per).then(|| n / per * bytes)
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantise `n` values of type `ty` from `data` (which must hold exactly
/// `ty.bytes_for(n)` bytes; the caller checks and reports). Returns `None` on a size mismatch.
pub fn dequantize(ty: GgmlType, data: &[u8], n: usize) -> Option<Vec<f32>> {
    if ty.bytes_for(n)? != data.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let (_, bs) = ty.block();
    match ty {
        GgmlType::F32 => out.extend(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        GgmlType::F16 => out.extend(data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::BF16 => out.extend(data.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::Q4_0 => {
            for b in data.chunks_exact(bs) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|q| ((q & 0xF) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in data.chunks_exact(bs) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|q| (q & 0xF) as f32 * d + m));
                out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            for b in data.chunks_exact(bs) {
                let (d, m, off) = if ty == GgmlType::Q5_0 { (f16_at(b, 0), 0.0, 2) } else { (f16_at(b, 0), f16_at(b, 2), 4) };
                let qh = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
                let qs = &b[off + 4..off + 20];
                let center = if ty == GgmlType::Q5_0 { 16 } else { 0 };
                let lo: Vec<f32> = (0..16)
                    .map(|j| {
                        let h = ((qh >> j) << 4) & 0x10;
                        (((qs[j] & 0xF) as u32 | h) as i32 - center) as f32 * d + m
                    })
                    .collect();
                let hi: Vec<f32> = (0..16)
                    .map(|j| {
                        let h = (qh >> (j + 12)) & 0x10;
                        (((qs[j] >> 4) as u32 | h) as i32 - center) as f32 * d + m
                    })
                    .collect();
                out.extend(lo);
                out.extend(hi);
            }
        }
        GgmlType::Q8_0 => {
            for b in data.chunks_exact(bs) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4K => {
            for b in data.chunks_exact(bs) {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qs = &b[16..144];
                let scale_min = |j: usize| -> (f32, f32) {
                    if j < 4 {
                        ((scales[j] & 63) as f32, (scales[j + 4] & 63) as f32)
                    } else {
                        (((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4)) as f32, ((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4)) as f32)
                    }
                };
                for (k, q) in qs.chunks_exact(32).enumerate() {
                    let (s1, m1) = scale_min(2 * k);
                    let (s2, m2) = scale_min(2 * k + 1);
                    out.extend(q.iter().map(|v| d * s1 * (v & 0xF) as f32 - dmin * m1));
                    out.extend(q.iter().map(|v| d * s2 * (v >> 4) as f32 - dmin * m2));
                }
            }
        }
        GgmlType::Q6K => {
            for b in data.chunks_exact(bs) {
                let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = f16_at(b, 208);
                for half in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
                    let mut y = [0f32; 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                    out.extend_from_slice(&y);
                }
            }
        }
    }
    Some(out)
}

/// Undo llama.cpp's permutation of the Q/K projection rows (its converter reorders each head's
/// rows from rotate-half to interleaved RoPE pairs). `w` is row-major `[rows, cols]` with
/// `rows = n_head * head_dim`; the result is in Hugging Face's layout.
pub fn unpermute_qk(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                // GGUF row (h, i, j) holds HF row (h, j, i).
                let src = h * head_dim + i * 2 + j;
                let dst = h * head_dim + j * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block_by_hand() {
        let mut b = f16::from_f32(0.5).to_le_bytes().to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
        assert_eq!(y[0], -8.0);
        assert_eq!(y[31], 7.5);
    }

    #[test]
    fn size_mismatch_is_refused() {
        assert!(dequantize(GgmlType::Q4_1, &[0u8; 19], 32).is_none());
        assert!(dequantize(GgmlType::Q4K, &[0u8; 144], 255).is_none());
    }

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        // The converter: w.reshape(n_head, 2, half, cols).swapaxes(1, 2).reshape(rows, cols).
        let (n_head, head_dim, cols) = (2, 4, 3);
        let rows = n_head * head_dim;
        let hf: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let mut gguf = vec![0f32; hf.len()];
        for h in 0..n_head {
            for j in 0..2 {
                for i in 0..head_dim / 2 {
                    let src = h * head_dim + j * (head_dim / 2) + i;
                    let dst = h * head_dim + i * 2 + j;
                    gguf[dst * cols..(dst + 1) * cols].copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        assert_eq!(unpermute_qk(&gguf, rows, cols, n_head), hf);
    }
}
