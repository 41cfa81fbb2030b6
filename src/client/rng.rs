//! numpy's legacy global random generator (`np.random.seed` / `randint` / `gamma`),
//! reproduced bit for bit.
//!
//! benchmark_serving.py draws every prompt length, token offset, padding token and arrival
//! gap from numpy's legacy `RandomState` (MT19937). Same seed ⇒ same draws ⇒ same prompts
//! and the same request stream, which is what makes our numbers comparable with published
//! ones. Only the draws the reference makes are implemented, each following numpy's
//! `legacy-distributions.c` / `distributions.c` step by step.

/// MT19937 with numpy's legacy state (including the cached Gaussian of the polar method).
#[derive(Clone)]
pub struct NumpyRandom {
    /// The 624-word Mersenne Twister state.
    mt: Box<[u32; 624]>,
    /// Next word of `mt` to temper and return.
    idx: usize,
    /// Second variate of the last polar Box–Muller pair (`legacy_gauss` caches it).
    gauss: Option<f64>,
}

impl NumpyRandom {
    /// `np.random.seed(seed)` for an integer seed: MT19937 `init_genrand(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut mt = Box::new([0u32; 624]);
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        NumpyRandom {
            mt,
            idx: 624,
            gauss: None,
        }
    }

    /// `np.random.RandomState(key)` for a sequence of 32-bit words: MT19937
    /// `init_by_array(key)`. InferenceX's 2026 client seeds its padding generator this way,
    /// from the first four words of the global generator's state.
    pub fn from_key(key: &[u32]) -> Self {
        assert!(!key.is_empty(), "numpy refuses an empty seed");
        let mut r = NumpyRandom::new(19_650_218);
        let mt = &mut r.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..624.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..623 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        r
    }

    /// The 624 state words, as `np.random.get_state()[1]` lists them.
    pub fn key(&self) -> &[u32; 624] {
        &self.mt
    }

    /// numpy's `random_interval(max)`: a value in `0..=max` by masked rejection, the draw
    /// behind the legacy `shuffle` and `permutation`.
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        loop {
            let v = if max <= 0xffff_ffff {
                u64::from(self.next_u32()) & mask
            } else {
                self.next_u64() & mask
            };
            if v <= max {
                return v;
            }
        }
    }

    /// `RandomState.permutation(n)`: `arange(n)` shuffled by the legacy Fisher–Yates loop
    /// (from the end, `j = random_interval(i)`).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u64) as usize;
            v.swap(i, j);
        }
        v
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        let mt = &mut self.mt;
        for i in 0..624 {
            let y = (mt[i] & UPPER) | (mt[(i + 1) % 624] & LOWER);
            let mut v = mt[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            mt[i] = v;
        }
        self.idx = 0;
    }

    /// One 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            self.twist();
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }

    /// `np.random.random_sample()`: a double in [0, 1) from two 32-bit outputs (53 bits).
    pub fn random_sample(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One `np.random.randint(low, high)` value (int64 dtype, `high` exclusive), using
    /// numpy's masked rejection sampling. Panics if `low >= high`, as numpy raises.
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        assert!(low < high, "randint: low >= high");
        let rng = (high - 1).wrapping_sub(low) as u64;
        low.wrapping_add(self.bounded(rng) as i64)
    }

    /// `np.random.randint(low, high, size=n)`.
    pub fn randint_n(&mut self, low: i64, high: i64, n: usize) -> Vec<i64> {
        (0..n).map(|_| self.randint(low, high)).collect()
    }

    /// A value in `0..=rng` (numpy `random_bounded_uint64_fill`, masked variant).
    fn bounded(&mut self, rng: u64) -> u64 {
        if rng == 0 {
            return 0;
        }
        let mask = u64::MAX >> rng.leading_zeros();
        if rng <= 0xffff_ffff {
            if rng == 0xffff_ffff {
                return u64::from(self.next_u32());
            }
            let mask = mask as u32;
            loop {
                let v = self.next_u32() & mask;
                if u64::from(v) <= rng {
                    return u64::from(v);
                }
            }
        }
        if rng == u64::MAX {
            return self.next_u64();
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= rng {
                return v;
            }
        }
    }

    fn standard_exponential(&mut self) -> f64 {
        -(1.0 - self.random_sample()).ln()
    }

    fn gauss(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        let (x1, x2, r2) = loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                break (x1, x2, r2);
            }
        };
        let f = (-2.0 * r2.ln() / r2).sqrt();
        self.gauss = Some(f * x1);
        f * x2
    }

    fn standard_gamma(&mut self, shape: f64) -> f64 {
        if shape == 1.0 {
            return self.standard_exponential();
        }
        if shape == 0.0 {
            return 0.0;
        }
        if shape < 1.0 {
            loop {
                let u = self.random_sample();
                let v = self.standard_exponential();
                if u <= 1.0 - shape {
                    let x = u.powf(1.0 / shape);
                    if x <= v {
                        return x;
                    }
                } else {
                    let y = -((1.0 - u) / shape).ln();
                    let x = (1.0 - shape + shape * y).powf(1.0 / shape);
                    if x <= v + y {
                        return x;
                    }
                }
            }
        }
        let b = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * b).sqrt();
        loop {
            let (x, mut v) = loop {
                let x = self.gauss();
                let v = 1.0 + c * x;
                if v > 0.0 {
                    break (x, v);
                }
            };
            v = v * v * v;
            let u = self.random_sample();
            if u < 1.0 - 0.0331 * (x * x) * (x * x) {
                return b * v;
            }
            if u.ln() < 0.5 * x * x + b * (1.0 - v + v.ln()) {
                return b * v;
            }
        }
    }

    /// `np.random.gamma(shape, scale)` (legacy algorithm).
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        scale * self.standard_gamma(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by numpy 2.4 (`np.random.seed(0)` then the calls shown).
    #[test]
    fn matches_numpy() {
        let mut r = NumpyRandom::new(0);
        assert_eq!(r.randint_n(0, 8192, 5), [2732, 2607, 1653, 3264, 4931]);
        assert_eq!(r.randint_n(819, 1025, 3), [1014, 922, 828]);
        let mut r = NumpyRandom::new(0);
        assert_eq!(r.random_sample(), 0.5488135039273248);
        assert_eq!(r.gamma(1.0, 0.25), 0.31398269074145946);
        assert_eq!(r.gamma(0.5, 2.0), 0.7565434401356311);
        assert_eq!(r.gamma(2.5, 1.0), 6.242122324898662);
    }

    /// The reference MT19937 output for `init_genrand(5489)` (mt19937ar.c's default seed).
    #[test]
    fn mt19937_reference_vector() {
        let mut r = NumpyRandom::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        assert_eq!(r.next_u32(), 581_869_302);
    }

    /// `RandomState(list)` (init_by_array), the state words after a twist, and the legacy
    /// `permutation`, as numpy 2.4 prints them.
    #[test]
    fn array_seed_state_words_and_permutation_match_numpy() {
        let mut r = NumpyRandom::from_key(&[1, 2, 3, 4]);
        assert_eq!(
            [r.randint(0, 1 << 31), r.randint(0, 1 << 31)],
            [768_222_586, 1_022_996_879]
        );
        // np.random.seed(5); randint(0, 8192, size=700); get_state()[1][:4]
        let mut g = NumpyRandom::new(5);
        g.randint_n(0, 8192, 700);
        let key = &g.key()[..4];
        assert_eq!(
            key,
            [1_991_508_151, 536_415_184, 3_213_889_084, 1_296_948_826]
        );
        assert_eq!(
            NumpyRandom::from_key(key).randint_n(0, 8192, 3),
            [1167, 433, 1412]
        );
        assert_eq!(
            NumpyRandom::new(0).permutation(10),
            [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]
        );
    }

    #[test]
    fn degenerate_range_draws_nothing() {
        let mut a = NumpyRandom::new(1);
        let mut b = NumpyRandom::new(1);
        assert_eq!(a.randint(7, 8), 7);
        assert_eq!(a.next_u32(), b.next_u32());
    }
}
