//! Python's `statistics.mean` / `statistics.pstdev` and InferenceX's `percentile`, to the
//! last bit.
//!
//! Why exact arithmetic: CPython computes `mean` and `pstdev` over floats with exact
//! rationals (every float is a dyadic fraction) and rounds once at the end — `pstdev`
//! through a correctly rounded square root of the exact variance. A naive `Σx/n` differs in
//! the last bit now and then, and after InferenceX's 5-decimal rounding that can still
//! flip a printed digit. Here every float becomes `m·2^-s` with a big integer `m`, sums are
//! exact, and the final conversion rounds half to even exactly as CPython's
//! `int / int` does.

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{Signed, Zero};

/// A float as `num / 2^shift`, exactly.
fn exact(x: f64) -> (BigInt, u32) {
    debug_assert!(x.is_finite());
    if x == 0.0 {
        return (BigInt::zero(), 0);
    }
    let bits = x.to_bits();
    let sign = if bits >> 63 == 1 {
        Sign::Minus
    } else {
        Sign::Plus
    };
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let m = BigInt::from_biguint(sign, BigUint::from(mant));
    if e >= 0 {
        (m << e as usize, 0)
    } else {
        (m, (-e) as u32)
    }
}

/// `Σ x` and `Σ x²` of finite floats, exactly, as numerators over `2^shift` and `2^(2·shift)`.
fn exact_sums(values: &[f64]) -> (BigInt, BigInt, u32) {
    let parts: Vec<(BigInt, u32)> = values.iter().map(|&v| exact(v)).collect();
    let shift = parts.iter().map(|p| p.1).max().unwrap_or(0);
    let mut sx = BigInt::zero();
    let mut sxx = BigInt::zero();
    for (m, s) in parts {
        let m = m << (shift - s) as usize;
        sxx += &m * &m;
        sx += m;
    }
    (sx, sxx, shift)
}

/// `float(p / q)` for big integers, rounded half to even like CPython's true division.
pub fn ratio_to_f64(p: &BigInt, q: &BigUint) -> f64 {
    assert!(!q.is_zero(), "division by zero");
    if p.is_zero() {
        return 0.0;
    }
    let neg = p.is_negative();
    let p = p.magnitude();
    // Scale so the integer quotient has at least 55 significant bits.
    let k = p.bits() as i64 - q.bits() as i64;
    let s = 55 - k;
    let (num, den) = if s >= 0 {
        (p << s as usize, q.clone())
    } else {
        (p.clone(), q << (-s) as usize)
    };
    let (quot, rem) = (&num / &den, &num % &den);
    let sticky = !rem.is_zero();
    let extra = quot.bits() as i64 - 53;
    debug_assert!(extra >= 2);
    let mant: BigUint = &quot >> extra as usize;
    let low: BigUint = &quot - (&mant << extra as usize);
    let half = BigUint::from(1u8) << (extra - 1) as usize;
    let mut m = u64::try_from(&mant).expect("53-bit mantissa");
    if low > half || (low == half && (sticky || m & 1 == 1)) {
        m += 1;
    }
    let v = ldexp(m as f64, extra - s);
    if neg {
        -v
    } else {
        v
    }
}

/// `x · 2^e` for normal results.
fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

/// `statistics.mean` of floats (0.0 for an empty slice; callers never pass one).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let (sx, _, shift) = exact_sums(values);
    let den = BigUint::from(values.len()) << shift as usize;
    ratio_to_f64(&sx, &den)
}

/// `statistics.mean` of ints: an int when the mean is whole, else the rounded float.
pub fn mean_ints(values: &[i64]) -> MeanOfInts {
    let sum: i128 = values.iter().map(|&v| v as i128).sum();
    let n = values.len() as i128;
    if n > 0 && sum % n == 0 {
        MeanOfInts::Int((sum / n) as i64)
    } else {
        MeanOfInts::Float(ratio_to_f64(
            &BigInt::from(sum),
            &BigUint::from(values.len()),
        ))
    }
}

/// What `statistics.mean` returns for a list of ints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MeanOfInts {
    /// The mean is a whole number (Python returns an `int`).
    Int(i64),
    /// Otherwise the correctly rounded float.
    Float(f64),
}

/// `statistics.pstdev` (population standard deviation) of floats, correctly rounded.
pub fn pstdev(values: &[f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let (sx, sxx, shift) = exact_sums(values);
    // Variance = (n·Σx² − (Σx)²) / n², over 2^(2·shift).
    let num = BigInt::from(n) * sxx - &sx * &sx;
    let den = (BigUint::from(n) * BigUint::from(n)) << (2 * shift) as usize;
    let num = num.magnitude().clone();
    float_sqrt_of_frac(&num, &den)
}

/// CPython's `_float_sqrt_of_frac`: `sqrt(n/m)` correctly rounded, via round-to-odd.
fn float_sqrt_of_frac(n: &BigUint, m: &BigUint) -> f64 {
    if n.is_zero() {
        return 0.0;
    }
    const SQRT_BIT_WIDTH: i64 = 2 * 53 + 3;
    let q = (n.bits() as i64 - m.bits() as i64 - SQRT_BIT_WIDTH).div_euclid(2);
    let (numerator, denominator) = if q >= 0 {
        (
            isqrt_frac_rto(n, &(m << (2 * q) as usize)) << q as usize,
            BigUint::from(1u8),
        )
    } else {
        (
            isqrt_frac_rto(&(n << (-2 * q) as usize), m),
            BigUint::from(1u8) << (-q) as usize,
        )
    };
    ratio_to_f64(&BigInt::from(numerator), &denominator)
}

/// `isqrt(n // m)` with its last bit set when inexact (round to odd).
fn isqrt_frac_rto(n: &BigUint, m: &BigUint) -> BigUint {
    let a = (n / m).sqrt();
    if &a * &a * m != *n {
        a | BigUint::from(1u8)
    } else {
        a
    }
}

/// InferenceX's `percentile(data, p)`: linear interpolation at `k = (n−1)·p/100`, in the
/// same float operations (0.0 for empty data).
pub fn percentile(sorted: &[f64], p: u32) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = (sorted.len() - 1) as f64 * (p as f64 / 100.0);
    let f = k as usize;
    let c = f + 1;
    if c >= sorted.len() {
        return sorted[f];
    }
    sorted[f] + (k - f as f64) * (sorted[c] - sorted[f])
}

/// Python's `round(x, 5)`: the exact value rounded half to even at 5 decimals.
pub fn round5(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.5}").parse().expect("formatted float parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by CPython 3.11 (`statistics.mean`, `statistics.pstdev`, `round`).
    #[test]
    fn matches_cpython() {
        let v = [0.1, 0.2, 0.3, 1e-9, 12345.678];
        assert_eq!(mean(&v), 2469.2556000002);
        assert_eq!(pstdev(&v), 4938.211201012412);
        assert_eq!(mean(&[0.1, 0.2]), 0.15000000000000002);
        assert_eq!(pstdev(&[1.0, 1.0, 1.0]), 0.0);
        assert_eq!(pstdev(&[18.0, 18.5, 17.5, 19.0, 18.2]), 0.5003998401278722);
        assert_eq!(
            mean_ints(&[100, 180, 120]),
            MeanOfInts::Float(133.33333333333334)
        );
        assert_eq!(mean_ints(&[100, 200]), MeanOfInts::Int(150));
        assert_eq!(round5(0.015625), 0.01562);
        assert_eq!(round5(1.000005), 1.00001);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 75), 3.25);
        assert_eq!(percentile(&[5.0], 95), 5.0);
    }
}
