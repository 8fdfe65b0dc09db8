//! The score block of exact search: `queries · documentsᵀ` with the `gemm` crate (the kernel
//! burn-flex and the model crate's dense layers run on), on the calling thread.
//!
//! Search parallelises over blocks itself (each rayon task computes and scans its own block while
//! it is still in cache), so every product here is single-threaded.

/// `out[i·n + j] = Σₖ queries[i·d + k] · docs[j·d + k]` for `m` query rows and `n` document rows
/// of dimension `d`, both row-major. Panics if a slice is shorter than its shape says (a bug of
/// the caller, not of the input).
pub fn scores_into(out: &mut [f32], queries: &[f32], m: usize, docs: &[f32], n: usize, d: usize) {
    assert!(queries.len() >= m * d && docs.len() >= n * d && out.len() >= m * n, "scores_into: a buffer is smaller than its shape");
    if m == 0 || n == 0 {
        return;
    }
    if d == 0 {
        out[..m * n].fill(0.0);
        return;
    }
    gemm_nt(&mut out[..m * n], queries, docs, (m, n, d));
}

// The only unsafe code of this crate: `gemm` takes raw pointers and strides.
#[allow(unsafe_code)]
fn gemm_nt(out: &mut [f32], queries: &[f32], docs: &[f32], (m, n, d): (usize, usize, usize)) {
    // SAFETY: `scores_into` checked that `queries` holds m·d values (row stride d), `docs` n·d
    // values (read as the d×n matrix docsᵀ: row stride 1, column stride d) and `out` exactly m·n
    // values (row stride n); `read_dst = false`, so `out` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            d,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            queries.as_ptr(),
            1,
            d as isize,
            docs.as_ptr(),
            d as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn equals_the_naive_product() {
        let (m, n, d) = (5, 7, 33);
        let q: Vec<f32> = (0..m * d).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let c: Vec<f32> = (0..n * d).map(|i| ((i * 53 % 97) as f32 - 48.0) / 20.0).collect();
        let mut out = vec![f32::NAN; m * n];
        super::scores_into(&mut out, &q, m, &c, n, d);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..d).map(|k| q[i * d + k] as f64 * c[j * d + k] as f64).sum();
                assert!((out[i * n + j] as f64 - want).abs() < 1e-4, "({i}, {j}): {} vs {want}", out[i * n + j]);
            }
        }
    }
}
