//! Choosing the next token from the logits: greedy at temperature 0, else temperature-scaled
//! softmax restricted to the nucleus (`top_p`), drawn with a seeded generator.
//!
//! The generator is our own SplitMix64 (a dozen lines) rather than `rand`'s `StdRng`, whose
//! algorithm may change between versions: a seed must give the same text forever.

use crate::llama::argmax;

/// SplitMix64: small, fast, and fully specified, so a seed always yields the same stream.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Picks the next token. `temperature <= 0` is greedy (the first largest logit); otherwise the
/// logits are divided by the temperature, turned into probabilities, cut to the smallest set of
/// most likely tokens whose probability reaches `top_p`, and one is drawn from that set.
pub fn sample(logits: &[f32], temperature: f32, top_p: f32, rng: &mut SplitMix64) -> u32 {
    if temperature <= 0.0 || logits.is_empty() {
        return argmax(logits);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, (f64::from(l - max) / f64::from(temperature)).exp()))
        .filter(|(_, p)| *p > 0.0)
        .collect();
    // Most likely first; ties by id so the order (and the draw) is deterministic.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    let top_p = f64::from(top_p.clamp(0.0, 1.0));
    let mut kept = 0;
    let mut mass = 0.0;
    for (_, p) in &probs {
        kept += 1;
        mass += p / total;
        if mass >= top_p {
            break;
        }
    }
    probs.truncate(kept.max(1));
    let kept_total: f64 = probs.iter().map(|(_, p)| p).sum();
    let mut target = rng.next_f64() * kept_total;
    for (id, p) in &probs {
        if target < *p {
            return *id;
        }
        target -= p;
    }
    probs.last().map(|(id, _)| *id).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_temperature_is_greedy_and_takes_the_first_maximum() {
        let mut rng = SplitMix64::new(1);
        assert_eq!(sample(&[0.1, 3.0, 3.0, -1.0], 0.0, 1.0, &mut rng), 1);
    }

    #[test]
    fn tiny_top_p_keeps_only_the_most_likely_token() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(sample(&[1.0, 2.5, 2.0, 0.0], 1.0, 0.01, &mut rng), 1);
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens_and_draws_follow_the_probabilities() {
        let logits = [0.0f32, 1.0, 2.0, 0.5];
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..2000).map(|_| sample(&logits, 1.0, 1.0, &mut rng)).collect::<Vec<_>>()
        };
        let a = draw(42);
        assert_eq!(a, draw(42));
        assert_ne!(a, draw(43));
        // softmax([0, 1, 2, 0.5]) ≈ [0.078, 0.213, 0.579, 0.129]
        let share = |t: u32| a.iter().filter(|&&x| x == t).count() as f64 / a.len() as f64;
        assert!((share(2) - 0.579).abs() < 0.03, "{}", share(2));
        assert!((share(0) - 0.078).abs() < 0.02, "{}", share(0));
    }
}
