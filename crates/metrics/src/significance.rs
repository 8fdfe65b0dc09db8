//! Paired significance tests over queries: is system B really better than system A, or is the
//! difference within what the choice of queries (and of training seeds) would give by chance?
//!
//! **The unit is the query.** Both systems are scored on the same queries, so each query gives
//! a paired difference d_q = b_q − a_q of one per-query value (its AP, R@1, rank distance...;
//! [`crate::PerQueryValues`]). The compared statistic is the weighted mean difference
//! D = Σ w_q d_q / Σ w_q, with the weights that make the mean the reported macro number
//! (languages and pairs macro-averaged as in the paper); without weights it is the plain mean.
//! Queries of weight 0 (not evaluated in that setting) take no part in the test.
//!
//! - **p-value**: two-sided paired randomisation (sign-flip) test. Under "A and B are
//!   exchangeable" each d_q is as likely to be −d_q, so D is compared with the D of
//!   `resamples` random sign patterns; p = (count(|D*| ≥ |D|) + 1) / (resamples + 1), never 0
//!   (the observed pattern is one of the possible ones). A D* equal to D up to rounding
//!   (relative 1e-12) counts as "at least as extreme": equal sums of other sign patterns differ
//!   in the last bits.
//! - **confidence interval**: paired bootstrap percentile interval of D: `resamples` times,
//!   draw the queries with replacement and recompute D (a weighted mean: Σ w d / Σ w over the
//!   draw), then take the (1 − c)/2 and (1 + c)/2 quantiles (linear interpolation).
//! - **reproducible**: every resample has its own ChaCha8 stream (seed, stream = resample
//!   index), so the result is the same bits whatever the number of threads.
//!
//! **Seeds.** With several training seeds per system, each query's value is first averaged over
//! the seeds of each system ([`combine_seeds`]), then tested as above: the query stays the unit
//! of resampling and the seed-to-seed variation is averaged out, as is common in IR
//! significance testing of runs from several seeds. (This tests the systems' mean behaviour;
//! it does not treat seeds as a second random factor.)
//!
//! **Several comparisons** (pairs of systems × metrics) are corrected with Holm–Bonferroni
//! ([`holm`]): a difference is significant when its adjusted p-value is ≤ α (0.05 by default).
//! [`compare_reports`] / [`compare_report_seeds`] do all of it for the headline metrics of two
//! [`LareqaReport`]s evaluated with per-query values, and [`holm_jointly`] widens the
//! correction to a whole family of such comparisons.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::lareqa::{HeadlineMetric, LareqaReport, PerQueryValues, Setting};

/// Relative tolerance under which a resampled statistic ties with the observed one.
const TIE_TOLERANCE: f64 = 1e-12;

/// Stream offsets of the two resampling procedures, so that they never share random numbers.
const SIGN_FLIP_STREAM: u64 = 0;
const BOOTSTRAP_STREAM: u64 = 1;

/// Options of the paired tests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PairedTestOptions {
    /// Random sign patterns of the randomisation test, and bootstrap draws of the interval.
    pub resamples: usize,
    /// Seed of the random streams.
    pub seed: u64,
    /// Coverage of the bootstrap interval, in (0, 1).
    pub confidence: f64,
    /// Level at which a (Holm-adjusted) p-value is significant, in (0, 1).
    pub alpha: f64,
}

impl Default for PairedTestOptions {
    fn default() -> Self {
        PairedTestOptions { resamples: 10_000, seed: 0, confidence: 0.95, alpha: 0.05 }
    }
}

impl PairedTestOptions {
    fn check(&self) -> Result<()> {
        if self.resamples == 0 {
            return Err(MetricsError::Invalid("paired test: resamples must be at least 1".into()));
        }
        for (name, v) in [("confidence", self.confidence), ("alpha", self.alpha)] {
            if !(v > 0.0 && v < 1.0) {
                return Err(MetricsError::Invalid(format!("paired test: {name} is {v}, not in (0, 1)")));
            }
        }
        Ok(())
    }
}

/// The result of one paired test of B against A.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Queries compared (those of positive weight).
    pub n: usize,
    /// Weighted mean of A's values (the reported number when the weights are the report's).
    pub mean_a: f64,
    /// Weighted mean of B's values.
    pub mean_b: f64,
    /// Weighted mean of b − a (= `mean_b − mean_a` up to rounding): positive when B scores
    /// higher (better for mAP and recall, worse for rank distance).
    pub difference: f64,
    /// Lower end of the bootstrap percentile interval of `difference`.
    pub ci_low: f64,
    /// Upper end of the bootstrap percentile interval of `difference`.
    pub ci_high: f64,
    /// Two-sided sign-flip p-value, (count + 1) / (resamples + 1), not corrected for multiple
    /// comparisons.
    pub p_value: f64,
}

/// Paired test of B against A on per-query values `a[i]`, `b[i]` of the same queries, with
/// optional non-negative weights (the plain mean without): the difference b − a, its bootstrap
/// interval and the sign-flip p-value (see the [module docs](self)).
///
/// Errors (naming the offending index) on slices of different lengths, empty input, a
/// non-finite value or weight, a negative weight, all weights 0, or invalid options.
pub fn paired_test(a: &[f64], b: &[f64], weights: Option<&[f64]>, options: &PairedTestOptions) -> Result<PairedComparison> {
    options.check()?;
    let invalid = |m: String| Err(MetricsError::Invalid(format!("paired test: {m}")));
    if a.len() != b.len() {
        return invalid(format!("A has {} values, B has {}: the queries must be paired", a.len(), b.len()));
    }
    if a.is_empty() {
        return invalid("no values to compare".into());
    }
    for (side, values) in [("A", a), ("B", b)] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return invalid(format!("value {i} of {side} is {}", values[i]));
        }
    }
    if let Some(w) = weights {
        if w.len() != a.len() {
            return invalid(format!("{} weights for {} values", w.len(), a.len()));
        }
        if let Some(i) = w.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
            return invalid(format!("weight {i} is {} (weights must be finite and ≥ 0)", w[i]));
        }
    }
    let kept: Vec<usize> = (0..a.len()).filter(|&i| weights.is_none_or(|w| w[i] > 0.0)).collect();
    if kept.is_empty() {
        return invalid("every weight is 0".into());
    }
    let w: Vec<f64> = kept.iter().map(|&i| weights.map_or(1.0, |w| w[i])).collect();
    let total: f64 = w.iter().sum();
    let mean = |v: &[f64]| kept.iter().zip(&w).map(|(&i, w)| w * v[i]).sum::<f64>() / total;
    let wd: Vec<f64> = kept.iter().zip(&w).map(|(&i, w)| w * (b[i] - a[i])).collect();
    let extreme = sign_flip_count(&wd, options);
    let (ci_low, ci_high) = bootstrap_interval(&w, &wd, options);
    Ok(PairedComparison {
        n: kept.len(),
        mean_a: mean(a),
        mean_b: mean(b),
        difference: wd.iter().sum::<f64>() / total,
        ci_low,
        ci_high,
        p_value: (extreme + 1) as f64 / (options.resamples + 1) as f64,
    })
}

/// The random stream of one resample: independent of the others and of the thread running it.
fn resample_rng(seed: u64, resample: usize, procedure: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(2 * resample as u64 + procedure);
    rng
}

/// Sign patterns whose |Σ ± w d| is at least the observed |Σ w d| (the common 1 / Σw cancels).
fn sign_flip_count(wd: &[f64], options: &PairedTestOptions) -> usize {
    let threshold = wd.iter().sum::<f64>().abs() * (1.0 - TIE_TOLERANCE);
    (0..options.resamples)
        .into_par_iter()
        .filter(|&r| {
            let mut rng = resample_rng(options.seed, r, SIGN_FLIP_STREAM);
            let mut sum = 0.0;
            for chunk in wd.chunks(64) {
                let bits = rng.next_u64();
                for (j, &x) in chunk.iter().enumerate() {
                    sum += if (bits >> j) & 1 == 1 { x } else { -x };
                }
            }
            sum.abs() >= threshold
        })
        .count()
}

/// Bootstrap percentile interval of Σ w d / Σ w (weights are > 0, so every draw has Σ w > 0).
fn bootstrap_interval(w: &[f64], wd: &[f64], options: &PairedTestOptions) -> (f64, f64) {
    let n = w.len();
    let mut means: Vec<f64> = (0..options.resamples)
        .into_par_iter()
        .map(|r| {
            let mut rng = resample_rng(options.seed, r, BOOTSTRAP_STREAM);
            let (mut sw, mut swd) = (0.0, 0.0);
            for _ in 0..n {
                let j = rng.random_range(0..n);
                sw += w[j];
                swd += wd[j];
            }
            swd / sw
        })
        .collect();
    means.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - options.confidence) / 2.0;
    (quantile(&means, tail), quantile(&means, 1.0 - tail))
}

/// Quantile `p` of sorted, non-empty values, interpolating linearly between order statistics
/// (R's type 7, numpy's default). `p` in [0, 1].
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Each query's value averaged over seeds: `per_seed[s][q]` is seed `s`'s value of query `q`.
/// Errors when there is no seed or when the seeds do not have the same number of queries.
pub fn mean_over_seeds<V: AsRef<[f64]>>(per_seed: &[V]) -> Result<Vec<f64>> {
    let first = per_seed.first().ok_or_else(|| MetricsError::Invalid("no seed to average".into()))?.as_ref();
    let mut sum = vec![0.0; first.len()];
    for (s, values) in per_seed.iter().enumerate() {
        let values = values.as_ref();
        if values.len() != first.len() {
            return Err(MetricsError::Invalid(format!(
                "seed {s} has {} per-query values, seed 0 has {}: the queries must be the same",
                values.len(),
                first.len()
            )));
        }
        sum.iter_mut().zip(values).for_each(|(s, v)| *s += v);
    }
    let n = per_seed.len() as f64;
    Ok(sum.into_iter().map(|s| s / n).collect())
}

/// [`paired_test`] of B against A, each given by the per-query values of several seeds (the
/// numbers of seeds may differ; the queries must be the same, in the same order): every
/// query's value is averaged over each system's seeds, then the averages are tested. The query
/// is the unit of resampling; averaging over seeds is what IR practice does with runs from
/// several seeds, and it keeps the query pairing (see the [module docs](self)).
pub fn combine_seeds<V: AsRef<[f64]>>(
    per_seed_a: &[V],
    per_seed_b: &[V],
    weights: Option<&[f64]>,
    options: &PairedTestOptions,
) -> Result<PairedComparison> {
    let side = |name: &str, e: MetricsError| MetricsError::Invalid(format!("{name}: {e}"));
    let a = mean_over_seeds(per_seed_a).map_err(|e| side("A", e))?;
    let b = mean_over_seeds(per_seed_b).map_err(|e| side("B", e))?;
    paired_test(&a, &b, weights, options)
}

/// Holm–Bonferroni adjusted p-values, in the order given: with p_(1) ≤ … ≤ p_(m) sorted,
/// p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)). Monotone in p, capped at 1; a p-value is
/// significant at level α when its adjusted value is ≤ α (family-wise error ≤ α). A NaN
/// counts as 1 and values are clamped to [0, 1].
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let p: Vec<f64> = p_values.iter().map(|&p| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) }).collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// One headline metric of a [`ReportComparison`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// The metric.
    pub metric: HeadlineMetric,
    /// Means, difference (B − A), interval and raw p-value.
    pub test: PairedComparison,
    /// `test.p_value` after Holm's correction over the comparisons of the family (the
    /// metrics of this comparison, or every row given to [`holm_jointly`]).
    pub p_holm: f64,
    /// `p_holm ≤ options.alpha`.
    pub significant: bool,
}

/// Paired tests of every [`HeadlineMetric`] of system B against system A on one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportComparison {
    /// Benchmark name.
    pub benchmark: String,
    /// Reports (seeds) of A averaged per query.
    pub runs_a: usize,
    /// Reports (seeds) of B averaged per query.
    pub runs_b: usize,
    /// Options of the tests.
    pub options: PairedTestOptions,
    /// One row per headline metric, in [`HeadlineMetric::ALL`] order.
    pub metrics: Vec<MetricComparison>,
}

impl ReportComparison {
    /// The row of `metric`.
    pub fn get(&self, metric: HeadlineMetric) -> Option<&MetricComparison> {
        self.metrics.iter().find(|m| m.metric == metric)
    }
}

/// Compares two reports evaluated with per-query values ([`crate::EvalOptions::per_query`]):
/// [`compare_report_seeds`] with one report per system.
pub fn compare_reports(a: &LareqaReport, b: &LareqaReport, options: &PairedTestOptions) -> Result<ReportComparison> {
    compare_report_seeds(&[a], &[b], options)
}

/// Compares system B (reports of one or more seeds) against system A on every headline metric:
/// per-query values averaged over each system's seeds, weighted so that the means are the
/// reported numbers, paired test, Holm correction over the metrics.
///
/// Errors when a report has no per-query values, when the reports are of different benchmarks,
/// when their queries differ (naming the first differing query key) or have different weights
/// (different relevance judgements), or when a per-query value is not finite (naming the query).
pub fn compare_report_seeds(
    a: &[&LareqaReport],
    b: &[&LareqaReport],
    options: &PairedTestOptions,
) -> Result<ReportComparison> {
    options.check()?;
    if a.is_empty() || b.is_empty() {
        let side = if a.is_empty() { "A" } else { "B" };
        return Err(MetricsError::Invalid(format!("no report of {side} to compare")));
    }
    let label = |side: &str, i: usize, n: usize| if n == 1 { side.to_string() } else { format!("{side} (run {})", i + 1) };
    let labelled: Vec<(String, &LareqaReport)> = a
        .iter()
        .enumerate()
        .map(|(i, &r)| (label("A", i, a.len()), r))
        .chain(b.iter().enumerate().map(|(i, &r)| (label("B", i, b.len()), r)))
        .collect();
    let (reference_label, reference) = (&labelled[0].0, labelled[0].1);
    let reference_values = checked_per_query(reference_label, reference)?;
    for (label, report) in &labelled[1..] {
        if report.benchmark != reference.benchmark {
            return Err(MetricsError::Invalid(format!(
                "{label} is a report of `{}`, {reference_label} of `{}`",
                report.benchmark, reference.benchmark
            )));
        }
        let values = checked_per_query(label, report)?;
        same_queries(&reference.benchmark, (reference_label, reference_values), (label, values))?;
    }

    let mut metrics = Vec::with_capacity(HeadlineMetric::ALL.len());
    for metric in HeadlineMetric::ALL {
        let values = |reports: &[&LareqaReport]| -> Vec<Vec<f64>> {
            reports.iter().map(|r| r.per_query.as_ref().expect("checked above").values[&metric].clone()).collect()
        };
        let weights = reference_values.weights.get(metric.setting());
        let test = combine_seeds(&values(a), &values(b), Some(weights), options)
            .map_err(|e| MetricsError::Invalid(format!("benchmark `{}`, {metric}: {e}", reference.benchmark)))?;
        metrics.push(MetricComparison { metric, test, p_holm: test.p_value, significant: false });
    }
    let mut comparison = ReportComparison {
        benchmark: reference.benchmark.clone(),
        runs_a: a.len(),
        runs_b: b.len(),
        options: *options,
        metrics,
    };
    holm_jointly(std::slice::from_mut(&mut comparison));
    Ok(comparison)
}

/// Applies Holm's correction over **all** rows of `comparisons` together (e.g. every pair of
/// samplers × every metric), replacing each row's `p_holm` and `significant` (at its
/// comparison's `options.alpha`).
pub fn holm_jointly(comparisons: &mut [ReportComparison]) {
    let raw: Vec<f64> = comparisons.iter().flat_map(|c| c.metrics.iter().map(|m| m.test.p_value)).collect();
    let mut adjusted = holm(&raw).into_iter();
    for c in comparisons {
        for m in &mut c.metrics {
            m.p_holm = adjusted.next().expect("one adjusted value per row");
            m.significant = m.p_holm <= c.options.alpha;
        }
    }
}

/// The report's per-query values, checked to be complete, consistent and finite.
fn checked_per_query<'r>(label: &str, report: &'r LareqaReport) -> Result<&'r PerQueryValues> {
    let invalid = |m: String| Err(MetricsError::Invalid(format!("{label} (benchmark `{}`): {m}", report.benchmark)));
    let Some(values) = report.per_query.as_ref() else {
        return invalid("the report has no per-query values: re-run eval with per-query values (EvalOptions::per_query)".into());
    };
    let n = values.queries.len();
    for setting in [Setting::Mono, Setting::Cross, Setting::Multi] {
        if values.weights.get(setting).len() != n {
            return invalid(format!("{} {setting} weights for {n} queries", values.weights.get(setting).len()));
        }
    }
    for metric in HeadlineMetric::ALL {
        let Some(v) = values.values.get(&metric) else {
            return invalid(format!("no per-query values of {metric}: re-run eval with per-query values"));
        };
        if v.len() != n {
            return invalid(format!("{} per-query values of {metric} for {n} queries", v.len()));
        }
        if let Some(q) = v.iter().position(|x| !x.is_finite()) {
            return invalid(format!("{metric} of query `{}` is {}", values.queries[q], v[q]));
        }
    }
    Ok(values)
}

/// Both reports have the same queries in the same order, with the same weights.
fn same_queries(benchmark: &str, (la, a): (&str, &PerQueryValues), (lb, b): (&str, &PerQueryValues)) -> Result<()> {
    if a.queries != b.queries {
        let i = a.queries.iter().zip(&b.queries).position(|(x, y)| x != y).unwrap_or(a.queries.len().min(b.queries.len()));
        let key = |v: &PerQueryValues| v.queries.get(i).map_or("no query".to_string(), |k| format!("`{k}`"));
        return Err(MetricsError::Invalid(format!(
            "benchmark `{benchmark}`: {la} and {lb} were evaluated on different queries ({} and {}); the first difference is \
             query {i}: {} in {la}, {} in {lb}",
            a.queries.len(),
            b.queries.len(),
            key(a),
            key(b)
        )));
    }
    if a.weights != b.weights {
        return Err(MetricsError::Invalid(format!(
            "benchmark `{benchmark}`: {la} and {lb} have the same queries but different weights (different relevance \
             judgements or languages?)"
        )));
    }
    Ok(())
}

/// One metric over training seeds: how much it moves from seed to seed, and where its mean
/// lies. The interval is Student's t interval of the mean, mean ± t_{(1+c)/2, n−1} · sd / √n
/// (the runs are few, so the normal quantile would be too narrow: 4.30 instead of 1.96 at
/// n = 3). It describes the spread over *seeds*; the paired tests over queries are separate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    /// Seeds (runs).
    pub n: usize,
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` for one seed.
    pub sd: Option<f64>,
    /// Lower end of the interval of the mean; `None` for one seed.
    pub ci_low: Option<f64>,
    /// Upper end of the interval of the mean; `None` for one seed.
    pub ci_high: Option<f64>,
}

impl SeedSummary {
    /// Summarises the values of one metric over seeds at interval coverage `confidence` in
    /// (0, 1). Errors on no value, a non-finite value (naming its index) or a bad coverage.
    pub fn of(values: &[f64], confidence: f64) -> Result<SeedSummary> {
        use statrs::distribution::{ContinuousCDF, StudentsT};
        if !(confidence > 0.0 && confidence < 1.0) {
            return Err(MetricsError::Invalid(format!("seed summary: confidence is {confidence}, not in (0, 1)")));
        }
        if values.is_empty() {
            return Err(MetricsError::Invalid("seed summary: no value".into()));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(MetricsError::Invalid(format!("seed summary: value {i} is {}", values[i])));
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Ok(SeedSummary { n, mean, sd: None, ci_low: None, ci_high: None });
        }
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
            .map_err(|e| MetricsError::Invalid(format!("seed summary: {e}")))?
            .inverse_cdf((1.0 + confidence) / 2.0);
        let half = t * sd / (n as f64).sqrt();
        Ok(SeedSummary { n, mean, sd: Some(sd), ci_low: Some(mean - half), ci_high: Some(mean + half) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [0, 1) for the tests (a splitmix64 stream).
    fn uniform(seed: u64, n: usize) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as f64 / u64::MAX as f64
            })
            .collect()
    }

    fn opts() -> PairedTestOptions {
        PairedTestOptions::default()
    }

    #[test]
    fn identical_inputs_differ_by_zero_with_p_one() {
        let a = uniform(1, 150);
        let t = paired_test(&a, &a, None, &opts()).unwrap();
        assert_eq!((t.n, t.difference, t.ci_low, t.ci_high, t.p_value), (150, 0.0, 0.0, 0.0, 1.0));
        assert_eq!(t.mean_a, t.mean_b);
    }

    #[test]
    fn constant_shift_is_significant_and_inside_the_interval() {
        let a: Vec<f64> = uniform(2, 200).iter().map(|v| v * 0.8).collect();
        let b: Vec<f64> = a.iter().map(|v| v + 0.1).collect();
        let o = opts();
        let t = paired_test(&a, &b, None, &o).unwrap();
        // Only the all-plus and all-minus patterns (probability 2^-199) reach |D|.
        assert_eq!(t.p_value, 1.0 / (o.resamples + 1) as f64);
        assert!((t.difference - 0.1).abs() < 1e-12, "{t:?}");
        assert!(t.ci_low > 0.0 && t.ci_low <= 0.1 + 1e-12 && t.ci_high >= 0.1 - 1e-12, "{t:?}");
        assert!(t.ci_high - t.ci_low < 1e-12, "every bootstrap draw has the same difference: {t:?}");
        // Reversed roles: the difference changes sign, the p-value does not.
        let r = paired_test(&b, &a, None, &o).unwrap();
        assert!((r.difference + 0.1).abs() < 1e-12 && r.p_value == t.p_value);
    }

    /// Noise of mean exactly 0 (each value followed by its negation), so that a test's observed
    /// difference is the shift it is given, whatever the draws.
    fn balanced_noise(seed: u64, n: usize, width: f64) -> Vec<f64> {
        uniform(seed, n / 2).iter().flat_map(|u| [width * (u - 0.5), -width * (u - 0.5)]).collect()
    }

    #[test]
    fn noisy_shift_interval_covers_the_shift_and_excludes_zero() {
        let a = uniform(3, 400);
        let b: Vec<f64> = a.iter().zip(balanced_noise(4, 400, 0.2)).map(|(a, n)| a + 0.1 + n).collect();
        let t = paired_test(&a, &b, None, &opts()).unwrap();
        assert!(t.ci_low > 0.0 && t.ci_low < 0.1 && t.ci_high > 0.1, "{t:?}");
        assert!(t.p_value < 0.001, "{t:?}");
    }

    #[test]
    fn a_tiny_difference_in_noise_is_not_significant() {
        let a = uniform(5, 300);
        // A shift of 0.001 in noise of width 0.6: a tenth of the mean's standard error (0.01).
        let b: Vec<f64> = a.iter().zip(balanced_noise(6, 300, 0.6)).map(|(a, n)| a + 0.001 + n).collect();
        let t = paired_test(&a, &b, None, &opts()).unwrap();
        assert!((t.difference - 0.001).abs() < 1e-12, "{t:?}");
        assert!(t.p_value > 0.2, "{t:?}");
        assert!(t.ci_low < 0.0 && t.ci_high > 0.0, "{t:?}");
    }

    #[test]
    fn weights_give_the_weighted_mean_and_zero_weights_leave_queries_out() {
        let a = [0.0, 1.0, 0.5, 9.0];
        let b = [1.0, 1.0, 0.5, -9.0];
        let w = [0.5, 0.25, 0.25, 0.0];
        let t = paired_test(&a, &b, Some(&w), &opts()).unwrap();
        assert_eq!(t.n, 3);
        assert!((t.mean_a - 0.375).abs() < 1e-15 && (t.mean_b - 0.875).abs() < 1e-15, "{t:?}");
        assert!((t.difference - 0.5).abs() < 1e-15);
        let unweighted = paired_test(&a[..3], &b[..3], None, &opts()).unwrap();
        assert!((unweighted.difference - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn same_seed_same_bits_other_seed_other_interval() {
        let a = uniform(7, 250);
        let b: Vec<f64> = a.iter().zip(uniform(8, 250)).map(|(a, n)| a + 0.3 * (n - 0.45)).collect();
        let o = PairedTestOptions { seed: 11, ..opts() };
        let first = paired_test(&a, &b, None, &o).unwrap();
        let again = paired_test(&a, &b, None, &o).unwrap();
        assert_eq!(
            [first.ci_low, first.ci_high, first.p_value].map(f64::to_bits),
            [again.ci_low, again.ci_high, again.p_value].map(f64::to_bits)
        );
        let other = paired_test(&a, &b, None, &PairedTestOptions { seed: 12, ..o }).unwrap();
        assert_eq!(other.difference, first.difference, "the observed difference does not depend on the seed");
        assert_ne!((other.ci_low, other.ci_high), (first.ci_low, first.ci_high));
        // Monte Carlo error only: the two p-values agree closely.
        assert!((other.p_value - first.p_value).abs() < 0.05, "{first:?} {other:?}");
    }

    #[test]
    fn p_value_agrees_with_exact_enumeration_on_few_queries() {
        // 10 queries: all 1024 sign patterns can be enumerated; the Monte Carlo p-value must be close.
        let d = [0.3, -0.1, 0.25, 0.2, 0.05, 0.4, -0.05, 0.15, 0.1, 0.35];
        let observed: f64 = d.iter().sum::<f64>().abs();
        let exact = (0u32..1024)
            .filter(|bits| {
                let s: f64 = d.iter().enumerate().map(|(j, x)| if (bits >> j) & 1 == 1 { *x } else { -x }).sum();
                s.abs() >= observed * (1.0 - TIE_TOLERANCE)
            })
            .count() as f64
            / 1024.0;
        let zeros = [0.0; 10];
        let t = paired_test(&zeros, &d, None, &PairedTestOptions { resamples: 20_000, ..opts() }).unwrap();
        assert!((t.p_value - exact).abs() < 0.01, "Monte Carlo {} vs exact {exact}", t.p_value);
    }

    #[test]
    fn holm_matches_a_hand_computed_example() {
        // Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max so far 0.06.
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        assert!(adjusted.iter().zip(want).all(|(a, w)| (a - w).abs() < 1e-15), "{adjusted:?}");
        assert_eq!(holm(&[0.6, 0.5]), [1.0, 1.0], "capped at 1");
        assert_eq!(holm(&[0.2]), [0.2], "one comparison: unchanged");
        assert_eq!(holm(&[f64::NAN, 0.01]), [1.0, 0.02], "NaN counts as 1");
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn seeds_are_averaged_per_query_before_the_test() {
        let a = vec![vec![0.2, 0.4, 0.6], vec![0.4, 0.6, 0.8]];
        let b = vec![vec![0.5, 0.5, 0.5]];
        let mean = mean_over_seeds(&a).unwrap();
        assert!(mean.iter().zip([0.3, 0.5, 0.7]).all(|(m, w)| (m - w).abs() < 1e-15), "{mean:?}");
        let combined = combine_seeds(&a, &b, None, &opts()).unwrap();
        let direct = paired_test(&mean_over_seeds(&a).unwrap(), &[0.5, 0.5, 0.5], None, &opts()).unwrap();
        assert_eq!(combined, direct);
        let ragged = vec![vec![0.2, 0.4, 0.6], vec![0.4]];
        let err = combine_seeds(&ragged, &b, None, &opts()).unwrap_err().to_string();
        assert!(err.contains("A: seed 1 has 1 per-query values, seed 0 has 3"), "{err}");
        assert!(mean_over_seeds::<Vec<f64>>(&[]).is_err());
    }

    #[test]
    fn bad_inputs_are_named() {
        let o = opts();
        let msg = |r: Result<PairedComparison>| r.unwrap_err().to_string();
        assert!(msg(paired_test(&[1.0], &[1.0, 2.0], None, &o)).contains("A has 1 values, B has 2"));
        assert!(msg(paired_test(&[], &[], None, &o)).contains("no values"));
        assert!(msg(paired_test(&[1.0, f64::NAN], &[1.0, 2.0], None, &o)).contains("value 1 of A is NaN"));
        assert!(msg(paired_test(&[1.0], &[f64::INFINITY], None, &o)).contains("value 0 of B is inf"));
        assert!(msg(paired_test(&[1.0], &[1.0], Some(&[-1.0]), &o)).contains("weight 0 is -1"));
        assert!(msg(paired_test(&[1.0], &[1.0], Some(&[0.0]), &o)).contains("every weight is 0"));
        assert!(msg(paired_test(&[1.0], &[1.0], Some(&[1.0, 1.0]), &o)).contains("2 weights for 1 values"));
        assert!(msg(paired_test(&[1.0], &[1.0], None, &PairedTestOptions { resamples: 0, ..o })).contains("resamples"));
        assert!(msg(paired_test(&[1.0], &[1.0], None, &PairedTestOptions { confidence: 1.0, ..o })).contains("confidence"));
    }

    #[test]
    fn quantile_interpolates_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!([quantile(&v, 0.0), quantile(&v, 0.5), quantile(&v, 1.0), quantile(&v, 0.1)], [1.0, 3.0, 5.0, 1.4]);
    }
}
