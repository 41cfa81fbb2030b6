//! 95 % confidence intervals for a point's headline figures, so a verdict says how sure it
//! is, not only which side of the line a single run landed on.
//!
//! **Within one trial** (one run of the load phase) the unit of sampling is the request:
//! the interval comes from a bootstrap over the trial's successful requests
//! ([`bootstrap`]): `resamples` (default [`DEFAULT_RESAMPLES`] = 2000) resamples of n
//! requests drawn with replacement, the statistic recomputed on each, and the percentile
//! method (the 2.5th and 97.5th percentiles of the resampled statistics, numpy's "linear"
//! interpolation). The resampling is deterministic: a SplitMix64 generator seeded with
//! `seed` (the job's dataset seed), an index drawn as `(u64 × n) >> 64`. Where every
//! possible resample can be enumerated (nⁿ ≤ resamples, i.e. n ≤ 4 at 2000) the exact
//! bootstrap distribution is used instead of random draws.
//!
//! * median TTFT, TPOT and E2E latency: the numpy median of the resample (TPOT only over
//!   requests with more than one output token, as the client computes it);
//! * throughput: the trial's reported figure scaled by the resample's ratio
//!   `Σ tokens / Σ e2e latency` over the full sample's ratio. In a closed loop at fixed
//!   concurrency, throughput ≈ conc × Σ tokens / Σ latency (Little's law), so the ratio
//!   carries the request-to-request variation of both output lengths and latencies, and the
//!   bootstrap distribution is centred on the reported number (which stays the estimate).
//!   Output throughput uses output tokens; total throughput (and so `tput_per_gpu`) input
//!   plus output tokens.
//!
//! **Across trials** (`runner batch --repeat N`, N > 1) the point's figure is the mean of
//! the trials' figures, and its interval is the hull of two: Student's t-interval over the
//! N trial figures (mean ± t₀.₉₇₅,N−1 · s/√N — run-to-run variation, which no single run
//! shows) and the pooled within-trial bootstrap (the mean over trials of each trial's b-th
//! resampled statistic — request sampling noise). With few trials the t-interval is wide
//! (N = 2: t = 12.71), which is the honest answer; the hull keeps two trials that happen to
//! agree from claiming more certainty than their requests support.
//!
//! A percentile (p99, p90, …) the client reports rests on few requests when the sample is
//! small: p99 of 40 requests is the largest request. [`percentile_warnings`] says so for
//! every reported percentile with fewer than [`MIN_PERCENTILE_REQUESTS`] requests.

use crate::client::stats::{median_sorted, percentile_sorted, sorted};
use serde::{Deserialize, Serialize};

/// Resamples per bootstrap.
pub const DEFAULT_RESAMPLES: u32 = 2000;
/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;
/// A reported percentile resting on fewer requests than this gets a warning.
pub const MIN_PERCENTILE_REQUESTS: usize = 100;

/// One figure with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The point estimate (the reported figure; the mean over trials for N > 1).
    pub estimate: f64,
    /// Lower bound of the 95 % interval.
    pub lo: f64,
    /// Upper bound of the 95 % interval.
    pub hi: f64,
}

impl Interval {
    /// The interval scaled by a positive factor (e.g. per GPU).
    pub fn scaled(self, f: f64) -> Interval {
        Interval {
            estimate: self.estimate * f,
            lo: self.lo * f,
            hi: self.hi * f,
        }
    }

    /// `1000 / x` of a TPOT interval (ms) gives the interactivity interval, bounds swapped.
    pub fn reciprocal_1000(self) -> Option<Interval> {
        (self.lo > 0.0 && self.estimate > 0.0).then(|| Interval {
            estimate: 1000.0 / self.estimate,
            lo: 1000.0 / self.hi,
            hi: 1000.0 / self.lo,
        })
    }

    /// Half the width relative to the estimate (0.05 = ±5 %).
    pub fn rel_half_width(&self) -> f64 {
        if self.estimate == 0.0 {
            0.0
        } else {
            (self.hi - self.lo) / 2.0 / self.estimate.abs()
        }
    }
}

/// The confidence record of an agg row (`agg.json` key `confidence`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    /// Confidence level (0.95).
    pub level: f64,
    /// How the intervals were computed, in words.
    pub method: String,
    /// Bootstrap resamples per trial.
    pub resamples: u32,
    /// Seed of the resampling generator (the job's dataset seed).
    pub seed: u64,
    /// Trials the point combines (1 for a single run).
    pub trials: u32,
    /// Successful requests the figures rest on, per trial.
    pub requests: Vec<usize>,
    /// Median TTFT (ms).
    pub median_ttft_ms: Option<Interval>,
    /// Median TPOT (ms).
    pub median_tpot_ms: Option<Interval>,
    /// Median interactivity (tok/s/user) = 1000 / the median TPOT interval.
    pub median_intvty: Option<Interval>,
    /// Median end-to-end latency (ms).
    pub median_e2el_ms: Option<Interval>,
    /// Output token throughput (tok/s, whole job).
    pub output_throughput: Option<Interval>,
    /// Output token throughput per GPU.
    pub output_tput_per_gpu: Option<Interval>,
    /// Total token throughput per GPU (the verdict's y).
    pub tput_per_gpu: Option<Interval>,
    /// Percentiles that rest on fewer than 100 requests, and other caveats, in words.
    #[serde(default)]
    pub warnings: Vec<String>,
}

pub use crate::client::result::RequestSample;

/// SplitMix64: small, fast, and reproducible in any language from its seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in `0..n` (multiply-shift; the bias is below n / 2⁶⁴).
    pub fn index(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The resampled statistic's values: `resamples` random resamples of `0..n` (indices drawn
/// with replacement), or all nⁿ resamples when that is not more. Each resample is passed
/// to `stat` as a list of indices. Empty when n = 0.
pub fn bootstrap_values(
    n: usize,
    resamples: u32,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> f64,
) -> Vec<f64> {
    if n == 0 || resamples == 0 {
        return vec![];
    }
    let exhaustive = (n as f64).powi(n as i32) <= f64::from(resamples);
    let mut idx = vec![0usize; n];
    let mut out = Vec::new();
    if exhaustive {
        let total = n.pow(n as u32);
        out.reserve(total);
        for k in 0..total {
            let mut r = k;
            for slot in idx.iter_mut() {
                *slot = r % n;
                r /= n;
            }
            out.push(stat(&idx));
        }
    } else {
        let mut rng = SplitMix64::new(seed);
        out.reserve(resamples as usize);
        for _ in 0..resamples {
            for slot in idx.iter_mut() {
                *slot = rng.index(n);
            }
            out.push(stat(&idx));
        }
    }
    out
}

/// The percentile interval of bootstrap values at [`LEVEL`] (numpy "linear" percentiles of
/// the values); `None` when there are none.
pub fn percentile_interval(values: &[f64], estimate: f64) -> Option<Interval> {
    if values.is_empty() {
        return None;
    }
    let s = sorted(values);
    let tail = (1.0 - LEVEL) / 2.0 * 100.0;
    Some(Interval {
        estimate,
        lo: percentile_sorted(&s, tail),
        hi: percentile_sorted(&s, 100.0 - tail),
    })
}

/// Bootstrap percentile interval of a statistic of `samples`; the estimate is the statistic
/// of the full sample.
pub fn bootstrap(
    samples: &[f64],
    resamples: u32,
    seed: u64,
    stat: impl Fn(&[f64]) -> f64,
) -> Option<Interval> {
    let mut buf = Vec::with_capacity(samples.len());
    let values = bootstrap_values(samples.len(), resamples, seed, |idx| {
        buf.clear();
        buf.extend(idx.iter().map(|&i| samples[i]));
        stat(&buf)
    });
    percentile_interval(&values, stat(samples))
}

/// numpy's median of unsorted data (0 when empty).
pub fn median(a: &[f64]) -> f64 {
    median_sorted(&sorted(a))
}

/// [`median`] by selection instead of a full sort (reorders `a`): the same value, in O(n)
/// per resample.
pub fn median_in_place(a: &mut [f64]) -> f64 {
    let n = a.len();
    if n == 0 {
        return 0.0;
    }
    let (left, mid, _) = a.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *mid;
    if n % 2 == 1 {
        return hi;
    }
    let lo = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (0.0 + lo + hi) / 2.0
}

/// A figure's full-sample estimate and its resampled values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resampled {
    /// The statistic of the full sample.
    pub estimate: f64,
    /// The statistic of each resample, in resample order.
    pub values: Vec<f64>,
}

/// The bootstrap distributions of one trial: per figure, the resampled values (index b of
/// every figure comes from the same resample b) and the full-sample estimate.
#[derive(Debug, Clone, Default)]
pub struct TrialBootstrap {
    /// Successful requests of the trial.
    pub requests: usize,
    /// Median TTFT (ms): estimate and resampled values.
    pub ttft_ms: Option<Resampled>,
    /// Median TPOT (ms).
    pub tpot_ms: Option<Resampled>,
    /// Median E2E latency (ms).
    pub e2el_ms: Option<Resampled>,
    /// Output throughput (tok/s).
    pub output_tput: Option<Resampled>,
    /// Total token throughput (tok/s).
    pub total_tput: Option<Resampled>,
}

/// Bootstrap one trial's requests. `output_tput` and `total_tput` are the trial's reported
/// throughputs (tok/s), which the ratio estimator scales (see the module doc).
pub fn trial_bootstrap(
    reqs: &[RequestSample],
    output_tput: f64,
    total_tput: f64,
    resamples: u32,
    seed: u64,
) -> TrialBootstrap {
    let n = reqs.len();
    if n == 0 {
        return TrialBootstrap::default();
    }
    let ttft: Vec<f64> = reqs.iter().map(|r| r.ttft_s * 1000.0).collect();
    let e2el: Vec<f64> = reqs.iter().map(|r| r.e2el_s * 1000.0).collect();
    let tpot: Vec<Option<f64>> = reqs
        .iter()
        .map(|r| r.tpot_s().map(|t| t * 1000.0))
        .collect();
    let out_tok: Vec<f64> = reqs.iter().map(|r| r.output_tokens as f64).collect();
    let all_tok: Vec<f64> = reqs
        .iter()
        .map(|r| (r.input_tokens + r.output_tokens) as f64)
        .collect();
    let lat_sum: f64 = reqs.iter().map(|r| r.e2el_s).sum();
    let ratio = |tok: &[f64], idx: Option<&[usize]>| -> f64 {
        let (t, l) = match idx {
            Some(idx) => idx
                .iter()
                .fold((0.0, 0.0), |(t, l), &i| (t + tok[i], l + reqs[i].e2el_s)),
            None => (tok.iter().sum(), lat_sum),
        };
        if l > 0.0 {
            t / l
        } else {
            0.0
        }
    };
    let (r_out, r_all) = (ratio(&out_tok, None), ratio(&all_tok, None));
    let mut v = [vec![], vec![], vec![], vec![], vec![]];
    let mut buf = Vec::with_capacity(n);
    let med = |buf: &mut Vec<f64>, src: &[f64], idx: &[usize]| {
        buf.clear();
        buf.extend(idx.iter().map(|&i| src[i]));
        median_in_place(buf)
    };
    let _ = bootstrap_values(n, resamples, seed, |idx| {
        v[0].push(med(&mut buf, &ttft, idx));
        v[1].push(med(&mut buf, &e2el, idx));
        buf.clear();
        buf.extend(idx.iter().filter_map(|&i| tpot[i]));
        v[2].push(if buf.is_empty() {
            f64::NAN
        } else {
            median_in_place(&mut buf)
        });
        if r_out > 0.0 {
            v[3].push(output_tput * ratio(&out_tok, Some(idx)) / r_out);
        }
        if r_all > 0.0 {
            v[4].push(total_tput * ratio(&all_tok, Some(idx)) / r_all);
        }
        0.0
    });
    let [v_ttft, v_e2el, v_tpot, v_out, v_all] = v;
    let tpots: Vec<f64> = tpot.iter().flatten().copied().collect();
    // A resample of only one-token requests has no TPOT: drop those values.
    let v_tpot: Vec<f64> = v_tpot.into_iter().filter(|x| !x.is_nan()).collect();
    TrialBootstrap {
        requests: n,
        ttft_ms: Some(Resampled {
            estimate: median(&ttft),
            values: v_ttft,
        }),
        e2el_ms: Some(Resampled {
            estimate: median(&e2el),
            values: v_e2el,
        }),
        tpot_ms: (!tpots.is_empty()).then(|| Resampled {
            estimate: median(&tpots),
            values: v_tpot,
        }),
        output_tput: (r_out > 0.0).then_some(Resampled {
            estimate: output_tput,
            values: v_out,
        }),
        total_tput: (r_all > 0.0).then_some(Resampled {
            estimate: total_tput,
            values: v_all,
        }),
    }
}

/// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom (df ≥ 1).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        31..=40 => 2.021,
        41..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

/// Student's t-interval of the mean of `xs` (N ≥ 2).
pub fn t_interval(xs: &[f64]) -> Option<Interval> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    Some(Interval {
        estimate: mean,
        lo: mean - half,
        hi: mean + half,
    })
}

/// Combine one figure over trials: for one trial its bootstrap interval; for several the
/// mean of the trial estimates with the hull of the t-interval and the pooled bootstrap.
pub fn combine(trials: &[Option<&Resampled>]) -> Option<Interval> {
    let got: Vec<&Resampled> = trials.iter().copied().collect::<Option<Vec<_>>>()?;
    match got.as_slice() {
        [] => None,
        [one] => percentile_interval(&one.values, one.estimate),
        many => {
            let ests: Vec<f64> = many.iter().map(|t| t.estimate).collect();
            let t = t_interval(&ests)?;
            let b = many.iter().map(|t| t.values.len()).min().unwrap_or(0);
            let pooled: Vec<f64> = (0..b)
                .map(|i| many.iter().map(|t| t.values[i]).sum::<f64>() / many.len() as f64)
                .collect();
            Some(match percentile_interval(&pooled, t.estimate) {
                Some(p) => Interval {
                    estimate: t.estimate,
                    lo: t.lo.min(p.lo),
                    hi: t.hi.max(p.hi),
                },
                None => t,
            })
        }
    }
}

/// The confidence record of a point from its trials' bootstraps. `num_gpus` turns
/// throughput into throughput per GPU, as the agg row does.
pub fn confidence(
    trials: &[TrialBootstrap],
    num_gpus: f64,
    resamples: u32,
    seed: u64,
) -> Confidence {
    let pick = |f: fn(&TrialBootstrap) -> &Option<Resampled>| {
        combine(&trials.iter().map(|t| f(t).as_ref()).collect::<Vec<_>>())
    };
    let tpot = pick(|t| &t.tpot_ms);
    let out = pick(|t| &t.output_tput);
    let total = pick(|t| &t.total_tput);
    let n = trials.len() as u32;
    let method = if n > 1 {
        format!(
            "mean of {n} trials; hull of Student's t-interval over the trial figures and the pooled bootstrap over requests ({resamples} resamples per trial, percentile method, seed {seed})"
        )
    } else {
        format!(
            "bootstrap over the requests ({resamples} resamples, percentile method, seed {seed}); throughput by the Σ tokens / Σ latency ratio estimator"
        )
    };
    Confidence {
        level: LEVEL,
        method,
        resamples,
        seed,
        trials: n,
        requests: trials.iter().map(|t| t.requests).collect(),
        median_ttft_ms: pick(|t| &t.ttft_ms),
        median_intvty: tpot.and_then(Interval::reciprocal_1000),
        median_tpot_ms: tpot,
        median_e2el_ms: pick(|t| &t.e2el_ms),
        output_tput_per_gpu: out.map(|i| i.scaled(1.0 / num_gpus)),
        output_throughput: out,
        tput_per_gpu: total.map(|i| i.scaled(1.0 / num_gpus)),
        warnings: vec![],
    }
}

/// Warnings for reported percentiles (`p99_ttft_ms`, `p90_tpot_ms`, …) that rest on fewer
/// than [`MIN_PERCENTILE_REQUESTS`] requests: `keys` are the agg row's metric keys, `n` the
/// successful requests of one trial. ITL percentiles are left out: their samples are the
/// gaps between tokens, thousands per request.
pub fn percentile_warnings<'a>(keys: impl Iterator<Item = &'a str>, n: usize) -> Vec<String> {
    if n >= MIN_PERCENTILE_REQUESTS {
        return vec![];
    }
    let (mut ps, mut stats): (Vec<(f64, String)>, Vec<String>) = (vec![], vec![]);
    for k in keys {
        let Some((p, stat)) = k
            .strip_suffix("_ms")
            .and_then(|k| k.split_once('_'))
            .and_then(|(p, stat)| Some((p.strip_prefix('p')?, stat)))
        else {
            continue;
        };
        let Ok(v) = p.parse::<f64>() else { continue };
        if v <= 50.0 || stat == "itl" {
            continue;
        }
        if !ps.iter().any(|(x, _)| *x == v) {
            ps.push((v, format!("p{p}")));
        }
        if !stats.iter().any(|s| s == stat) {
            stats.push(stat.to_string());
        }
    }
    if ps.is_empty() {
        return vec![];
    }
    ps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let names: Vec<String> = ps.into_iter().map(|(_, n)| n).collect();
    vec![format!(
        "{} of {} rest on {n} requests per run (fewer than {MIN_PERCENTILE_REQUESTS}): such a tail figure is set by the largest one or two requests; raise --prompts-multiplier before trusting it",
        names.join(", "),
        stats.join(", ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
    }

    fn mean(a: &[f64]) -> f64 {
        a.iter().sum::<f64>() / a.len() as f64
    }

    #[test]
    fn splitmix_matches_the_published_sequence() {
        // SplitMix64 seeded with 1234567 (Vigna's splitmix64.c; also the Python below).
        let mut r = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn median_by_selection_equals_numpy_median() {
        for n in [1usize, 2, 3, 10, 11, 101] {
            let xs = skewed(n);
            let mut ys = xs.clone();
            assert_eq!(median_in_place(&mut ys), median(&xs), "n {n}");
        }
        assert_eq!(median_in_place(&mut []), 0.0);
    }

    #[test]
    fn exact_bootstrap_of_three_values_by_hand() {
        // n = 3: all 27 resamples of [1, 2, 4] (27 ≤ 2000). Means sorted: 1, then three of
        // 4/3 ({1,1,2}), …, three of 10/3 ({2,4,4}), then 4. numpy "linear" percentiles of
        // 27 values: 2.5 % at index 0.65 → 1 + 0.65 × (4/3 − 1) = 1.21667; 97.5 % at 25.35 →
        // 10/3 + 0.35 × (4 − 10/3) = 3.56667.
        let i = bootstrap(&[1.0, 2.0, 4.0], 2000, 99, mean).unwrap();
        close(i.estimate, 7.0 / 3.0);
        close(i.lo, 1.0 + 0.65 / 3.0);
        close(i.hi, 10.0 / 3.0 + 0.35 * 2.0 / 3.0);
        // Medians: seven 1s (two or three draws of 1), thirteen 2s, seven 4s → [1, 4].
        let m = bootstrap(&[1.0, 2.0, 4.0], 2000, 99, median).unwrap();
        assert_eq!((m.estimate, m.lo, m.hi), (2.0, 1.0, 4.0));
        // The seed plays no part in an exact bootstrap.
        assert_eq!(bootstrap(&[1.0, 2.0, 4.0], 2000, 1, median), Some(m));
    }

    #[test]
    fn random_bootstrap_matches_an_independent_implementation() {
        // tests/fixtures/report/bootstrap/crosscheck.py (numpy) with the same generator,
        // seed 7, 2000 resamples; its output is crosscheck.out next to it.
        let xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let m = bootstrap(&xs, 2000, 7, median).unwrap();
        assert_eq!((m.estimate, m.lo), (3.5, 2.0));
        close(m.hi, 5.012499999999932);
        let a = bootstrap(&xs, 2000, 7, mean).unwrap();
        close(a.estimate, 3.9);
        close(a.lo, 2.6);
        close(a.hi, 5.302499999999986);
        // Same seed, same interval; another seed, another one.
        assert_eq!(bootstrap(&xs, 2000, 7, median), Some(m));
        assert_ne!(bootstrap(&xs, 2000, 8, mean), Some(a));
    }

    /// A skewed sample of n values (a fixed LCG, no randomness in the test).
    fn skewed(n: usize) -> Vec<f64> {
        let mut s = 12345u64;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                -(1.0 - u).ln() * 100.0
            })
            .collect()
    }

    #[test]
    fn intervals_contain_the_estimate_and_narrow_with_n() {
        let mut last = f64::INFINITY;
        for n in [25, 100, 400, 1600] {
            let xs = skewed(n);
            let i = bootstrap(&xs, 2000, 0, median).unwrap();
            assert!(i.lo <= i.estimate && i.estimate <= i.hi, "n {n}: {i:?}");
            let w = i.hi - i.lo;
            assert!(w < last, "n {n}: width {w} not below {last}");
            last = w;
        }
        // A constant sample has a zero-width interval.
        let c = bootstrap(&[5.0; 50], 2000, 0, median).unwrap();
        assert_eq!((c.lo, c.hi), (5.0, 5.0));
        assert_eq!(bootstrap(&[], 2000, 0, median), None);
    }

    #[test]
    fn t_interval_and_trial_combination_by_hand() {
        // [10, 12]: mean 11, s = √2, half = t(0.975, 1) × s / √2 = 12.706.
        let t = t_interval(&[10.0, 12.0]).unwrap();
        close(t.estimate, 11.0);
        close(t.lo, 11.0 - 12.706);
        close(t.hi, 11.0 + 12.706);
        assert_eq!(t_interval(&[1.0]), None);
        // Two trials agreeing exactly: the t-interval is a point, the pooled bootstrap
        // (mean of each trial's b-th value) keeps the request noise: resamples 8, 10, 12
        // and 10, 10, 10 pool to 9, 10, 11 → percentiles 9.05 and 10.95.
        let a = Resampled {
            estimate: 10.0,
            values: vec![8.0, 10.0, 12.0],
        };
        let b = Resampled {
            estimate: 10.0,
            values: vec![10.0, 10.0, 10.0],
        };
        let c = combine(&[Some(&a), Some(&b)]).unwrap();
        close(c.estimate, 10.0);
        close(c.lo, 9.05);
        close(c.hi, 10.95);
        // Disagreeing trials: the t-interval is wider and wins.
        let d = Resampled {
            estimate: 14.0,
            values: vec![14.0; 3],
        };
        let c = combine(&[Some(&a), Some(&d)]).unwrap();
        close(c.estimate, 12.0);
        close(c.lo, 12.0 - 12.706 * 2.0);
        // A trial without the figure: no combined interval.
        assert_eq!(combine(&[Some(&a), None]), None);
    }

    #[test]
    fn trial_bootstrap_throughput_is_centred_on_the_reported_figure() {
        let req = |ttft: f64, e2el: f64, out: u64| RequestSample {
            ttft_s: ttft,
            e2el_s: e2el,
            input_tokens: 100,
            output_tokens: out,
        };
        // Identical requests: every resample has the same Σ tokens / Σ latency, so the
        // throughput intervals collapse to the reported figures.
        let same = vec![req(0.1, 1.1, 101); 30];
        let tb = trial_bootstrap(&same, 500.0, 1000.0, 2000, 0);
        let ci = confidence(&[tb], 8.0, 2000, 0);
        let o = ci.output_throughput.unwrap();
        assert_eq!((o.estimate, o.lo, o.hi), (500.0, 500.0, 500.0));
        close(ci.tput_per_gpu.unwrap().hi, 125.0);
        // TPOT = (1.1 − 0.1) / 100 s = 10 ms; interactivity 100 tok/s/user.
        close(ci.median_tpot_ms.unwrap().estimate, 10.0);
        close(ci.median_intvty.unwrap().estimate, 100.0);
        assert_eq!(ci.requests, [30]);
        // Varying latencies widen the throughput interval around the reported figure.
        let mixed: Vec<RequestSample> = (0..60)
            .map(|i| req(0.1, 1.0 + (i % 7) as f64 * 0.1, 101))
            .collect();
        let tb = trial_bootstrap(&mixed, 500.0, 1000.0, 2000, 0);
        let ci = confidence(&[tb], 1.0, 2000, 0);
        let o = ci.output_throughput.unwrap();
        assert!(o.lo < 500.0 && 500.0 < o.hi, "{o:?}");
        let tpot = ci.median_tpot_ms.unwrap();
        let x = ci.median_intvty.unwrap();
        close(x.lo, 1000.0 / tpot.hi);
        close(x.hi, 1000.0 / tpot.lo);
    }

    #[test]
    fn percentiles_resting_on_few_requests_are_named() {
        let keys = [
            "median_ttft_ms",
            "p99_ttft_ms",
            "p90_tpot_ms",
            "p99.9_itl_ms",
            "p99_e2el",
            "mean_e2el_ms",
        ];
        let w = percentile_warnings(keys.iter().copied(), 40);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("p90, p99 of ttft, tpot rest on 40 requests per run (fewer than 100)"),
            "{}",
            w[0]
        );
        assert!(percentile_warnings(keys.iter().copied(), 100).is_empty());
    }
}
