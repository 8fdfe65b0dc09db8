//! GELU's normal CDF on whole slices, bit for bit what `libm::erff` gives one element at a time.
//!
//! Why: libm's `erff` (FreeBSD's `s_erff.c` with its `e_expf.c`) branches on the argument's range,
//! so a loop over it runs one element at a time; in a Flex encoding that was 46% of all samples
//! (`perf`, AMD EPYC, docs/benchmarks.md), more than the matrix products. Here every case of
//! `erff` and `expf` is computed for every lane and each lane keeps its own with a select, in the
//! same f32 operations and order as libm (Rust never contracts a multiply and an add into an FMA,
//! and IEEE division is exact-rounded in SIMD as in scalar code). So a loop over
//! [`cdf_branchless`] vectorises, and its values equal libm's: the tests below compare every
//! 256th bit pattern plus ±64 ulps around each range boundary, and an ignored one all 2³² inputs
//! (0 differences; docs/benchmarks.md). `pulp` compiles the loops once per instruction set
//! (AVX-512, AVX2, baseline) and picks one at run time.

// The constants are spelled as libm spells them, so each one is the same f32 as libm's.
#![allow(clippy::excessive_precision)]

use pulp::{Arch, Simd, WithSimd};

/// Lanes per block: one AVX-512 register of f32 (two AVX2 registers).
const LANES: usize = 16;

const ERX: f32 = 8.4506291151e-01;
const EFX8: f32 = 1.0270333290e+00;
const PP: [f32; 5] = [1.2837916613e-01, -3.2504209876e-01, -2.8481749818e-02, -5.7702702470e-03, -2.3763017452e-05];
const QQ: [f32; 5] = [3.9791721106e-01, 6.5022252500e-02, 5.0813062117e-03, 1.3249473704e-04, -3.9602282413e-06];
const PA: [f32; 7] = [
    -2.3621185683e-03,
    4.1485610604e-01,
    -3.7220788002e-01,
    3.1834661961e-01,
    -1.1089469492e-01,
    3.5478305072e-02,
    -2.1663755178e-03,
];
const QA: [f32; 6] = [1.0642088205e-01, 5.4039794207e-01, 7.1828655899e-02, 1.2617121637e-01, 1.3637083583e-02, 1.1984500103e-02];
const RA: [f32; 8] = [
    -9.8649440333e-03,
    -6.9385856390e-01,
    -1.0558626175e+01,
    -6.2375331879e+01,
    -1.6239666748e+02,
    -1.8460508728e+02,
    -8.1287437439e+01,
    -9.8143291473e+00,
];
const SA: [f32; 8] = [
    1.9651271820e+01,
    1.3765776062e+02,
    4.3456588745e+02,
    6.4538726807e+02,
    4.2900814819e+02,
    1.0863500214e+02,
    6.5702495575e+00,
    -6.0424413532e-02,
];
const RB: [f32; 7] = [
    -9.8649431020e-03,
    -7.9928326607e-01,
    -1.7757955551e+01,
    -1.6063638306e+02,
    -6.3756646729e+02,
    -1.0250950928e+03,
    -4.8351919556e+02,
];
const SB: [f32; 7] = [3.0338060379e+01, 3.2579251099e+02, 1.5367296143e+03, 3.1998581543e+03, 2.5530502930e+03, 4.7452853394e+02, -2.2440952301e+01];

const LN2_HI: f32 = 6.9314575195e-01;
const LN2_LO: f32 = 1.4286067653e-06;
const INV_LN2: f32 = 1.4426950216e+00;
const EXP_P1: f32 = 1.6666625440e-1;
const EXP_P2: f32 = -2.7667332906e-3;

/// `c[0] + s·(c[1] + s·(… + s·c[n-1]))`, nested as libm writes it.
#[inline(always)]
fn horner<const N: usize>(s: f32, c: &[f32; N]) -> f32 {
    let mut acc = c[N - 1];
    for &coefficient in c[..N - 1].iter().rev() {
        acc = coefficient + s * acc;
    }
    acc
}

/// `1 + s·(c[0] + s·(c[1] + …))`: libm's denominators, whose constant term is 1.
#[inline(always)]
fn one_plus<const N: usize>(s: f32, c: &[f32; N]) -> f32 {
    1.0 + s * horner(s, c)
}

/// libm's `expf(x)` for `-87.3 < x < 88.7` (the only arguments `erfc2` passes for the lanes that
/// keep its value; other lanes get garbage that a select discards), without branches.
#[inline(always)]
fn expf_branchless(x: f32) -> f32 {
    let bits = x.to_bits();
    let negative = bits >> 31 != 0;
    let hx = bits & 0x7fff_ffff;
    // k stays a float: an `as i32` conversion (saturating in Rust) does not vectorise. Truncation
    // is what libm's `as i32` does to these in-range values.
    // |x| > 1.5 ln2: k = round(x / ln2); 0.5 ln2 < |x| <= 1.5 ln2: k = ±1.
    let half = if negative { -0.5 } else { 0.5 };
    let k_far = (INV_LN2 * x + half).trunc();
    let k_near = if negative { -1.0 } else { 1.0 };
    let k_reduced = if hx > 0x3f85_1592 { k_far } else { k_near };
    let reduce = hx > 0x3eb1_7218;
    let hi = if reduce { x - k_reduced * LN2_HI } else { x };
    let lo = if reduce { k_reduced * LN2_LO } else { 0.0 };
    let k = if reduce { k_reduced } else { 0.0 };
    let r = if reduce { hi - lo } else { x };
    let rr = r * r;
    let c = r - rr * (EXP_P1 + rr * EXP_P2);
    let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
    // scalbnf(y, k) for -126 <= k <= 127: a multiplication by the exact power of two whose
    // exponent field is 127 + k, read off the bits of 2^23 + 127 + k (integers there are exact).
    let biased = (k + 8_388_735.0).to_bits().wrapping_sub(0x4b00_0000);
    let scaled = y * f32::from_bits(biased << 23);
    // |x| <= 2^-14: libm returns 1 + x.
    if hx > 0x3900_0000 { scaled } else { 1.0 + x }
}

/// `libm::erff(x)` without branches.
#[inline(always)]
fn erff_branchless(x: f32) -> f32 {
    let bits = x.to_bits();
    let negative = bits >> 31 != 0;
    let ix = bits & 0x7fff_ffff;
    let ax = f32::from_bits(ix);

    // |x| < 2^-28.
    let tiny = 0.125 * (8.0 * x + EFX8 * x);
    // |x| < 0.84375.
    let z = x * x;
    let small = x + x * (horner(z, &PP) / one_plus(z, &QQ));
    // 0.84375 <= |x| < 1.25: erfc1.
    let s = ax - 1.0;
    let erfc1 = 1.0 - ERX - horner(s, &PA) / one_plus(s, &QA);
    // 1.25 <= |x| < 6: erfc2, with the coefficients of 1/0.35 <= |x| beyond 1/0.35.
    let s = 1.0 / (ax * ax);
    let near = ix < 0x4036_db6d;
    let r = if near { horner(s, &RA) } else { horner(s, &RB) };
    let big_s = if near { one_plus(s, &SA) } else { one_plus(s, &SB) };
    let zz = f32::from_bits(ix & 0xffff_e000);
    let erfc2 = expf_branchless(-zz * zz - 0.5625) * expf_branchless((zz - ax) * (zz + ax) + r / big_s) / ax;

    let erfc = if ix < 0x3fa0_0000 { erfc1 } else { erfc2 };
    let y = if ix < 0x40c0_0000 { 1.0 - erfc } else { 1.0 - f32::from_bits(0x0380_0000) };
    let large = if negative { -y } else { y };
    let finite = if ix < 0x3f58_0000 {
        if ix < 0x3180_0000 { tiny } else { small }
    } else {
        large
    };
    // erf(±inf) = ±1, erf(NaN) = NaN.
    let sign = if negative { 1.0 } else { 0.0 };
    if ix >= 0x7f80_0000 { 1.0 - 2.0 * sign + 1.0 / x } else { finite }
}

/// `P(X <= x)` for a standard normal `X`, as burn-flex's GELU writes it: `0.5·(1 + erf(x/√2))`.
#[inline(always)]
fn cdf_branchless(x: f32) -> f32 {
    0.5 * (1.0 + erff_branchless(x / core::f32::consts::SQRT_2))
}

/// The same CDF through `libm::erff` (one element; the reference the branch-free form matches).
fn cdf(x: f32) -> f32 {
    0.5 * (1.0 + libm::erff(x / core::f32::consts::SQRT_2))
}

/// `out[i] = f(x[i], cdf(x[i]), i)` for whole blocks of [`LANES`] values with the CDF vectorised,
/// and through [`cdf`] for the tail.
struct MapCdf<'a, F> {
    x: &'a [f32],
    out: &'a mut [f32],
    f: F,
}

impl<F: Fn(f32, f32, usize) -> f32> WithSimd for MapCdf<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let MapCdf { x, out, f } = self;
        let whole = x.len() / LANES * LANES;
        for (block, (xs, os)) in x[..whole].chunks_exact(LANES).zip(out[..whole].chunks_exact_mut(LANES)).enumerate() {
            let mut cdfs = [0.0f32; LANES];
            for (c, &v) in cdfs.iter_mut().zip(xs) {
                *c = cdf_branchless(v);
            }
            for (lane, ((o, &c), &v)) in os.iter_mut().zip(&cdfs).zip(xs).enumerate() {
                *o = f(v, c, block * LANES + lane);
            }
        }
        for i in whole..x.len() {
            out[i] = f(x[i], cdf(x[i]), i);
        }
    }
}

/// `out[i] = f(x[i], cdf(x[i]), i)`, bit for bit as with [`cdf`]; `x` and `out` have one length.
pub(crate) fn map_cdf(x: &[f32], out: &mut [f32], f: impl Fn(f32, f32, usize) -> f32) {
    assert_eq!(x.len(), out.len(), "map_cdf: input and output lengths differ");
    Arch::new().dispatch(MapCdf { x, out, f });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `erff` through the branch-free path for each value, vectorised as in [`map_cdf`].
    fn erff_slice(x: &[f32], out: &mut [f32]) {
        struct Erf<'a>(&'a [f32], &'a mut [f32]);
        impl WithSimd for Erf<'_> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, _simd: S) {
                for (o, &v) in self.1.iter_mut().zip(self.0) {
                    *o = erff_branchless(v);
                }
            }
        }
        Arch::new().dispatch(Erf(x, out));
    }

    /// Inputs whose libm value differs from the branch-free one, as (input bits, libm, ours).
    fn mismatches(bits: impl Iterator<Item = u32>) -> Vec<(u32, f32, f32)> {
        let x: Vec<f32> = bits.map(f32::from_bits).collect();
        let mut ours = vec![0.0f32; x.len()];
        erff_slice(&x, &mut ours);
        x.iter()
            .zip(&ours)
            .filter(|&(&v, &o)| libm::erff(v).to_bits() != o.to_bits())
            .map(|(&v, &o)| (v.to_bits(), libm::erff(v), o))
            .collect()
    }

    #[test]
    fn erff_equals_libm_on_every_256th_bit_pattern_and_every_range_boundary() {
        let sampled = mismatches((0..=u32::MAX >> 8).map(|i| i << 8 | (i & 0xff)));
        assert!(sampled.is_empty(), "{} of 2^24 inputs differ, first {:?}", sampled.len(), &sampled[..sampled.len().min(5)]);
        // The thresholds of erff's and expf's cases (on |x|), each ±64 ulps, both signs.
        let edges = [0x3180_0000u32, 0x3f58_0000, 0x3fa0_0000, 0x4036_db6d, 0x40c0_0000, 0x7f80_0000, 0x3f85_1592, 0x3eb1_7218];
        let near = edges.iter().flat_map(|&e| (e - 64..=e.saturating_add(64)).flat_map(|b| [b, b | 0x8000_0000]));
        let near = mismatches(near);
        assert!(near.is_empty(), "inputs near a case boundary differ: {:?}", &near[..near.len().min(5)]);
    }

    /// All 2^32 inputs (about a minute on two cores in a test build): run by hand with
    /// `cargo test -p hybrid-ir-model --lib erf -- --ignored`.
    #[test]
    #[ignore]
    fn erff_equals_libm_on_every_f32() {
        let chunks = 1u64 << 8;
        let step = (1u64 << 32) / chunks;
        let differing: usize = (0..chunks)
            .map(|c| mismatches((c * step..(c + 1) * step).map(|b| b as u32)).len())
            .sum();
        assert_eq!(differing, 0);
    }

    #[test]
    fn map_cdf_equals_the_scalar_cdf_on_blocks_and_the_tail() {
        // 16·40 + 7 values: whole blocks through the branch-free path and a 7-value scalar tail.
        let x: Vec<f32> = (0..647).map(|i| (i as f32 - 323.0) * 0.021 + 1e-3 * (i % 7) as f32).collect();
        let mut out = vec![0.0f32; x.len()];
        map_cdf(&x, &mut out, |v, c, _| v * c);
        for (&v, &o) in x.iter().zip(&out) {
            assert_eq!(o.to_bits(), (v * cdf(v)).to_bits(), "gelu({v})");
        }
        let mut index = vec![0.0f32; x.len()];
        map_cdf(&x, &mut index, |_, _, i| i as f32);
        assert!(index.iter().enumerate().all(|(i, &v)| v == i as f32), "map_cdf passes each value's own index");
    }
}
