//! The nearest-rank quantile, for every crate that measures latencies: the
//! service's `/api/perf`, the benchmarks and the simulation. The `q`
//! quantile of `n` values is the value of rank ⌈q·n⌉ (1-based, at least 1,
//! at most `n`): always one of the values seen, never an interpolation.
//!
//! [`quantile`] reads it from sorted values, [`quantile_bucket`] from a
//! histogram's bucket counts; both take the rank from [`nearest_rank`].

/// The 1-based nearest rank of the `q` quantile among `n` values: ⌈q·n⌉
/// clamped to `1..=n` (so `q` ≤ 0 or NaN is the smallest value and `q` ≥ 1
/// the largest); `None` when `n` is 0.
pub fn nearest_rank(n: u64, q: f64) -> Option<u64> {
    if n == 0 {
        return None;
    }
    // A float-to-int `as` saturates (NaN becomes 0), so this never wraps.
    Some(((q * n as f64).ceil() as u64).clamp(1, n))
}

/// The `q` quantile of `sorted` (ascending); `None` when it is empty.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let rank = nearest_rank(sorted.len() as u64, q)?;
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

/// The index of the bucket that holds the `q` quantile, given each bucket's
/// count in ascending order of value; `None` when every count is 0.
pub fn quantile_bucket(counts: &[u64], q: f64) -> Option<usize> {
    let rank = nearest_rank(counts.iter().sum(), q)?;
    let mut seen = 0;
    counts.iter().position(|&c| {
        seen += c;
        seen >= rank
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rank_is_the_ceiling_clamped_to_the_values() {
        assert_eq!(nearest_rank(0, 0.5), None);
        assert_eq!(nearest_rank(100, 0.5), Some(50));
        assert_eq!(nearest_rank(100, 0.99), Some(99));
        assert_eq!(nearest_rank(100, 0.995), Some(100));
        assert_eq!(nearest_rank(3, 0.5), Some(2));
        assert_eq!(nearest_rank(1, 0.01), Some(1));
        assert_eq!(nearest_rank(10, 0.0), Some(1));
        assert_eq!(nearest_rank(10, -1.0), Some(1));
        assert_eq!(nearest_rank(10, f64::NAN), Some(1));
        assert_eq!(nearest_rank(10, 1.0), Some(10));
        assert_eq!(nearest_rank(10, 7.0), Some(10));
    }

    #[test]
    fn a_quantile_of_sorted_values_is_one_of_them() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&[7.5, 9.0], 0.5), Some(7.5));
        assert_eq!(quantile(&[7.5, 9.0], 0.51), Some(9.0));
        assert_eq!(quantile::<u64>(&[], 0.5), None);
    }

    #[test]
    fn a_quantile_of_bucket_counts_is_the_bucket_that_reaches_the_rank() {
        // Values: bucket 1 twice, bucket 3 once, bucket 4 seven times.
        let counts = [0, 2, 0, 1, 7];
        assert_eq!(quantile_bucket(&counts, 0.0), Some(1));
        assert_eq!(quantile_bucket(&counts, 0.2), Some(1));
        assert_eq!(quantile_bucket(&counts, 0.21), Some(3));
        assert_eq!(quantile_bucket(&counts, 0.3), Some(3));
        assert_eq!(quantile_bucket(&counts, 0.31), Some(4));
        assert_eq!(quantile_bucket(&counts, 1.0), Some(4));
        assert_eq!(quantile_bucket(&[0, 0, 0], 0.5), None);
        assert_eq!(quantile_bucket(&[], 0.5), None);
    }

    #[test]
    fn both_shapes_agree() {
        let sorted = [1usize, 1, 3, 4, 4, 4, 4, 4, 4, 4];
        let mut counts = [0u64; 5];
        for &v in &sorted {
            counts[v] += 1;
        }
        for i in 0..=40 {
            let q = f64::from(i) / 40.0;
            assert_eq!(quantile(&sorted, q), quantile_bucket(&counts, q), "q {q}");
        }
    }
}
