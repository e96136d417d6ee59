//! The randomness of the backoff jitter.

use tower::util::rng::{HasherRng, Rng};

/// tower's [`HasherRng`], reseeded on every clone.
///
/// tower's `ExponentialBackoffMaker` clones its random source into every
/// backoff it makes, so with a plain `HasherRng` every retry session would
/// draw the same "random" jitter and concurrent retries would stay in step:
/// the very thing jitter is for. A fresh `HasherRng` takes new keys from
/// std's `RandomState`.
#[derive(Debug)]
pub(crate) struct FreshRng(HasherRng);

impl FreshRng {
    pub(crate) fn new() -> Self {
        FreshRng(HasherRng::default())
    }
}

impl Clone for FreshRng {
    fn clone(&self) -> Self {
        FreshRng::new()
    }
}

impl Rng for FreshRng {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_draw_different_numbers() {
        let rng = FreshRng::new();
        let (mut a, mut b) = (rng.clone(), rng.clone());
        let a: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let b: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_ne!(a, b);
    }
}
