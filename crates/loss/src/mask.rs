//! Group masks: which candidates are removed from a query's softmax because they share its
//! parallel id (a translation of the query's own positive is not a negative).
//!
//! Layout convention used everywhere in this crate: candidate tensors are row-major blocks where
//! every batch row `j` owns `per_row` consecutive candidate rows. Positives and queries have
//! `per_row = 1` (candidate `j` belongs to row `j`); hard negatives `[B * k, D]` have
//! `per_row = k` (candidate `c` belongs to row `c / k`).
//!
//! Rule: candidate `c` (owned by row `j`) is masked for row `i` iff `j != i` and
//! `key[j] == key[i]`. The row's *own* candidates (its positive, its own hard negatives) are never
//! masked: the own positive is the target, and the own hard negatives are true negatives.

use burn::tensor::{Bool, Device, Tensor, TensorData};

/// Row-major `[keys.len(), keys.len() * per_row]` mask; `true` = removed.
///
/// ```
/// // rows 0 and 2 are translations of each other (same key 7)
/// let m = hybrid_ir_loss::mask::same_group_mask(&[7, 3, 7], 1);
/// assert_eq!(m, vec![false, false, true,   false, false, false,   true, false, false]);
/// ```
pub fn same_group_mask(keys: &[u64], per_row: usize) -> Vec<bool> {
    let rows = keys.len();
    let mut mask = Vec::with_capacity(rows * rows * per_row);
    for (i, key_i) in keys.iter().enumerate() {
        for (j, key_j) in keys.iter().enumerate() {
            let masked = i != j && key_i == key_j;
            mask.extend(std::iter::repeat_n(masked, per_row));
        }
    }
    mask
}

/// Number of `true` entries in a host mask (candidates removed in total).
pub fn count_masked(mask: &[bool]) -> usize {
    mask.iter().filter(|&&m| m).count()
}

/// Moves a host mask of shape `[rows, cols]` to `device` as a Bool tensor; `None` when nothing is
/// masked, so the common no-translation case pays no `mask_fill`.
pub(crate) fn to_device(mask: Vec<bool>, rows: usize, cols: usize, device: &Device) -> Option<Tensor<2, Bool>> {
    if !mask.iter().any(|&m| m) {
        return None;
    }
    Some(Tensor::<2, Bool>::from_data(TensorData::new(mask, [rows, cols]), device))
}
