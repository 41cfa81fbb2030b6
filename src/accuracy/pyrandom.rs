//! CPython's `random.Random` (MT19937, `seed(int)`, `getrandbits`, `sample`, `shuffle`,
//! `choice`, `choices`), because
//! lm-eval picks each question's few-shot examples with `Random(1234).sample(train, n)`,
//! one shared generator advancing question by question. Reproducing its draws is the only
//! way for a gsm8k prompt — and so its score — to equal lm-eval's. benchmark_serving.py's
//! sharegpt/sonnet samplers and `--lora-modules` draw from the same generator.

const N: usize = 624;
const M: usize = 397;

/// A Mersenne Twister seeded as CPython seeds it.
#[derive(Clone)]
pub struct PyRandom {
    /// State words.
    mt: [u32; N],
    /// Next word to temper.
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> Self {
        // CPython: init_by_array with the seed's 32-bit words, least significant first.
        let mut key = vec![seed as u32];
        if seed >> 32 != 0 {
            key.push((seed >> 32) as u32);
        }
        let mut r = PyRandom {
            mt: [0; N],
            index: N,
        };
        r.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
        }
        r.mt[0] = 0x8000_0000;
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1] ^ (self.mt[i - 1] >> 30);
            self.mt[i] = 1_812_433_253u32.wrapping_mul(prev).wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for 1 ≤ k ≤ 32.
    pub fn getrandbits(&mut self, k: u32) -> u32 {
        debug_assert!((1..=32).contains(&k));
        self.next_u32() >> (32 - k)
    }

    /// `random()`: a double in [0, 1) from two 32-bit outputs (53 bits).
    pub fn random(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `shuffle(x)` in place: from the end, swap item i with `_randbelow(i + 1)`.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i + 1);
            x.swap(i, j);
        }
    }

    /// The index `choices(population, k=1)` picks (no weights): `floor(random() · n)`.
    pub fn choices_index(&mut self, n: usize) -> usize {
        (self.random() * n as f64) as usize
    }

    /// `_randbelow(n)` for n ≥ 1 (rejection sampling on `n.bit_length()` bits); also the
    /// index `choice(seq)` picks from a sequence of length n.
    pub fn randbelow(&mut self, n: usize) -> usize {
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `sample(range(n), k)`: k distinct indices, CPython's algorithm (pool swap for small
    /// populations, rejection with a set for large ones).
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population");
        let mut setsize = 21usize;
        if k > 5 {
            // 4 ** ceil(log(k * 3, 4))
            let e = ((k * 3) as f64).ln() / 4f64.ln();
            setsize += 4usize.pow(e.ceil() as u32);
        }
        let mut out = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow(n - i);
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut seen = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n);
                while seen.contains(&j) {
                    j = self.randbelow(n);
                }
                seen.insert(j);
                out.push(j);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython() {
        // python3 -c "from random import Random; r=Random(1234); ..."
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(7473, 5), vec![6374, 3610, 957, 61, 742]);
        assert_eq!(r.sample(7473, 5), vec![7462, 6610, 4769, 286, 5501]);
        assert_eq!(r.sample(7473, 5), vec![5677, 687, 806, 6279, 2905]);
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(3, 3), vec![1, 0, 2]);
        assert_eq!(r.sample(3, 3), vec![0, 2, 1]);
        assert_eq!(r.getrandbits(32), 422_719_469);
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(100, 8), vec![99, 56, 14, 0, 11, 74, 4, 85]);
        assert_eq!(r.sample(100, 8), vec![88, 10, 12, 98, 45, 30, 2, 3]);
    }
}
