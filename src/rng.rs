//! A small, seedable, lock-free random number source.
//!
//! Jitter, fault injection and the drill's simulated backends all draw from an [`Rng`].
//! It is a SplitMix64 stream whose state is one atomic word: clones share the stream,
//! drawing a number is a single `fetch_add`, and the same seed gives the same sequence
//! as long as the draws happen in the same order (in paused-time tests on a
//! current-thread runtime they do). Inject a seeded one to make a test or a drill
//! reproducible; the default is seeded from the operating system.
//!
//! SplitMix64 is not cryptographic. It is fast, passes BigCrush, and is what jitter
//! needs.
//!
//! Why not `rand`'s `SmallRng`: its generators take `&mut self`, so a stream shared by
//! every clone of a layer would need a lock on each draw (or one stream per clone,
//! and a seed would no longer reproduce a run whose clones draw in one order). One
//! atomic word is what sharing needs, and SplitMix64 is the generator whose state is
//! one word. The entropy for the default seed comes from the standard library's
//! randomly keyed hasher, so the crate needs no RNG dependency.
//!
//! ```
//! use tower_fortify::rng::Rng;
//!
//! let a = Rng::seeded(7);
//! let b = Rng::seeded(7);
//! assert_eq!(a.next_u64(), b.next_u64());
//! let x = a.next_f64();
//! assert!((0.0..1.0).contains(&x));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A shared, seedable random stream. Cloning shares the stream.
#[derive(Clone)]
pub struct Rng {
    state: Arc<AtomicU64>,
}

impl Rng {
    /// A stream that starts from `seed`. Two streams with the same seed yield the same
    /// numbers in the same order.
    pub fn seeded(seed: u64) -> Self {
        Self {
            state: Arc::new(AtomicU64::new(seed)),
        }
    }

    /// A stream seeded from the operating system's entropy (through the standard
    /// library's randomly keyed `RandomState`; every call gives a different seed).
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
        Self::seeded(h.finish())
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&self) -> u64 {
        let z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        mix(z)
    }

    /// A uniform number in `0.0..1.0`.
    #[inline]
    pub fn next_f64(&self) -> f64 {
        // The top 53 bits make an exactly representable fraction.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform number in `lo..=hi` (returns `lo` when `hi <= lo`).
    #[inline]
    pub fn between(&self, lo: f64, hi: f64) -> f64 {
        if hi <= lo {
            lo
        } else {
            lo + (hi - lo) * self.next_f64()
        }
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::from_entropy()
    }
}

impl fmt::Debug for Rng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rng").finish_non_exhaustive()
    }
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_clones_share() {
        let a = Rng::seeded(1);
        let b = Rng::seeded(1);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let c = Rng::seeded(1);
        let d = c.clone();
        let first = c.next_u64();
        assert_ne!(first, d.next_u64(), "a clone continues the shared stream");
    }

    #[test]
    fn entropy_seeds_differ() {
        let seeds: std::collections::HashSet<u64> =
            (0..64).map(|_| Rng::from_entropy().next_u64()).collect();
        assert_eq!(seeds.len(), 64);
    }

    #[test]
    fn floats_are_in_range() {
        let r = Rng::seeded(99);
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            let y = r.between(2.0, 3.0);
            assert!((2.0..=3.0).contains(&y));
        }
        assert_eq!(r.between(5.0, 1.0), 5.0);
    }
}
