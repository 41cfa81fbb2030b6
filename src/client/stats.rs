//! numpy's `mean`, `std`, `median` and `percentile`, to the last bit.
//!
//! The reference computes every latency statistic with numpy. numpy sums floats pairwise
//! (8 accumulators, blocks of 128) and interpolates percentiles with a two-sided lerp, so a
//! naive Rust sum or interpolation differs in the last digits; these follow numpy's
//! algorithms so the same samples give the same numbers.

/// numpy's pairwise summation (`pairwise_sum_DOUBLE`), as `np.add.reduce` uses it.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = -0.0;
        for x in a {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `np.mean(a)`; `np.mean(0)` (= 0.0) for an empty list, as the reference's `x or 0` does.
pub fn mean(a: &[f64]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    (0.0 + pairwise_sum(a)) / a.len() as f64
}

/// `np.std(a)` (population); 0.0 when empty.
pub fn std(a: &[f64]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    let m = mean(a);
    let sq: Vec<f64> = a.iter().map(|x| (x - m) * (x - m)).collect();
    ((0.0 + pairwise_sum(&sq)) / a.len() as f64).sqrt()
}

/// Sorted copy, for [`median_sorted`] and [`percentile_sorted`].
pub fn sorted(a: &[f64]) -> Vec<f64> {
    let mut v = a.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// `np.median` of sorted data; 0.0 when empty.
pub fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => s[n / 2],
        _ => (0.0 + s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// `np.percentile(a, p)` (method "linear") of sorted data; 0.0 when empty.
pub fn percentile_sorted(s: &[f64], p: f64) -> f64 {
    let n = s.len();
    if n == 0 {
        return 0.0;
    }
    let idx = (p / 100.0) * (n - 1) as f64;
    let lo = idx.floor();
    let t = idx - lo;
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (s[lo], s[hi]);
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values printed by numpy 2.4 for the same inputs.
    #[test]
    fn matches_numpy() {
        let a = [0.1, 0.2, 0.35, 1e-3, 7.25, 3.3, 0.0021, 5.5, 2.2, 9.9, 0.33];
        let s = sorted(&a);
        assert_eq!(mean(&a), 2.6484636363636365);
        assert_eq!(std(&a), 3.298428681625327);
        assert_eq!(median_sorted(&s), 0.35);
        assert_eq!(percentile_sorted(&s, 99.0), 9.635000000000002);
        assert_eq!(percentile_sorted(&s, 99.9), 9.873500000000005);
        assert_eq!(percentile_sorted(&s, 90.0), 7.25);
        let b: Vec<f64> = (0..300)
            .map(|i| 0.1 * i as f64 + 0.013 * (i % 7) as f64)
            .collect();
        let s = sorted(&b);
        assert_eq!(pairwise_sum(&b), 4496.661);
        assert_eq!(mean(&b), 14.98887);
        assert_eq!(std(&b), 8.66062131141679);
        assert_eq!(median_sorted(&s), 14.9825);
        assert_eq!(percentile_sorted(&s, 99.0), 29.62713);
        assert_eq!(percentile_sorted(&s, 99.9), 29.931213000000007);
        assert_eq!(percentile_sorted(&s, 90.0), 26.950300000000006);
        let s = [1.0, 2.0];
        assert_eq!((mean(&s), std(&s), median_sorted(&s)), (1.5, 0.5, 1.5));
        assert_eq!(percentile_sorted(&s, 99.0), 1.99);
        assert_eq!(percentile_sorted(&s, 99.9), 1.999);
        assert_eq!(
            (
                mean(&[]),
                std(&[]),
                median_sorted(&[]),
                percentile_sorted(&[], 99.0)
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
    }
}
