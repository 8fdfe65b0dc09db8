//! The fast path: ranks of every query's relevant candidates in a pooled candidate set, from
//! embeddings, with one blocked GEMM pass and no sorting.
//!
//! For each query and each of its relevant candidates `r`, the engine counts, **per candidate
//! group** (a language in LAReQA), how many candidates rank above `r` under the tie rule of
//! [`crate::rank`]. The rank of `r` in any pool that is a union of groups is then 1 + the sum of
//! the counts of those groups, so one pass over the multilingual pool gives the monolingual,
//! cross-lingual and multilingual rankings at once.
//!
//! How it stays exact. Scores come from an f32 GEMM (`ndarray`'s `matrixmultiply`, BLAS-free),
//! streamed over candidate blocks. The score of a relevant candidate is needed *before* its
//! block is seen, so the engine first computes it exactly (f64) and derives a window
//! `[lo, hi]` that provably contains the GEMM's f32 value (the classic bound
//! |fl(x·y) − x·y| ≤ γ_d Σ|x_k y_k|). While streaming, scores above `hi` are counted, scores
//! inside the window (the relevant candidate itself and true near-ties) are kept, and after the
//! pass every kept score is compared with the GEMM's own value of `r` under the tie rule. So
//! the ranks are those of a full stable sort of the GEMM scores, with bounded memory:
//! one `query_block × candidate_block` score buffer per worker thread.

use std::ops::Range;

// (`ndarray::s!` expands to `allow(unsafe_code)`, which the workspace forbids: slice_axis instead.)
use ndarray::{Array2, ArrayView2, Axis, Slice};
use rayon::prelude::*;

use crate::error::{MetricsError, Result};
use crate::measures::QueryRanks;
use crate::rank::ranks_above;

/// Block sizes of the engine. The defaults were tuned on a 2-core machine (see the crate
/// README); results do not depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineOptions {
    /// Queries per work item (one rayon task; one GEMM left operand).
    pub query_block: usize,
    /// Candidates per streamed block (one GEMM right operand). Blocks never straddle groups.
    pub candidate_block: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { query_block: 128, candidate_block: 2048 }
    }
}

/// For every query and every one of its relevant candidates, the number of candidates of each
/// group that rank above it.
#[derive(Debug, Clone)]
pub struct RelevantRankCounts {
    groups: Vec<Range<usize>>,
    /// `offsets[q]..offsets[q + 1]` indexes `relevant` for query `q`.
    offsets: Vec<usize>,
    /// Relevant candidate indices, flattened, in the order given by the caller.
    relevant: Vec<u32>,
    /// `counts[j * groups + g]`: candidates of group `g` ranking above relevant entry `j`.
    counts: Vec<u32>,
}

impl RelevantRankCounts {
    /// Number of queries.
    pub fn num_queries(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The candidate groups (contiguous ranges covering the pool).
    pub fn groups(&self) -> &[Range<usize>] {
        &self.groups
    }

    /// Relevant candidates of query `q`, as given.
    pub fn relevant(&self, q: usize) -> &[u32] {
        &self.relevant[self.offsets[q]..self.offsets[q + 1]]
    }

    /// For the `i`-th relevant candidate of query `q`: per group, how many candidates rank above it.
    pub fn above(&self, q: usize, i: usize) -> &[u32] {
        let g = self.groups.len();
        let j = self.offsets[q] + i;
        &self.counts[j * g..(j + 1) * g]
    }

    /// Group holding candidate `c`.
    pub fn group_of(&self, c: usize) -> usize {
        group_of(&self.groups, c)
    }

    /// 1-based ranks of query `q`'s relevant candidates in the whole pool (order as given).
    pub fn ranks_in_pool(&self, q: usize) -> Vec<u64> {
        (0..self.relevant(q).len()).map(|i| 1 + self.above(q, i).iter().map(|&n| n as u64).sum::<u64>()).collect()
    }

    /// 1-based ranks, in the pool made of group `g` alone, of query `q`'s relevant candidates
    /// that belong to `g` (empty if none does).
    pub fn ranks_in_group(&self, q: usize, g: usize) -> Vec<u64> {
        let range = &self.groups[g];
        self.relevant(q)
            .iter()
            .enumerate()
            .filter(|&(_, &c)| range.contains(&(c as usize)))
            .map(|(i, _)| 1 + self.above(q, i)[g] as u64)
            .collect()
    }

    /// [`QueryRanks`] (binary relevance) of query `q` in the whole pool.
    pub fn query_ranks_in_pool(&self, q: usize) -> QueryRanks {
        QueryRanks::binary(self.ranks_in_pool(q)).expect("tie-broken ranks are distinct")
    }
}

fn group_of(groups: &[Range<usize>], c: usize) -> usize {
    groups.partition_point(|g| g.end <= c)
}

/// Counts, for every query and each of its relevant candidates, the candidates of each group
/// that score above it (tie rule: earlier candidate first). Scores are `queries · candidatesᵀ`
/// (normalise the rows first for cosine).
///
/// `groups` must be contiguous ranges covering `0..candidates.nrows()` in order (use one group
/// for a plain pool). `relevant[q]` lists candidate indices (distinct) relevant to query `q`.
pub fn relevant_rank_counts<R>(
    queries: ArrayView2<'_, f32>,
    candidates: ArrayView2<'_, f32>,
    groups: &[Range<usize>],
    relevant: &[R],
    options: EngineOptions,
) -> Result<RelevantRankCounts>
where
    R: AsRef<[u32]> + Sync,
{
    check_inputs(queries, candidates, groups, relevant, options)?;
    // Row slices are used below: make both matrices row-major (a no-op when they already are).
    let queries = queries.as_standard_layout();
    let candidates = candidates.as_standard_layout();
    let (queries, candidates) = (queries.view(), candidates.view());
    let mut offsets = Vec::with_capacity(relevant.len() + 1);
    offsets.push(0);
    let mut flat = Vec::new();
    for r in relevant {
        flat.extend_from_slice(r.as_ref());
        offsets.push(flat.len());
    }
    let num_queries = queries.nrows();
    let block_starts: Vec<usize> = (0..num_queries).step_by(options.query_block).collect();
    let blocks: Vec<Result<Vec<u32>>> = block_starts
        .par_iter()
        .map(|&q0| {
            let q1 = (q0 + options.query_block).min(num_queries);
            count_block(queries, candidates, groups, &flat, &offsets, q0..q1, options.candidate_block)
        })
        .collect();
    let mut counts = Vec::with_capacity(flat.len() * groups.len());
    for block in blocks {
        counts.extend(block?);
    }
    Ok(RelevantRankCounts { groups: groups.to_vec(), offsets, relevant: flat, counts })
}

fn check_inputs<R: AsRef<[u32]>>(
    queries: ArrayView2<'_, f32>,
    candidates: ArrayView2<'_, f32>,
    groups: &[Range<usize>],
    relevant: &[R],
    options: EngineOptions,
) -> Result<()> {
    let invalid = |m: String| Err(MetricsError::Invalid(m));
    if queries.ncols() != candidates.ncols() {
        return invalid(format!(
            "query dimension {} differs from candidate dimension {}",
            queries.ncols(),
            candidates.ncols()
        ));
    }
    if relevant.len() != queries.nrows() {
        return invalid(format!("{} relevance lists for {} queries", relevant.len(), queries.nrows()));
    }
    if options.query_block == 0 || options.candidate_block == 0 {
        return invalid("block sizes must be positive".into());
    }
    let mut next = 0;
    for (g, range) in groups.iter().enumerate() {
        if range.start != next || range.end < range.start {
            return invalid(format!("candidate group {g} ({range:?}) does not start where group {} ended ({next})", g.max(1) - 1));
        }
        next = range.end;
    }
    if next != candidates.nrows() {
        return invalid(format!("candidate groups cover {next} candidates, the pool has {}", candidates.nrows()));
    }
    if candidates.nrows() > u32::MAX as usize {
        return invalid("more than 2^32 candidates".into());
    }
    for (q, rel) in relevant.iter().enumerate() {
        let rel = rel.as_ref();
        for (i, &c) in rel.iter().enumerate() {
            if c as usize >= candidates.nrows() {
                return invalid(format!("query {q}: relevant candidate {c} is outside the pool of {}", candidates.nrows()));
            }
            if rel[..i].contains(&c) {
                return invalid(format!("query {q}: relevant candidate {c} is listed twice"));
            }
        }
    }
    let mut max_norm = [(0.0f64, 0usize); 2];
    for (m, (name, matrix)) in [("query", queries), ("candidate", candidates)].into_iter().enumerate() {
        for (i, row) in matrix.rows().into_iter().enumerate() {
            if let Some(k) = row.iter().position(|x| !x.is_finite()) {
                return invalid(format!("{name} {i}: embedding[{k}] is {}", row[k]));
            }
            let norm = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
            if norm > max_norm[m].0 {
                max_norm[m] = (norm, i);
            }
        }
    }
    // |q·c| <= |q||c| (Cauchy–Schwarz), and every partial sum of the GEMM and the bounds of the
    // error window below stay under that bound, up to rounding: half of f32's range leaves room.
    // Beyond it a score can be infinite, and infinite scores cannot be ranked.
    let [(query_norm, query), (candidate_norm, candidate)] = max_norm;
    if query_norm * candidate_norm > f64::from(f32::MAX) / 2.0 {
        return Err(MetricsError::ScoreOverflow { query_norm, query, candidate_norm, candidate });
    }
    Ok(())
}

/// One relevant (query, candidate) pair of a query block: its score window and what was seen.
struct Pending {
    lo: f32,
    hi: f32,
    /// (candidate, GEMM score) of every candidate whose score fell inside `[lo, hi]`.
    window: Vec<(u32, f32)>,
}

fn count_block(
    queries: ArrayView2<'_, f32>,
    candidates: ArrayView2<'_, f32>,
    groups: &[Range<usize>],
    relevant: &[u32],
    offsets: &[usize],
    block: Range<usize>,
    candidate_block: usize,
) -> Result<Vec<u32>> {
    let ng = groups.len();
    let dim = queries.ncols();
    let first = offsets[block.start];
    let last = offsets[block.end];
    let mut counts = vec![0u32; (last - first) * ng];
    let mut pending: Vec<Pending> = (first..last)
        .map(|j| {
            let q = offsets[..=block.end].partition_point(|&o| o <= j) - 1;
            let (lo, hi) = score_window(queries.row(q).as_slice(), candidates.row(relevant[j] as usize).as_slice(), dim);
            Pending { lo, hi, window: Vec::new() }
        })
        .collect();

    let qb = queries.slice_axis(Axis(0), Slice::from(block.clone()));
    let mut buffer = Array2::<f32>::zeros((block.len(), candidate_block.min(candidates.nrows().max(1))));
    for (g, range) in groups.iter().enumerate() {
        let mut c0 = range.start;
        while c0 < range.end {
            let c1 = (c0 + candidate_block).min(range.end);
            let cb = candidates.slice_axis(Axis(0), Slice::from(c0..c1));
            let mut out = buffer.slice_axis_mut(Axis(1), Slice::from(0..c1 - c0));
            ndarray::linalg::general_mat_mul(1.0, &qb, &cb.t(), 0.0, &mut out);
            for (qi, q) in block.clone().enumerate() {
                let row = out.row(qi);
                let row = row.as_slice().expect("score rows are contiguous");
                for j in offsets[q]..offsets[q + 1] {
                    let p = &mut pending[j - first];
                    let (above, at_least_lo) = count_above(row, p.lo, p.hi);
                    counts[(j - first) * ng + g] += above;
                    if at_least_lo > above {
                        for (i, &s) in row.iter().enumerate() {
                            if s >= p.lo && s <= p.hi {
                                p.window.push(((c0 + i) as u32, s));
                            }
                        }
                    }
                }
            }
            c0 = c1;
        }
    }

    // Resolve the windows against the GEMM's own score of each relevant candidate.
    for (jj, p) in pending.iter().enumerate() {
        let r = relevant[first + jj];
        let s_r = p.window.iter().find(|&&(c, _)| c == r).map(|&(_, s)| s).ok_or_else(|| {
            MetricsError::Invalid(format!(
                "internal: the GEMM score of relevant candidate {r} fell outside its error window [{}, {}]",
                p.lo, p.hi
            ))
        })?;
        for &(c, s_c) in &p.window {
            if c != r && ranks_above(s_c, c as usize, s_r, r as usize) {
                counts[jj * ng + group_of(groups, c as usize)] += 1;
            }
        }
    }
    Ok(counts)
}

/// (#scores > hi, #scores >= lo). Written as two branch-free counts so it vectorises.
#[inline]
fn count_above(row: &[f32], lo: f32, hi: f32) -> (u32, u32) {
    let mut above = [0u32; 8];
    let mut at_least = [0u32; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for l in 0..8 {
            above[l] += (chunk[l] > hi) as u32;
            at_least[l] += (chunk[l] >= lo) as u32;
        }
    }
    let mut a: u32 = above.iter().sum();
    let mut b: u32 = at_least.iter().sum();
    for &s in tail {
        a += (s > hi) as u32;
        b += (s >= lo) as u32;
    }
    (a, b)
}

/// An f32 interval that contains any f32 evaluation (any summation order, FMA or not) of the dot
/// product of `x` and `y`: exact value ± 2·γ_d·Σ|x_k y_k| (rounding of the bounds included).
fn score_window(x: Option<&[f32]>, y: Option<&[f32]>, dim: usize) -> (f32, f32) {
    let (x, y) = (x.expect("standard layout rows"), y.expect("standard layout rows"));
    let mut exact = 0.0f64;
    let mut magnitude = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        let p = a as f64 * b as f64; // exact: 24 + 24 bits fit in 53
        exact += p;
        magnitude += p.abs();
    }
    let u = f32::EPSILON as f64 / 2.0;
    let gamma = (dim as f64 + 2.0) * u / (1.0 - (dim as f64 + 2.0) * u);
    let eps = 2.0 * gamma * magnitude + 4.0 * u * exact.abs() + 1e-30;
    let lo = ((exact - eps) as f32).next_down();
    let hi = ((exact + eps) as f32).next_up();
    (lo, hi)
}

