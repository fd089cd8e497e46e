//! f32 tensors from a GGUF file, by name, with shape checks and errors that name the tensor.

use std::path::Path;

use syne_data::gguf::{GgufFile, TensorInfo};

use crate::dequant::{dequantize, unpermute_qk, GgmlType};
use crate::error::{ModelError, Result};

/// A dequantised tensor in PyTorch (row-major, outermost first) shape order.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// Dequantising access to the tensors of an opened GGUF file.
pub struct GgufWeights {
    /// The parsed GGUF (metadata and tensor index).
    pub file: GgufFile,
}

impl GgufWeights {
    /// Open and index a GGUF file (tensors are read on demand).
    pub fn open(path: &Path) -> Result<GgufWeights> {
        Ok(GgufWeights { file: GgufFile::open(path)? })
    }

    fn err(&self, tensor: &str, detail: impl Into<String>) -> ModelError {
        ModelError::Tensor { path: self.file.path().to_path_buf(), tensor: tensor.into(), detail: detail.into() }
    }

    /// The descriptor of `name`, or an error naming it.
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.file.tensors.iter().find(|t| t.name == name).ok_or_else(|| self.err(name, "missing from the file"))
    }

    /// Dequantise `name` to f32; when `expected` is given the shape (PyTorch order) must match.
    pub fn tensor(&self, name: &str, expected: Option<&[usize]>) -> Result<F32Tensor> {
        let info = self.info(name)?;
        let shape: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
        if let Some(want) = expected {
            if want != shape.as_slice() {
                return Err(self.err(name, format!("expected shape {want:?}, found {shape:?}")));
            }
        }
        let ty = GgmlType::from_id(info.ggml_type).ok_or_else(|| self.err(name, format!("unsupported ggml type id {}", info.ggml_type)))?;
        let n: usize = shape.iter().product();
        let bytes = ty.bytes_for(n).ok_or_else(|| self.err(name, format!("{n} values are not whole {} blocks", ty.name())))?;
        let start = self.file.data_offset as usize + info.offset as usize;
        let data =
            self.file.bytes().get(start..start + bytes).ok_or_else(|| {
                self.err(name, format!("data at {start}..{} lies beyond the end of the file ({} bytes)", start + bytes, self.file.bytes().len()))
            })?;
        let data = dequantize(ty, data, n).ok_or_else(|| self.err(name, "size mismatch while dequantising"))?;
        Ok(F32Tensor { shape, data })
    }

    /// Like [`GgufWeights::tensor`] for a Q or K projection, returned in Hugging Face's row order.
    pub fn qk_tensor(&self, name: &str, expected: &[usize], n_head: usize) -> Result<F32Tensor> {
        let t = self.tensor(name, Some(expected))?;
        if t.shape.len() != 2 || t.shape[0] % (2 * n_head) != 0 {
            return Err(self.err(name, format!("shape {:?} cannot hold {n_head} heads", t.shape)));
        }
        let data = unpermute_qk(&t.data, t.shape[0], t.shape[1], n_head);
        Ok(F32Tensor { shape: t.shape, data })
    }
}
