//! Reads the JSON header of a safetensors file (names, dtypes, shapes) without loading data,
//! so the loader can validate a checkpoint and name the offending tensor before applying it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Dtype and shape of one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// safetensors dtype string (`F32`, `F16`, `BF16`, `I64`, …).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// Tensor name -> dtype and shape, for every tensor in the file.
pub fn read_header(path: &Path) -> Result<BTreeMap<String, TensorInfo>> {
    let bad = |message: String| ModelError::Safetensors { path: path.to_path_buf(), message };
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes).map_err(|e| bad(format!("no header length: {e}")))?;
    let len = u64::from_le_bytes(len_bytes);
    if len > 100 << 20 {
        return Err(bad(format!("header length {len} is implausible")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|e| bad(format!("truncated header: {e}")))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    raw.into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, value)| {
            let info: TensorInfo = serde_json::from_value(value).map_err(|e| bad(format!("tensor {name}: {e}")))?;
            Ok((name, info))
        })
        .collect()
}
