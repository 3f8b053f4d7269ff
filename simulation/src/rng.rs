//! The simulation's only source of randomness: xoshiro256** seeded through
//! splitmix64. Small, dependency-free and stable, so that a seed means the
//! same workload on every build.
//!
//! Every random stream (requests, role changes, store latency, link delay…)
//! has its own generator derived from the seed and a tag, so that changing
//! the policy, which changes how often the store is read, never changes the
//! traffic: every policy sees the same requests and the same changes.

/// One step of splitmix64: a good 64-bit mixer and seed expander.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Tags of the independent streams.
pub mod stream {
    pub const REQUESTS: u64 = 1;
    pub const ROLE_CHANGES: u64 = 2;
    pub const STATUS_CHANGES: u64 = 3;
    pub const FORCE_REFRESHES: u64 = 4;
    pub const STORE_LATENCY: u64 = 5;
    pub const LINK: u64 = 6;
}

/// xoshiro256**.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The generator of stream `tag` for `seed`.
    pub fn stream(seed: u64, tag: u64) -> Rng {
        let mut sm = seed ^ tag.wrapping_mul(0xd1b5_4a32_d192_ed03);
        let mut s = [0u64; 4];
        for word in &mut s {
            *word = splitmix64(&mut sm);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    pub fn f64_open0(&mut self) -> f64 {
        1.0 - self.f64()
    }

    /// Uniform in [0, n) (n > 0), by multiply-shift (bias below 2^-32 for
    /// the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Exponentially distributed with the given rate (per unit).
    pub fn exp(&mut self, rate: f64) -> f64 {
        -self.f64_open0().ln() / rate
    }

    /// Standard normal (Box–Muller; one of the pair is thrown away to keep
    /// the generator stateless beyond its words).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64_open0();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_stable_and_distinct() {
        let mut a = Rng::stream(42, stream::REQUESTS);
        let mut b = Rng::stream(42, stream::REQUESTS);
        let mut c = Rng::stream(42, stream::ROLE_CHANGES);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn moments_are_right() {
        let mut r = Rng::stream(7, 99);
        let n = 200_000;
        let mean_u = (0..n).map(|_| r.f64()).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01, "{mean_u}");
        let mean_e = (0..n).map(|_| r.exp(4.0)).sum::<f64>() / n as f64;
        assert!((mean_e - 0.25).abs() < 0.01, "{mean_e}");
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "{m} {v}");
        let mut hist = [0u32; 5];
        for _ in 0..n {
            hist[r.below(5) as usize] += 1;
        }
        for h in hist {
            assert!((39_000..41_000).contains(&h), "{hist:?}");
        }
    }
}
